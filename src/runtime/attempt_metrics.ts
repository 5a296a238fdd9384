/**
 * An attempt's metrics, derived in the executor from what the attempt already reports (its
 * phases through `onPhase`, its outcome, and what the counting lakeFS client saw), so the
 * attempt itself carries no metrics code.
 *
 * @module
 */
import { type AttemptOutcomeLabel, M } from "../metrics/catalog.ts";
import type { MetricBuffer } from "../metrics/events.ts";
import type { TransferCounts } from "./counting_lakefs.ts";

/** The failure names that mean "the branch or the scope moved under the attempt". */
const PUBLISH_FENCE_ERRORS = /^(PublishFenceError|ScopeConflictError)\b/;

/**
 * The outcome an attempt is counted under: `STALE` when the fence found a newer attempt,
 * `PUBLISH_FENCE` when publication was refused because the branch (or the attempt's scope)
 * moved, else its Conductor status.
 *
 * @example
 * ```ts
 * outcomeLabel({ status: "FAILED", stale: false, reasonForIncompletion: "PublishFenceError: ..." });
 * // "PUBLISH_FENCE"
 * ```
 */
export function outcomeLabel(
  outcome: { status: string; stale: boolean; reasonForIncompletion?: string | undefined },
): AttemptOutcomeLabel {
  if (outcome.stale) return "STALE";
  if (
    outcome.status !== "COMPLETED" && PUBLISH_FENCE_ERRORS.test(outcome.reasonForIncompletion ?? "")
  ) {
    return "PUBLISH_FENCE";
  }
  return outcome.status as AttemptOutcomeLabel;
}

/**
 * Times the phases of one attempt and records its metrics when it ends.
 *
 * @example
 * ```ts ignore
 * // As the executor does (executor.ts): `options` are the attempt's AttemptOptions.
 * const meter = new AttemptMeter("normalize_text", buffer);
 * const { api, counts } = countingLakeFs(lakefs);
 * const outcome = await runAttempt({
 *   ...options, lakefs: api, onPhase: (phase) => meter.phase(phase),
 * });
 * meter.finish(outcome, counts);
 * ```
 */
export class AttemptMeter {
  readonly #taskType: string;
  readonly #buffer: MetricBuffer;
  readonly #startedAt = performance.now();
  #phase: { name: string; startedAt: number } | undefined;
  readonly #phaseSeconds = new Map<string, number>();

  /** Counts the start (`perago_task_execution_started_total`). */
  constructor(taskType: string, buffer: MetricBuffer) {
    this.#taskType = taskType;
    this.#buffer = buffer;
    buffer.inc(M.taskExecutionStarted, { taskType });
  }

  /** A phase began (the previous one ended). */
  phase(name: string): void {
    const now = performance.now();
    this.#closePhase(now);
    this.#phase = { name, startedAt: now };
  }

  /** Records the outcome, the durations and the transfers. */
  finish(
    outcome: { status: string; stale: boolean; reasonForIncompletion?: string | undefined },
    counts: Readonly<TransferCounts> | undefined,
  ): void {
    const now = performance.now();
    this.#closePhase(now);
    const taskType = this.#taskType;
    const label = outcomeLabel(outcome);
    this.#buffer.inc(M.attempts, { taskType, outcome: label });
    this.#buffer.observe(
      M.taskExecuteTime,
      { taskType, outcome: label },
      (now - this.#startedAt) / 1000,
    );
    // One observation per phase and attempt (a phase entered twice is summed).
    for (const [phase, seconds] of this.#phaseSeconds) {
      this.#buffer.observe(M.attemptPhase, { taskType, phase }, seconds);
    }
    if (counts !== undefined) {
      for (
        const [operation, objects, bytes] of [
          ["download", counts.downloadedObjects, counts.downloadedBytes],
          ["upload", counts.uploadedObjects, counts.uploadedBytes],
        ] as const
      ) {
        if (objects === 0) continue;
        this.#buffer.inc(M.workspaceIoObjects, { taskType, operation }, objects);
        this.#buffer.inc(M.workspaceIoBytes, { taskType, operation }, bytes);
      }
    }
  }

  #closePhase(now: number): void {
    if (this.#phase === undefined) return;
    const { name, startedAt } = this.#phase;
    this.#phaseSeconds.set(name, (this.#phaseSeconds.get(name) ?? 0) + (now - startedAt) / 1000);
    this.#phase = undefined;
  }
}
