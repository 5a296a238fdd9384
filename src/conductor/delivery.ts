/**
 * Result delivery that survives Conductor blips: a TaskResult is posted until the server takes it,
 * retrying network errors, 429 and 5xx with backoff (or the wait a 429's `Retry-After` asks
 * for), forever unless a deadline or the signal stops it: a result is never lost silently.
 * After an outage, results go as soon as the server answers again (`serverAnswered`).
 *
 * @module
 */
import { getLogger } from "../log/logger.ts";
import { backoffDelayMs } from "../util/retry.ts";
import type { ConductorApi, Task, TaskResult } from "./api.ts";
import {
  ConductorError,
  ConductorNotFoundError,
  isTransientConductorError,
  isUnreachableConductorError,
} from "./errors.ts";

const log = getLogger("conductor", "delivery");

/** How a delivery ended. */
export type DeliveryOutcome =
  /**
   * The server took the result. `next`: the task `update-v2` handed over with it, when the
   * delivery asked for one (`nextTask`) and one was queued.
   */
  | { kind: "delivered"; attempts: number; next?: Task }
  /** The server answered 404: the task or workflow is gone; the result was dropped. */
  | { kind: "gone"; attempts: number; error: ConductorNotFoundError }
  /** A newer result for the same task replaced this one before it was sent. */
  | { kind: "superseded"; attempts: number };

/** Options of {@linkcode ResultDelivery}. */
export interface ResultDeliveryOptions {
  /** Posts one result; usually a {@linkcode ConductorApi}. */
  api: Pick<ConductorApi, "updateTask" | "updateTaskV2">;
  /** First backoff in ms. @default 500 */
  baseDelayMs?: number;
  /** Longest backoff in ms. @default 30000 */
  maxDelayMs?: number;
  /** Give up a result after this many ms (rejecting its promise). @default Infinity */
  deadlineMs?: number;
  /** Stops every delivery (pending promises reject with the signal's reason). */
  signal?: AbortSignal;
}

/** A result whose delivery failed for good (non-retryable answer, deadline or abort). */
export class ResultDeliveryError extends Error {
  override name = "ResultDeliveryError";
  /** The task whose result was not delivered. */
  readonly taskId: string;
  constructor(taskId: string, detail: string, options?: { cause?: unknown }) {
    super(
      `delivering the result of task ${taskId} failed: ${detail}; the task will time out on the server and be retried`,
      options,
    );
    this.taskId = taskId;
  }
}

interface Entry {
  result: TaskResult;
  resolve: (outcome: DeliveryOutcome) => void;
  reject: (error: unknown) => void;
  deadline: number;
  signal: AbortSignal | undefined;
  superseded: boolean;
  nextTask: boolean;
}

/**
 * A small in-memory queue of TaskResults, posted in order per task and in parallel across
 * tasks. A heartbeat (`IN_PROGRESS` with `extendLease`) still waiting behind another result
 * of the same task is dropped when a newer result arrives, so a stale heartbeat never
 * follows a final result.
 *
 * @example
 * ```ts
 * import type { TaskResult } from "./api.ts";
 *
 * const posted: TaskResult[] = [];
 * const delivery = new ResultDelivery({
 *   api: { updateTask: (result) => Promise.resolve(String(posted.push(result))) },
 * });
 * const outcome = await delivery.deliver({
 *   workflowInstanceId: "wf1", taskId: "t1", status: "COMPLETED", outputData: { result: 1 },
 * });
 * outcome.kind; // "delivered"
 * await delivery.drain(AbortSignal.timeout(10_000));
 * ```
 */
export class ResultDelivery {
  readonly #api: Pick<ConductorApi, "updateTask" | "updateTaskV2">;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #deadlineMs: number;
  readonly #signal: AbortSignal | undefined;
  /** Per task: the entries not yet finished, the first one being worked on. */
  readonly #queues = new Map<string, Entry[]>();
  #pending = 0;
  #idleWaiters: (() => void)[] = [];
  /** Ends the backoff of each result waiting because the server could not be reached. */
  readonly #outageWaits = new Set<() => void>();

