/**
 * The staging of a writable workspace attempt: the plan of uploads and deletes that makes the
 * remote scope equal the attempt directory, the attempt's own staging branch made from the
 * input ref, and the plan committed there with the attempt's identity in its metadata.
 * Staging refuses what lakeFS must never receive from a task (a symlink, a file outside the
 * attempt's scope, a key that is not safe, a file swapped after the task returned), and
 * nothing here reaches the target branch: only the fenced publication does. Part of the
 * workspace phases, loaded with _workspace_attempt.ts (never import it from attempt.ts).
 *
 * @module
 */
import { LakeFsConflictError } from "../lakefs/errors.ts";
import { diffLocalWithRemote, type RemoteEntry, stageChanges } from "../lakefs/sync.ts";
import type { AttemptState, WorkspaceAttempt } from "./_attempt_state.ts";
import { UnsafePathError, WorkspaceSymlinkError } from "./errors.ts";
import { COMMIT_METADATA, type StagedCommit } from "./publish.ts";
import { checkRelativeKey, resolveInsideDir } from "./safe_path.ts";
import { describeScope, inScope } from "./scope.ts";
import { forEachPathPair, type Snapshot, type WalkedEntry } from "./snapshot.ts";
import { stagingBranchName } from "./staging.ts";
import { cursorLookup } from "../util/sorted.ts";

/** The name of this attempt's staging branch. */
export function stagingBranchOf(state: AttemptState): string {
  const attempt = state.options.attempt;
  return stagingBranchName({
    workflowInstanceId: attempt.workflowInstanceId,
    referenceTaskName: attempt.referenceTaskName,
    seq: attempt.seq,
    iteration: attempt.iteration,
    taskId: attempt.taskId,
    retryCount: attempt.retryCount,
    executionId: state.info.executionId,
  });
}

/** `stage`: the plan committed on this attempt's staging branch, made from the input ref. */
export async function stagePhase(
  ws: WorkspaceAttempt,
  plan: UploadPlan,
  branch: string,
  created: Promise<void>,
): Promise<StagedCommit> {
  const { state, lakefs, input } = ws;
  const { options, signal } = state;
  const attempt = options.attempt;
  options.onPhase?.("stage");
  await created;
  await stageChanges(lakefs, {
    repo: input.repository,
    branch,
    uploads: plan.uploads,
    deletes: plan.deletes,
    concurrency: options.syncConcurrency ?? 8,
    signal,
  });
  describeForWarmPool(state, ws.dir);
  const metadata = commitMetadata(state);
  const message = `perago: ${options.task.name} (workflow ${attempt.workflowInstanceId}, ` +
    `task ${attempt.taskId}, retry ${attempt.retryCount})`;
  const staged = await lakefs.commit(input.repository, branch, message, { metadata, signal });
  state.log.debug("staged {uploads} uploads and {deletes} deletes as {commit} on {branch}", {
    uploads: plan.uploads.length,
    deletes: plan.deletes.length,
    commit: staged.id,
    branch,
  });
  return { branch, commit: staged.id, message, metadata };
}

/**
 * Starts the warm pool's description of the directory once its files are uploaded (nothing of
 * the attempt reads them after that), where the pool asks for it (a perago run, whose exit
 * waits for the retirement): made while the commit and the publication wait on lakeFS, it is
 * no longer made by the retirement (1,000 files: 9-20 ms).
 */
function describeForWarmPool(state: AttemptState, dir: string): void {
  const pool = state.options.warmPool;
  if (pool === undefined || !pool.describesWhilePublishing || state.warm === undefined) return;
  // A directory the retirement will not keep is not described: describing takes the pool's
  // holder lock, which makes the pool's folder.
  if (!pool.worthKeeping(state.warm)) return;
  state.warmDescribed = pool.describe(dir, state.warm);
  state.warmDescribed.catch(() => {}); // the retirement describes again when this failed
}

/**
 * Makes this attempt's staging branch from the input ref once `gate` resolved (fence #1 passed
 * and the marker names the branch); the clean-up deletes it from then on.
 */
export async function createStagingBranch(
  ws: WorkspaceAttempt,
  branch: string,
  gate: Promise<unknown>,
): Promise<void> {
  await gate;
  const { state, lakefs, input } = ws;
  // The marker names the branch already (see `runWorkspace`): if this process dies before its
  // cleanup, whoever collects the attempt dir deletes the branch (a retry may never come to).
  state.staging = { repo: input.repository, branch };
  try {
    await lakefs.createBranch(input.repository, branch, input.ref, state.signal);
  } catch (error) {
    // A conflict means the branch is not ours: never delete it in cleanup.
    if (error instanceof LakeFsConflictError) delete state.staging;
    throw error;
  }
}

