/**
 * The broker's metrics: what its polls, lease extensions and result deliveries did, as
 * metric records for the supervisor's registry, and whether Conductor answered (for
 * `/readyz`). The broker calls a {@linkcode BrokerObserver}; {@linkcode BrokerMetrics} turns
 * the calls into `metrics` protocol messages.
 *
 * @module
 */
import { ConductorError } from "../conductor/errors.ts";
import { M } from "../metrics/catalog.ts";
import { MetricBuffer, type MetricRecord } from "../metrics/events.ts";
import type { MetricsMessage } from "./protocol.ts";

/** What the broker reports as it works (every method is cheap and never throws). */
export interface BrokerObserver {
  /** A batch poll ended with `tasks` tasks, or failed with `error`. */
  poll(taskType: string, outcome: { tasks: number } | { error: unknown }, durationMs: number): void;
  /** A lease extension succeeded (`error` undefined) or failed. */
  leaseExtension(taskType: string, error: unknown): void;
  /** A fence look-up got an answer (`error` undefined or a not-found) or failed. */
  fenceLookup(error: unknown): void;
  /** A final result left the broker. */
  result(
    taskType: string,
    status: string,
    how: "delivered" | "dropped" | "skipped",
    detail: { attempts?: number; durationMs?: number; error?: unknown },
  ): void;
}

/**
 * Whether an error means Conductor did not answer (network, timeout, 429, 5xx): only those
 * count against `/readyz`; a 4xx is an answer.
 */
export function conductorUnreachable(error: unknown): boolean {
  return !(error instanceof ConductorError) || error.transient;
}

/** The error's class name: a bounded label value (never the message, which may hold ids). */
export function errorClass(error: unknown): string {
  if (error instanceof Error) return error.name.slice(0, 64) || "Error";
  return typeof error;
}

/**
 * A {@linkcode BrokerObserver} that sends `metrics` messages.
 *
 * @example
 * ```ts ignore
 * const broker = new Broker({
 *   api, delivery, taskTypes: ["sum"], workerId: "sumBroker", emit: (m) => void out.send(m),
 *   observer: new BrokerMetrics((m) => void out.send(m)),
 * });
 * ```
 */
export class BrokerMetrics implements BrokerObserver {
  readonly #buffer: MetricBuffer;
  /** The latest contact outcome not yet reported. */
  #contact: { ok: boolean; detail?: string } | undefined;
  /** The latest reported outcome: a change is reported even without a metric record. */
  #reportedOk: boolean | undefined;

  /** `send` gets each message (at most one a second while things happen). */
  constructor(send: (message: MetricsMessage) => void, options: { flushMs?: number } = {}) {
    this.#buffer = new MetricBuffer((records: MetricRecord[]) => {
      const contact = this.#contact;
      this.#contact = undefined;
      if (contact !== undefined) this.#reportedOk = contact.ok;
      send({
        type: "metrics",
        records,
        ...(contact === undefined ? {} : { contacts: [{ server: "conductor", ...contact }] }),
      });
    }, options);
  }

  /** Sends what is pending now. */
  flush(): void {
    this.#buffer.flush();
  }

  poll(taskType: string, outcome: { tasks: number } | { error: unknown }, durationMs: number) {
    const labels = { taskType };
    this.#buffer.inc(M.taskPoll, labels);
    const failed = "error" in outcome;
    this.#buffer.observe(M.taskPollTime, {
      taskType,
      status: failed ? "FAILURE" : "SUCCESS",
    }, durationMs / 1000);
    if (failed) {
      this.#buffer.inc(M.taskPollError, { taskType, exception: errorClass(outcome.error) });
      this.#noteContact(outcome.error);
    } else {
      this.#noteContact(undefined);
      if (outcome.tasks === 0) this.#buffer.inc(M.taskPollEmpty, labels);
      else this.#buffer.inc(M.taskPollTasks, labels, outcome.tasks);
    }
  }

  leaseExtension(taskType: string, error: unknown) {
    const result = error === undefined
      ? "extended"
      : conductorUnreachable(error)
      ? "failed"
      : "refused";
    this.#buffer.inc(M.leaseExtensions, { taskType, result });
    this.#noteContact(error);
  }

  fenceLookup(error: unknown) {
    this.#noteContact(error);
  }

  result(
    taskType: string,
    status: string,
    how: "delivered" | "dropped" | "skipped",
    detail: { attempts?: number; durationMs?: number; error?: unknown },
  ) {
    this.#buffer.inc(M.taskUpdate, { taskType, status, how });
    if (detail.attempts !== undefined && detail.attempts > 1) {
      this.#buffer.inc(M.taskUpdateRetries, { taskType }, detail.attempts - 1);
    }
    if (detail.error !== undefined) {
      this.#buffer.inc(M.taskUpdateError, { taskType, exception: errorClass(detail.error) });
    }
    if (detail.durationMs !== undefined && how !== "skipped") {
      this.#buffer.observe(M.taskUpdateTime, { taskType, status }, detail.durationMs / 1000);
    }
    if (how !== "skipped") this.#noteContact(detail.error);
  }

  /** Records a contact; a change of outcome is reported even when no metric changed. */
  #noteContact(error: unknown): void {
    const ok = error === undefined || !conductorUnreachable(error);
    this.#contact = ok ? { ok } : { ok, detail: `request failed (${errorClass(error)})` };
    if (ok !== this.#reportedOk) this.#buffer.touch();
  }
}
