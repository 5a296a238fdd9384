/**
 * The name of an attempt's throw-away lakeFS staging branch.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** Longest staging branch name perago creates. */
export const MAX_STAGING_BRANCH_LENGTH = 200;

/** Every staging branch starts with this (for listing leftovers). */
export const STAGING_BRANCH_PREFIX = "perago-staging-";

/** The ids a staging branch name is made of. */
export interface StagingBranchIds {
  readonly workflowInstanceId: string;
  readonly referenceTaskName: string;
  readonly seq: number;
  readonly iteration: number;
  readonly taskId: string;
  readonly retryCount: number;
  readonly executionId: string;
}

/**
 * The staging branch name
 * `perago-staging-{wf}-{refTaskName}-seq-{seq}-iteration-{iter}-task-id-{id}-retry-{n}-exec-{execId}`,
 * reduced to lakeFS's branch charset `^\w[-\w]*$` (other characters become `_`) and at most
 * {@linkcode MAX_STAGING_BRANCH_LENGTH} characters. A name that is too long is cut and ends
 * with `-g` and 16 hex digits naming the workflow task (so a later attempt of the task still
 * recognises it, however long the workflow id and reference name) and `-h` and 16 hex digits
 * of the SHA-256 of the full name (so it stays unique).
 *
 * @example
 * ```ts
 * stagingBranchName({
 *   workflowInstanceId: "wf1", referenceTaskName: "normalize", seq: 2, iteration: 0,
 *   taskId: "t1", retryCount: 0, executionId: "e1",
 * }); // "perago-staging-wf1-normalize-seq-2-iteration-0-task-id-t1-retry-0-exec-e1"
 * ```
 */
export function stagingBranchName(ids: StagingBranchIds): string {
  const full = `${STAGING_BRANCH_PREFIX}${ids.workflowInstanceId}-${ids.referenceTaskName}` +
    `-seq-${ids.seq}-iteration-${ids.iteration}-task-id-${ids.taskId}` +
    `-retry-${ids.retryCount}-exec-${ids.executionId}`;
  const clean = full.replace(/[^A-Za-z0-9_-]/g, "_");
  if (clean.length <= MAX_STAGING_BRANCH_LENGTH) return clean;
  const hash = createHash("sha256").update(full).digest("hex").slice(0, HASH_SUFFIX_LENGTH - 2);
  const tail = `${taskTag(ids)}-h${hash}`;
  return `${clean.slice(0, MAX_STAGING_BRANCH_LENGTH - tail.length)}${tail}`;
}

/** Length of {@linkcode taskTag}'s answer: `-g` and 16 hex digits. */
const TASK_TAG_LENGTH = 18;
/** Length of the suffix that keeps a cut name unique: `-h` and 16 hex digits. */
const HASH_SUFFIX_LENGTH = 18;

/** `-g` and 16 hex digits of the SHA-256 of the workflow id and reference name. */
function taskTag(ids: Pick<StagingBranchIds, "workflowInstanceId" | "referenceTaskName">): string {
  const digest = createHash("sha256")
    .update(`${ids.workflowInstanceId}\0${ids.referenceTaskName}`)
    .digest("hex");
  return `-g${digest.slice(0, 16)}`;
}

/**
 * Whether `name` is the staging branch of some attempt of the same workflow task as `ids`
 * (any retry, seq, iteration or execution of the same reference task name in the same
 * workflow). The current attempt uses it, after its fence, to delete branches that earlier
 * attempts left behind when their process was killed before cleanup.
 *
 * @example
 * ```ts
 * isSameTaskStagingBranch("perago-staging-wf1-norm-seq-3-iteration-0-task-id-t2-retry-1-exec-e",
 *   { workflowInstanceId: "wf1", referenceTaskName: "norm" }); // true
 * ```
 */
export function isSameTaskStagingBranch(
  name: string,
  ids: Pick<StagingBranchIds, "workflowInstanceId" | "referenceTaskName">,
): boolean {
  if (!name.startsWith(STAGING_BRANCH_PREFIX)) return false;
  if (name.length === MAX_STAGING_BRANCH_LENGTH) {
    // A cut name carries the task's tag just before its own hash: the only test that holds
    // when the workflow id and reference name alone outgrow the limit.
    const tagAt = MAX_STAGING_BRANCH_LENGTH - TASK_TAG_LENGTH - HASH_SUFFIX_LENGTH;
    if (name.slice(tagAt, tagAt + TASK_TAG_LENGTH) === taskTag(ids)) return true;
  }
  const prefix = `${STAGING_BRANCH_PREFIX}${ids.workflowInstanceId}-${ids.referenceTaskName}-seq-`
    .replace(/[^A-Za-z0-9_-]/g, "_");
  if (!name.startsWith(prefix)) return false;
  // The rest is `{seq}-iteration-{iter}-task-id-...`; a name cut to the length limit by an
  // earlier version (no task tag) may end before that shape, and then its prefix has to do.
  const rest = name.slice(prefix.length);
  if (/^\d+-iteration-\d+-task-id-/.test(rest)) return true;
  return name.length === MAX_STAGING_BRANCH_LENGTH && /^\d/.test(rest);
}

/**
 * A throw-away branch for a publication by merges (onto a protected branch), named as a
 * staging branch of the same workflow task (task id `publish`, a random execution id): a later
 * attempt's cleanup of leftover staging branches deletes it when its process died first.
 *
 * @example
 * ```ts
 * const ids = { workflowInstanceId: "wf1", referenceTaskName: "norm" };
 * isSameTaskStagingBranch(publishBranchName(ids), ids); // true
 * ```
 */
export function publishBranchName(
  ids: Pick<StagingBranchIds, "workflowInstanceId" | "referenceTaskName">,
): string {
  return stagingBranchName({
    workflowInstanceId: ids.workflowInstanceId,
    referenceTaskName: ids.referenceTaskName,
    seq: 0,
    iteration: 0,
    taskId: "publish",
    retryCount: 0,
    executionId: crypto.randomUUID(),
  });
}
