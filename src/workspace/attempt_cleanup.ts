/**
 * The end of every workspace attempt, whatever it ended with: its staging branch deleted, its
 * directory removed (or trashed, or kept by the warm pool), and the staging branches earlier
 * attempts of the same task left when their process was killed. The branch goes before the
 * directory because the directory's marker names the branch for whoever collects the
 * directory of a process that died in between; and nothing here throws, so a failed cleanup
 * never masks the outcome the attempt reports. Part of the workspace phases, loaded with
 * _workspace_attempt.ts (never import it from attempt.ts).
 *
 * @module
 */
import { dirname } from "node:path";
import type { LakeFsApi } from "../lakefs/api.ts";
import { LakeFsNotFoundError } from "../lakefs/errors.ts";
import type { Logger } from "../log/logger.ts";
import type { AttemptState } from "./_attempt_state.ts";
import type { AttemptIdentity } from "./attempt_types.ts";
import { removeAttemptDir, trashAttemptDir } from "./attempt_dir.ts";
import { isSameTaskStagingBranch, STAGING_BRANCH_PREFIX } from "./staging.ts";

/** Time the cleanup of an attempt may spend deleting its staging branch. */
const STAGING_DELETE_BUDGET_MS = 60_000;
/** Rounds of the lakeFS client's retries the staging branch deletion gets. */
const STAGING_DELETE_ROUNDS = 3;

/**
 * Deletes the attempt's staging branch, if it made one; never throws (a failure is logged).
 */
export async function deleteStaging(state: AttemptState): Promise<void> {
  const lakefs = state.options.lakefs;
  if (state.staging === undefined || lakefs === undefined) return;
  const { repo, branch } = state.staging;
  // Not the attempt's signal: a cancelled attempt must still clean up. A completed attempt
  // has no later attempt to sweep its leftovers, so a lakeFS that keeps failing gets a few
  // rounds of the client's own retries within the budget before the branch is given up.
  const budget = AbortSignal.timeout(STAGING_DELETE_BUDGET_MS);
  for (let round = 1;; round++) {
    try {
      await lakefs.deleteBranch(repo, branch, budget);
      return;
    } catch (error) {
      if (error instanceof LakeFsNotFoundError) return;
      if (round < STAGING_DELETE_ROUNDS && !budget.aborted) {
        await new Promise((resolve) => setTimeout(resolve, 250 * round));
        continue;
      }
      state.log.error("failed to delete staging branch {branch}: {error}", {
        branch,
        error: error instanceof Error ? error.message : String(error),
      });
      return;
    }
  }
}

/**
 * Ends an attempt's hold on lakeFS and the disk: its staging branch (or the deletion the
 * publication started), then its directory; never throws (failures are logged).
 */
export async function cleanup(state: AttemptState, token: string): Promise<void> {
  // The branch first: until it is gone, the directory's marker names it for whoever collects
  // the directory of a process that died here.
  await (state.stagingDeleted ?? deleteStaging(state));
  await removeDir(state, token);
}

/** Removes (or trashes) the attempt directory; never throws (a failure is logged). */
async function removeDir(state: AttemptState, token: string): Promise<void> {
  const { log } = state;
  if (state.dir !== undefined) {
    const dir = state.dir;
    try {
      const pool = state.options.warmPool;
      const info = pool === undefined || state.warm === undefined
        ? undefined
        : await Deno.lstat(dir).catch(() => undefined);
      if (pool !== undefined && state.warm !== undefined && info?.isDirectory) {
        // Kept for a later attempt, whatever this one ended with: its download completed
        // (`warm` is set only then), and the pool reads again whatever changed since.
        pool.retire(dir, state.warm, state.warmDescribed);
      } else if (state.options.removeDirInBackground === true) {
        // The directory is this attempt's whatever the task did to its marker: only a real
        // directory (never a link the path was swapped for) is moved.
        const info = await Deno.lstat(dir).catch(() => undefined);
        if (info?.isDirectory) {
          await trashAttemptDir(
            dirname(dir),
            dir,
            (error) =>
              log.error("failed to remove attempt directory {dir}: {error}", {
                dir,
                error: error instanceof Error ? error.message : String(error),
              }),
          );
        }
      } else if (!(await removeAttemptDir(dir, { expectedToken: token }))) {
        // The task may have removed or rewritten the marker; the directory is still ours.
        const info = await Deno.lstat(dir).catch(() => undefined);
        if (info?.isDirectory) await Deno.remove(dir, { recursive: true });
      }
    } catch (error) {
      log.error("failed to remove attempt directory {dir}: {error}", {
        dir,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
}

/**
 * Deletes the staging branches earlier attempts of the same workflow task left behind (their
 * process was killed before its `finally` ran). Best effort: a failure is logged and never
 * fails the attempt.
 */
export async function deleteLeftoverStaging(
  lakefs: LakeFsApi,
  repo: string,
  attempt: AttemptIdentity,
  options: { except: string; log: Logger; signal: AbortSignal },
): Promise<void> {
  const { log, signal } = options;
  try {
    const leftovers: string[] = [];
    for await (const ref of lakefs.listBranches(repo, { prefix: STAGING_BRANCH_PREFIX, signal })) {
      // The attempt's own staging branch may be listed: it is being made meanwhile.
      if (ref.id !== options.except && isSameTaskStagingBranch(ref.id, attempt)) {
        leftovers.push(ref.id);
      }
    }
    for (const branch of leftovers) {
      await lakefs.deleteBranch(repo, branch, signal);
      log.info("deleted staging branch {branch} left by an earlier attempt", { branch });
    }
  } catch (error) {
    if (signal.aborted) throw error;
    log.warn("deleting staging branches of earlier attempts failed: {message}", {
      message: (error as Error).message,
    });
  }
}