/**
 * Whether the walk of the snapshot after the task (`entries`, before any file is read) already
 * shows a change the publication will stage: a regular file added under the scope with a
 * valid key, a file removed, or one whose size changed, and nothing that staging refuses (a
 * symlink, a file added outside the scope, a key that is not safe).
 */
export function stagedChangeOf(
  before: Snapshot,
  entries: readonly WalkedEntry[],
  scope: string,
): boolean {
  let change = false;
  let refused = false;
  forEachPathPair(before, entries, (old, entry) => {
    if (refused) return;
    if (entry === undefined) {
      change = true; // removed
      return;
    }
    if (entry.kind !== "file") {
      refused = true;
      return;
    }
    if (old === undefined) {
      if (!inScope(entry.path, scope)) {
        refused = true;
        return;
      }
      try {
        checkRelativeKey(entry.path);
      } catch {
        refused = true;
        return;
      }
      change = true;
      return;
    }
    if (old.kind !== "file") refused = true;
    else if (old.size !== entry.size) change = true;
  });
  return change && !refused;
}

function commitMetadata(state: AttemptState): Record<string, string> {
  const { attempt } = state.options;
  return {
    [COMMIT_METADATA.workflowInstanceId]: attempt.workflowInstanceId,
    [COMMIT_METADATA.referenceTaskName]: attempt.referenceTaskName,
    [COMMIT_METADATA.taskId]: attempt.taskId,
    [COMMIT_METADATA.retryCount]: String(attempt.retryCount),
    [COMMIT_METADATA.executionId]: state.info.executionId,
    [COMMIT_METADATA.taskDefName]: attempt.taskDefName,
  };
}

/** Uploads and deletes that make the remote scope equal the attempt directory. */
export type UploadPlan = ReturnType<typeof planUploads>;

/** The uploads and deletes that make the remote scope equal the attempt directory. */
export function planUploads(
  dir: string,
  before: Snapshot,
  after: Snapshot,
  listing: readonly RemoteEntry[],
  scope: string,
): {
  uploads: { key: string; size: number; open: () => Promise<ReadableStream<Uint8Array>> }[];
  deletes: string[];
} {
  // The listing is in key order (as the download returns it), and the snapshots are visited
  // in path order: one cursor finds each path's object (one out of order is only uploaded).
  const listed = cursorLookup(listing, (entry) => entry.key);
  const local: { key: string; size: number; checksum: string | undefined }[] = [];
  forEachPathPair(before, after, (downloaded, entry) => {
    if (entry === undefined) return;
    if (entry.kind === "symlink") {
      throw new WorkspaceSymlinkError(
        `cannot stage symlink ${JSON.stringify(entry.path)} -> ${JSON.stringify(entry.digest)}: ` +
          "lakeFS stores files only; write a regular file instead",
      );
    }
    const unchanged = downloaded?.digest === entry.digest;
    if (!inScope(entry.path, scope)) {
      if (unchanged) return;
      throw new UnsafePathError(
        `cannot stage ${JSON.stringify(entry.path)}: it is outside the attempt's scope ` +
          `${JSON.stringify(describeScope(scope))}; write only under the scope`,
      );
    }
    // A file whose content is what was downloaded has the listed object's checksum.
    const checksum = unchanged ? listed(entry.path)?.checksum : undefined;
    // Such a file's path is a listed key, checked when it was downloaded (or kept): the key
    // of any other is checked here.
    if (checksum === undefined) checkRelativeKey(entry.path);
    local.push({ key: entry.path, size: entry.size, checksum });
  });
  const plan = diffLocalWithRemote(local, listing);
  return {
    uploads: plan.uploads.map((entry) => ({
      key: entry.key,
      size: entry.size,
      open: () => openForUpload(dir, entry.key),
    })),
    deletes: plan.deletes.map((entry) => entry.key),
  };
}

/** Opens a file of the attempt directory without following links (checked by inode). */
async function openForUpload(dir: string, relPath: string): Promise<ReadableStream<Uint8Array>> {
  const path = await resolveInsideDir(dir, relPath);
  const info = await Deno.lstat(path);
  if (!info.isFile) {
    throw new WorkspaceSymlinkError(
      `cannot upload ${JSON.stringify(relPath)}: it is no longer a regular file; ` +
        "do not change the workspace after the task returns",
    );
  }
  const file = await Deno.open(path, { read: true });
  const opened = await file.stat();
  if (opened.ino !== info.ino || opened.dev !== info.dev) {
    file.close();
    throw new WorkspaceSymlinkError(
      `cannot upload ${JSON.stringify(relPath)}: it was replaced while opening; ` +
        "do not change the workspace after the task returns",
    );
  }
  return file.readable;
}
