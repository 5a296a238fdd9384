/**
 * The attempt fence: before anything is published, the attempt proves from a fresh read of
 * the Conductor task that it still owns it.
 *
 * @module
 */
import { StaleAttemptError } from "./errors.ts";

/** The attempt as Conductor sees it now (fetched fresh for each fence check). */
export interface CurrentTaskState {
  status: string;
  workflowInstanceId: string;
  taskId: string;
  retryCount: number;
}

/** The attempt the fence protects. */
export interface FencedAttempt {
  readonly workflowInstanceId: string;
  readonly taskId: string;
  readonly retryCount: number;
}

/**
 * Checks that `current` is still this attempt: `IN_PROGRESS`, same workflow, task id and
 * retry count.
 *
 * @throws {StaleAttemptError} naming every mismatch.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StaleAttemptError } from "./errors.ts";
 *
 * const attempt = { workflowInstanceId: "wf1", taskId: "t1", retryCount: 0 };
 * assertCurrentAttempt(attempt, { status: "IN_PROGRESS", ...attempt }); // still ours
 * assert.throws(
 *   () => assertCurrentAttempt(attempt, { status: "IN_PROGRESS", ...attempt, retryCount: 1 }),
 *   StaleAttemptError,
 * );
 * ```
 */
export function assertCurrentAttempt(attempt: FencedAttempt, current: CurrentTaskState): void {
  const problems: string[] = [];
  if (current.status !== "IN_PROGRESS") problems.push(`status is ${current.status}`);
  if (current.workflowInstanceId !== attempt.workflowInstanceId) {
    problems.push(`workflow is ${current.workflowInstanceId}, not ${attempt.workflowInstanceId}`);
  }
  if (current.taskId !== attempt.taskId) {
    problems.push(`task id is ${current.taskId}, not ${attempt.taskId}`);
  }
  if (current.retryCount !== attempt.retryCount) {
    problems.push(`retry count is ${current.retryCount}, not ${attempt.retryCount}`);
  }
  if (problems.length > 0) {
    throw new StaleAttemptError(
      `attempt fence failed for task ${attempt.taskId}: ${problems.join(", ")}; a newer ` +
        "attempt owns the task, so this one publishes and reports nothing",
    );
  }
}

/**
 * The fence of an attempt that no Conductor task backs (`perago run`, `perago/testing`'s
 * `runTask`): the attempt is always the current one, so the fence always passes.
 *
 * @example
 * ```ts
 * const attempt = { workflowInstanceId: "local-1", taskId: "local-1", retryCount: 0 };
 * assertCurrentAttempt(attempt, await alwaysCurrent(attempt)()); // passes
 * ```
 */
export function alwaysCurrent(attempt: FencedAttempt): () => Promise<CurrentTaskState> {
  return () =>
    Promise.resolve({
      status: "IN_PROGRESS",
      workflowInstanceId: attempt.workflowInstanceId,
      taskId: attempt.taskId,
      retryCount: attempt.retryCount,
    });
}
