/**
 * The fence and the publication steps of a writable attempt (SPEC 4.7): prove the attempt is
 * still current, then move the target branch to the input ref (no change) or to the staged
 * tree (changed), but only when the branch has not moved under the attempt.
 *
 * @module
 */
import type { LakeFsApi } from "../lakefs/api.ts";
import { PublishFenceError, StaleAttemptError } from "./errors.ts";

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
 * assertCurrentAttempt(attempt, await loadCurrentAttempt(signal));
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

/** Metadata keys perago writes on the commits it publishes. */
export const COMMIT_METADATA = {
  workflowInstanceId: "perago_workflow_instance_id",
  referenceTaskName: "perago_reference_task_name",
  taskId: "perago_task_id",
  retryCount: "perago_retry_count",
  executionId: "perago_execution_id",
  taskDefName: "perago_task_def_name",
} as const;

/** Where publication happens and whose commits may be replaced. */
export interface PublishTarget {
  readonly repo: string;
  readonly branch: string;
  /** The input ref A. */
  readonly inputRef: string;
  readonly workflowInstanceId: string;
  readonly referenceTaskName: string;
}

/**
 * Whether `head` is a commit of an earlier attempt of the same task directly on top of the
 * input ref: its only parent is A and its perago metadata names the same workflow and task
 * reference. Only such a commit may be replaced by a hard reset; a commit by anyone else is
 * a moved branch. (The Python original checks the parent only; the metadata check keeps a
 * foreign commit that happens to sit on A from being erased.)
 */
async function isEarlierAttemptCommit(
  lakefs: LakeFsApi,
  target: PublishTarget,
  head: string,
  signal: AbortSignal,
): Promise<boolean> {
  const commit = await lakefs.getCommit(target.repo, head, signal);
  const metadata = commit.metadata ?? {};
  return commit.parents.length === 1 && commit.parents[0] === target.inputRef &&
    metadata[COMMIT_METADATA.workflowInstanceId] === target.workflowInstanceId &&
    metadata[COMMIT_METADATA.referenceTaskName] === target.referenceTaskName;
}

function moved(target: PublishTarget, head: string): PublishFenceError {
  return new PublishFenceError(
    `publish fence failed: branch ${target.branch} of ${target.repo} moved from ` +
      `${target.inputRef} to ${head} during the attempt; the task is retried on the new head ` +
      "by a new workflow run, not by this attempt",
  );
}

/**
 * Completes a writable attempt whose workspace did not change: head H == A publishes A; an
 * earlier attempt's commit on top of A is undone by hard-resetting the branch to A; anything
 * else is a {@linkcode PublishFenceError}. Returns the published ref (A).
 */
export async function completeNoop(
  lakefs: LakeFsApi,
  target: PublishTarget,
  signal: AbortSignal,
): Promise<string> {
  const head = (await lakefs.getBranch(target.repo, target.branch, signal)).commit_id;
  if (head === target.inputRef) return target.inputRef;
  if (await isEarlierAttemptCommit(lakefs, target, head, signal)) {
    await lakefs.hardReset(target.repo, target.branch, target.inputRef, signal);
    return target.inputRef;
  }
  throw moved(target, head);
}

/**
 * Publishes a staged commit: H == A squash-merges the staging branch into the target; an
 * earlier attempt's commit on top of A is replaced by hard-resetting the target to the staged
 * commit; anything else is a {@linkcode PublishFenceError}. Returns the published commit id.
 */
export async function publishStaged(
  lakefs: LakeFsApi,
  target: PublishTarget,
  staged: { branch: string; commit: string; message: string; metadata: Record<string, string> },
  signal: AbortSignal,
): Promise<string> {
  const head = (await lakefs.getBranch(target.repo, target.branch, signal)).commit_id;
  if (head === target.inputRef) {
    return await lakefs.merge(target.repo, staged.branch, target.branch, {
      message: staged.message,
      metadata: staged.metadata,
      squashMerge: true,
      signal,
    });
  }
  if (await isEarlierAttemptCommit(lakefs, target, head, signal)) {
    await lakefs.hardReset(target.repo, target.branch, staged.commit, signal);
    return staged.commit;
  }
  throw moved(target, head);
}