  constructor(options: ResultDeliveryOptions) {
    this.#api = options.api;
    this.#baseDelayMs = options.baseDelayMs ?? 500;
    this.#maxDelayMs = options.maxDelayMs ?? 30_000;
    this.#deadlineMs = options.deadlineMs ?? Infinity;
    this.#signal = options.signal;
    if (!(this.#baseDelayMs >= 0) || !(this.#maxDelayMs >= this.#baseDelayMs)) {
      throw new RangeError("ResultDelivery: need 0 <= baseDelayMs <= maxDelayMs");
    }
    if (!(this.#deadlineMs > 0)) throw new RangeError("ResultDelivery: deadlineMs must be > 0");
  }

  /** Results accepted but not yet delivered, dropped or failed. */
  get pending(): number {
    return this.#pending;
  }

  /**
   * Queues a result. The promise resolves when the server took it (or answered 404, or a
   * newer result replaced it) and rejects with {@linkcode ResultDeliveryError} when it cannot
   * be delivered (a 4xx other than 404, the deadline, or an abort).
   *
   * `nextTask`: post with `update-v2` (when the api has it), whose answer is the next task of
   * the type, returned as the outcome's `next`: only for a caller with a free slot for it.
   *
   * `result` is copied when queued, so a caller may change its object afterwards; `owned`: the
   * caller hands it over and never changes it again, and it is queued as it is (the copy, a
   * structured clone, was a visible part of a broker's CPU per trivial task).
   */
  deliver(
    result: TaskResult,
    options: { signal?: AbortSignal; deadlineMs?: number; nextTask?: boolean; owned?: boolean } =
      {},
  ): Promise<DeliveryOutcome> {
    return new Promise<DeliveryOutcome>((resolve, reject) => {
      const signals = [options.signal, this.#signal].filter((s): s is AbortSignal => !!s);
      const signal = signals.length === 0
        ? undefined
        : signals.length === 1
        ? signals[0]
        : AbortSignal.any(signals);
      const entry: Entry = {
        result: options.owned === true ? result : structuredClone(result),
        resolve,
        reject,
        deadline: Date.now() + (options.deadlineMs ?? this.#deadlineMs),
        signal,
        superseded: false,
        nextTask: options.nextTask === true && this.#api.updateTaskV2 !== undefined,
      };
      const queue = this.#queues.get(result.taskId);
      this.#pending++;
      if (queue) {
        // Drop waiting heartbeats: the newer result carries the news.
        for (let i = 1; i < queue.length; i++) {
          const waiting = queue[i];
          if (waiting && isHeartbeat(waiting.result)) {
            waiting.superseded = true;
          }
        }
        queue.push(entry);
        return;
      }
      this.#queues.set(result.taskId, [entry]);
      void this.#run(result.taskId);
    });
  }

  /**
   * Tells the delivery that Conductor answered a call just now (a poll after failed ones,
   * say): every result waiting out a backoff because the server could not be reached (no
   * answer, 502, 503, 504) is posted at once instead of when its backoff ends. After an
   * outage the backoff may have grown to `maxDelayMs`; waiting it out could outlast the
   * task's response timeout, and the server would then run the task again. Results held
   * back by other answers (429, 500) keep their backoff. A delivery that succeeds calls
   * this itself.
   */
  serverAnswered(): void {
    if (this.#outageWaits.size === 0) return;
    log.debug("Conductor answers again: posting {count} waiting result(s) now", {
      count: this.#outageWaits.size,
    });
    const waits = [...this.#outageWaits];
    this.#outageWaits.clear();
    for (const end of waits) end();
  }

  /** Resolves when nothing is pending; rejects with the signal's reason if it aborts first. */
  drain(signal?: AbortSignal): Promise<void> {
    if (this.#pending === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.#idleWaiters = this.#idleWaiters.filter((w) => w !== wake);
        reject(signal?.reason);
      };
      const wake = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#idleWaiters.push(wake);
    });
  }

  async #run(taskId: string): Promise<void> {
    const queue = this.#queues.get(taskId);
    while (queue && queue.length > 0) {
      const entry = queue[0]!;
      try {
        if (entry.superseded) {
          entry.resolve({ kind: "superseded", attempts: 0 });
        } else {
          entry.resolve(await this.#deliverOne(entry));
        }
      } catch (error) {
        entry.reject(error);
      } finally {
        queue.shift();
        this.#pending--;
      }
    }
    this.#queues.delete(taskId);
    if (this.#pending === 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  async #deliverOne(entry: Entry): Promise<DeliveryOutcome> {
    const { result, signal } = entry;
    for (let attempt = 1;; attempt++) {
      if (signal?.aborted) {
        throw new ResultDeliveryError(result.taskId, "delivery aborted", { cause: signal.reason });
      }
      try {
        const next = entry.nextTask
          ? await this.#api.updateTaskV2!(result, signal)
          : void await this.#api.updateTask(result, signal);
        if (attempt > 1) {
          log.info("delivered result of task {taskId} after {attempts} attempts", {
            taskId: result.taskId,
            attempts: attempt,
            status: result.status,
          });
        }
        this.serverAnswered();
        return { kind: "delivered", attempts: attempt, ...(next === undefined ? {} : { next }) };
      } catch (error) {
        if (signal?.aborted) {
          throw new ResultDeliveryError(result.taskId, "delivery aborted", { cause: error });
        }
        if (error instanceof ConductorNotFoundError) {
          log.warn("dropped result of task {taskId}: the server no longer knows it ({message})", {
            taskId: result.taskId,
            workflowInstanceId: result.workflowInstanceId,
            status: result.status,
            message: error.message,
          });
          return { kind: "gone", attempts: attempt, error };
        }
        if (!isTransientConductorError(error)) {
          const detail = error instanceof ConductorError ? error.message : String(error);
          throw new ResultDeliveryError(result.taskId, detail, { cause: error });
        }
        // The wait a busy server asked for (`Retry-After`), else the backoff.
        const delay = (error as ConductorError).retryAfterMs ??
          backoffDelayMs(attempt, this.#baseDelayMs, this.#maxDelayMs);
        if (Date.now() + delay > entry.deadline) {
          throw new ResultDeliveryError(
            result.taskId,
            `deadline passed after ${attempt} attempts (${(error as Error).message})`,
            { cause: error },
          );
        }
        log.warn("result of task {taskId} not delivered yet (attempt {attempt}): {message}", {
          taskId: result.taskId,
          attempt,
          message: (error as Error).message,
          retryInMs: delay,
        });
        try {
          await this.#backoff(delay, isUnreachableConductorError(error), signal);
        } catch (reason) {
          throw new ResultDeliveryError(result.taskId, "delivery aborted", { cause: reason });
        }
      }
    }
  }

  /**
   * Waits `delayMs`; with `untilAnswer`, ends early when `serverAnswered` is called.
   * Rejects with the signal's reason when it aborts.
   */
  #backoff(delayMs: number, untilAnswer: boolean, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const settle = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#outageWaits.delete(end);
      };
      const end = () => {
        settle();
        resolve();
      };
      const onAbort = () => {
        settle();
        reject(signal?.reason);
      };
      const timer = setTimeout(end, delayMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      if (untilAnswer) this.#outageWaits.add(end);
    });
  }
}

function isHeartbeat(result: TaskResult): boolean {
  return result.status === "IN_PROGRESS" && result.extendLease === true;
}
