/**
 * Publication of a writable attempt onto its target branch, with the attempt's scope as the
 * unit of optimistic concurrency: writers of disjoint scopes publish side by side on one
 * branch; where scopes overlap, the first publication wins and the others fail clearly.
 *
 * The rules, for an attempt that read the input ref A and finds the branch head H:
 * - H == A: a changed attempt squash-merges its staging branch; an unchanged one completes
 *   with A.
 * - An earlier attempt of the same workflow task already published since A (its commit,
 *   recognised by perago's commit metadata, is anywhere in the history from A to H, and was
 *   not reverted): the attempt completes with that publication and publishes nothing. Only
 *   when that commit is H itself, directly on A (so provably nothing but ours was added), may
 *   a retry with different content replace it by a hard reset, as an unchanged retry resets
 *   the branch back to A. A protected branch (lakeFS branch protection refuses hard resets
 *   and commits, not merges) gets the same tree by merges instead: the earlier publication
 *   is reverted on a throw-away branch from the head, the staging branch merged there, and
 *   that branch squash-merged into the target as a commit marked with what it replaced.
 *   When that earlier merge landed on a head whose scope had changed since A (its process
 *   died in the window below, before reverting it), the retry reverts it and fails with a
 *   {@linkcode ScopeConflictError}, as the earlier attempt would have.
 * - Otherwise, when nothing under the scope changed between A and H, the attempt's view is
 *   what it would have read at H: a changed attempt merges onto H (lakeFS merges three ways, so
 *   no other writer's change is dropped); an unchanged one completes with H.
 * - Something under the scope changed: {@linkcode ScopeConflictError}, nothing published.
 *
 * lakeFS cannot make the scope check and the merge one step, so every merge is checked right
 * after: when the merge landed on a head other than the one checked and a change under the
 * scope slipped in between, the attempt reverts its own merge (a new commit; nothing else is
 * touched) and fails with a {@linkcode ScopeConflictError} saying so. Two writers of one scope
 * therefore never both publish.
 *
 * @module
 */
import type { Commit, LakeFsApi } from "../lakefs/api.ts";
import {
  LakeFsConflictError,
  LakeFsNoChangesError,
  LakeFsProtectedBranchError,
} from "../lakefs/errors.ts";
import { changedUnder, commitsSince, MAX_COMMITS_SINCE_INPUT } from "./_history.ts";
import { ScopeConflictError } from "./errors.ts";
import { describeScope } from "./scope.ts";
import { publishBranchName } from "./staging.ts";

export { assertCurrentAttempt, type CurrentTaskState, type FencedAttempt } from "./fence.ts";

/** Metadata keys perago writes on the commits it publishes. */
export const COMMIT_METADATA = {
  workflowInstanceId: "perago_workflow_instance_id",
  referenceTaskName: "perago_reference_task_name",
  taskId: "perago_task_id",
  retryCount: "perago_retry_count",
  executionId: "perago_execution_id",
  taskDefName: "perago_task_def_name",
  /** On a revert commit perago made: the id of the publication it undid. */
  revertedCommit: "perago_reverted_commit",
} as const;

/** How many changed paths a conflict message names. */
export const CONFLICT_PATHS_SHOWN = 10;

/** Where publication happens and whose commits count as an earlier attempt's. */
export interface PublishTarget {
  readonly repo: string;
  readonly branch: string;
  /** The input ref A the attempt read. */
  readonly inputRef: string;
  /** The attempt's scope (`""` = the whole repository). */
  readonly scope: string;
  readonly workflowInstanceId: string;
  readonly referenceTaskName: string;
  /**
   * Timeout of each merge and hard-reset request of the publication, ms (the task's
   * `controls.publishBudget.lakefsMergeTimeoutSeconds`). @default the client's request timeout
   */
  readonly publishRequestTimeoutMs?: number | undefined;
}

/** A commit staged on the attempt's staging branch, ready to be published. */
export interface StagedCommit {
  readonly branch: string;
  readonly commit: string;
  readonly message: string;
  readonly metadata: Record<string, string>;
}

/** How an attempt's result reached the branch. */
export type PublicationKind =
  /** Nothing changed; the branch head (A, or a head whose scope equals A's) is the output. */
  | "unchanged"
  /** The staged changes were squash-merged; the merge commit is the output. */
  | "merged"
  /** An earlier attempt of the same task had published since A; its commit is the output. */
  | "earlier-attempt"
  /**
   * The branch held only an earlier attempt's commit on A; it was hard-reset to this one (or,
   * on a protected branch, a merge on top of it replaced its content with this one's).
   */
  | "replaced-earlier-attempt";

/** What {@linkcode publish} can be given besides the target and the staged commit. */
export interface PublishOptions {
  /**
   * The target branch's head, read by the caller (while it staged): the head the
   * publication checks and merges onto. @default read first thing
   */
  readonly head?: Promise<string>;
  /**
   * Called once the squash merge landed (before it is checked): the staging branch is of no
   * further use from then on.
   */
  readonly onMerged?: () => void;
}

/** The published ref and how it was reached. */
export interface Publication {
  readonly ref: string;
  readonly kind: PublicationKind;
}

/**
 * Publishes an attempt: `staged` for a changed workspace, `undefined` for an unchanged one.
 * Returns the ref the task's output carries.
 *
 * @throws {ScopeConflictError} (terminal) when the scope changed since A, or during the merge.
 * @throws {LakeFsError} when lakeFS fails (retried inside the client first).
 * Requires `--allow-net` to the lakeFS host.
 * @example
 * ```ts ignore
 * // As runAttempt does (attempt.ts): `target` names the branch, the input ref and the scope,
 * // `staged` is the commit on the staging branch (undefined when nothing changed).
 * const { ref, kind } = await publish(lakefs, target, staged, signal);
 * // Or with the head read already and a hook for when the merge has landed:
 * // await publish(lakefs, target, staged, signal, { head, onMerged: () => {} });
 * ```
 */
export async function publish(
  lakefs: LakeFsApi,
  target: PublishTarget,
  staged: StagedCommit | undefined,
  signal: AbortSignal,
  options: PublishOptions = {},
): Promise<Publication> {
  const head = options.head === undefined
    ? (await lakefs.getBranch(target.repo, target.branch, signal)).commit_id
    : await options.head;
  if (head === target.inputRef) {
    if (staged === undefined) return { ref: head, kind: "unchanged" };
    return await mergeChecked(lakefs, target, staged, head, signal, options.onMerged);
  }

  const history = await commitsSince(lakefs, target.repo, head, target.inputRef, signal);
  if (!history.reachesInputRef) {
    throw new ScopeConflictError(
      `cannot publish to branch ${target.branch} of ${target.repo}: its head ${head} no ` +
        `longer descends from the input ref ${target.inputRef} within ` +
        `${MAX_COMMITS_SINCE_INPUT} commits (the branch was reset or rewritten), so the ` +
        `scope ${JSON.stringify(describeScope(target.scope))} cannot be proven unchanged; ` +
        "run the workflow again on the new head",
      { scope: target.scope, paths: [] },
    );
  }
  const earlier = earlierPublication(history.commits, target);
  if (earlier !== undefined) {
    return await completeWithEarlier(
      lakefs,
      target,
      staged,
      earlier,
      head,
      history.commits,
      signal,
    );
  }

  const changes = await changedUnder(
    lakefs,
    target.repo,
    target.inputRef,
    head,
    target.scope,
    CONFLICT_PATHS_SHOWN,
    signal,
  );
  if (changes.paths.length > 0) {
    throw new ScopeConflictError(
      `cannot publish to branch ${target.branch} of ${target.repo}: scope ` +
        `${JSON.stringify(describeScope(target.scope))} changed since the input ref ` +
        `${target.inputRef}: ${listPaths(changes.paths, changes.more)}; the head is ${head}. ` +
        "Another writer published there first; run the workflow again on the new head",
      { scope: target.scope, paths: changes.paths },
    );
  }
  if (staged === undefined) return { ref: head, kind: "unchanged" };
  return await mergeChecked(lakefs, target, staged, head, signal, options.onMerged);
}

/**
 * The newest commit since A that an earlier attempt of the same workflow task published and
 * nobody reverted (perago reverts its own merge when a concurrent change slipped in). A
 * replacement (a publication marked with the one it replaced) undoes that one; once the
 * replacement is itself reverted, the one it replaced counts again.
 */
function earlierPublication(
  commits: readonly Commit[],
  target: PublishTarget,
): Commit | undefined {
  // Newest first: a revert always comes before (is newer than) the commit it undid.
  const reverted = new Set<string>();
  for (const commit of commits) {
    if (reverted.has(commit.id)) continue;
    if (isPublicationOf(commit, target)) return commit;
    const undid = commit.metadata?.[COMMIT_METADATA.revertedCommit];
    if (undid !== undefined) reverted.add(undid);
  }
  return undefined;
}

/** Whether `commit` is a publication of the target's workflow task. */
function isPublicationOf(commit: Commit, target: PublishTarget): boolean {
  return commit.metadata?.[COMMIT_METADATA.workflowInstanceId] === target.workflowInstanceId &&
    commit.metadata?.[COMMIT_METADATA.referenceTaskName] === target.referenceTaskName;
}

/**
 * Where a publication landed, seen through replacements: a publication that replaced an
 * earlier one of the same task (by merges, on a protected branch) counts from where that one
 * landed. `direct` says every replacement sits right on the one it replaced; `landedBeside`
 * names what landed under the scope between a replaced publication and its replacement.
 */
async function landingOf(
  lakefs: LakeFsApi,
  target: PublishTarget,
  publication: Commit,
  history: readonly Commit[],
  signal: AbortSignal,
): Promise<{ base: Commit; chain: Commit[]; direct: boolean; landedBeside: string[] }> {
  const byId = new Map(history.map((commit) => [commit.id, commit]));
  const chain = [publication];
  let base = publication;
  let direct = publication.parents.length === 1;
  const landedBeside: string[] = [];
  for (;;) {
    const replaced = base.metadata?.[COMMIT_METADATA.revertedCommit];
    const previous = replaced === undefined ? undefined : byId.get(replaced);
    if (previous === undefined || !isPublicationOf(previous, target)) break;
    const onto = base.parents[0];
    if (onto !== previous.id) {
      direct = false;
      if (onto !== undefined) {
        const beside = await changedUnder(
          lakefs,
          target.repo,
          previous.id,
          onto,
          target.scope,
          CONFLICT_PATHS_SHOWN,
          signal,
        );
        landedBeside.push(...beside.paths);
      }
    }
    if (previous.parents.length !== 1) direct = false;
    chain.push(previous);
    base = previous;
  }
  return { base, chain, direct, landedBeside };
}

/**
 * An earlier attempt of the same task published `earlier` since A. When it is the head and
 * sits directly on A (through its own replacements), nothing but ours was added, so a retry
 * whose content differs may replace it; otherwise the earlier publication stands and is the
 * output.
 */
async function completeWithEarlier(
  lakefs: LakeFsApi,
  target: PublishTarget,
  staged: StagedCommit | undefined,
  earlier: Commit,
  head: string,
  history: readonly Commit[],
  signal: AbortSignal,
): Promise<Publication> {
  const landing = await landingOf(lakefs, target, earlier, history, signal);
  // A scope change the earlier attempt's merge combined with: reverted, terminal.
  const scopeChanged = `scope ${JSON.stringify(describeScope(target.scope))} of branch ` +
    `${target.branch} changed`;
  const revertEarlier = (what: string, paths: readonly string[]) =>
    revertAndFail(lakefs, target, earlier.id, `${scopeChanged} ${what}`, paths, {
      whose: "the earlier attempt's merge",
      why: " (it ended before checking it)",
    }, signal);
  if (landing.landedBeside.length > 0) {
    await revertEarlier(
      "under an earlier attempt of this task while it replaced an earlier publication: " +
        listPaths(landing.landedBeside, false),
      landing.landedBeside,
    );
  }
  // The earlier merge landed on its only parent. Had the scope changed between A and that
  // head, the earlier attempt's own check after the merge would have reverted it; it died
  // before, so this retry finishes the job rather than completing with a combination.
  const mergedOnto = landing.base.parents[0];
  if (mergedOnto !== undefined && mergedOnto !== target.inputRef) {
    const combined = await changedUnder(
      lakefs,
      target.repo,
      target.inputRef,
      mergedOnto,
      target.scope,
      CONFLICT_PATHS_SHOWN,
      signal,
    );
    if (combined.paths.length > 0) {
      await revertEarlier(
        `between the input ref ${target.inputRef} and the head an earlier attempt of this ` +
          `task merged onto (${mergedOnto}): ${listPaths(combined.paths, combined.more)}`,
        combined.paths,
      );
    }
  }
  const provablyOurs = earlier.id === head && landing.direct && mergedOnto === target.inputRef;
  if (provablyOurs) {
    const wanted = staged?.commit ?? target.inputRef;
    const differs = await changedUnder(
      lakefs,
      target.repo,
      earlier.id,
      wanted,
      target.scope,
      1,
      signal,
    );
    if (differs.paths.length > 0) {
      try {
        await lakefs.hardReset(target.repo, target.branch, wanted, signal, timeouts(target));
        return { ref: wanted, kind: "replaced-earlier-attempt" };
      } catch (error) {
        if (!(error instanceof LakeFsProtectedBranchError)) throw error;
      }
      // A protected branch takes merges only.
      return await replaceByMerges(lakefs, target, staged, landing.chain, signal);
    }
  }
  return { ref: earlier.id, kind: "earlier-attempt" };
}

/**
 * Replaces this task's publications `chain` (the head first, each directly on the next, the
 * last directly on A) with the staged content (or A's when nothing is staged) using merges
 * only, as a protected branch allows: on a throw-away branch from the head, each publication
 * is reverted (its tree is then A's) and the staging branch merged (base A, so the tree is
 * the staged one); that branch is squash-merged into the target, a commit marked with the
 * publication it replaces. The merge is checked as {@linkcode mergeChecked} checks one.
 */
async function replaceByMerges(
  lakefs: LakeFsApi,
  target: PublishTarget,
  staged: StagedCommit | undefined,
  chain: readonly Commit[],
  signal: AbortSignal,
): Promise<Publication> {
  const replaced = chain[0]!.id;
  const temp = publishBranchName(target);
  await lakefs.createBranch(target.repo, temp, replaced, signal);
  try {
    for (const publication of chain) {
      await lakefs.revertCommit(target.repo, temp, publication.id, {
        message: `perago: revert ${publication.id} (replaced by a retry of the same task)`,
        metadata: { [COMMIT_METADATA.revertedCommit]: publication.id },
        signal,
      });
    }
    if (staged !== undefined) {
      try {
        await squashMerge(lakefs, target, staged.branch, temp, staged, signal);
      } catch (error) {
        // The staged tree is A's: the reverts made it already.
        if (!(error instanceof LakeFsNoChangesError)) throw error;
      }
    }
    const publication: StagedCommit = {
      branch: temp,
      commit: replaced,
      message: staged?.message ??
        `perago: back to the input ref ${target.inputRef} ` +
          "(a retry of the same task changed nothing)",
      metadata: {
        ...(staged?.metadata ?? {
          [COMMIT_METADATA.workflowInstanceId]: target.workflowInstanceId,
          [COMMIT_METADATA.referenceTaskName]: target.referenceTaskName,
        }),
        [COMMIT_METADATA.revertedCommit]: replaced,
      },
    };
    const merged = await mergeChecked(lakefs, target, publication, replaced, signal, undefined);
    return { ref: merged.ref, kind: "replaced-earlier-attempt" };
  } finally {
    await lakefs.deleteBranch(target.repo, temp, signal).catch(() => {});
  }
}

/**
 * Squash-merges the staging branch into the target and checks the result: the merge commit's
 * parent is the head lakeFS merged onto; when that is not `checkedHead` and the scope changed
 * in between, the merge is reverted and a {@linkcode ScopeConflictError} thrown.
 */
async function mergeChecked(
  lakefs: LakeFsApi,
  target: PublishTarget,
  staged: StagedCommit,
  checkedHead: string,
  signal: AbortSignal,
  onMerged: (() => void) | undefined,
): Promise<Publication> {
  const scopeShown = JSON.stringify(describeScope(target.scope));
  let merged: string;
  try {
    merged = await squashMerge(lakefs, target, staged.branch, target.branch, staged, signal);
  } catch (error) {
    if (!(error instanceof LakeFsConflictError)) throw error;
    // Checked clean, yet the three-way merge conflicts: another writer changed the same
    // paths between the check and the merge. lakeFS refused, so nothing was published.
    throw new ScopeConflictError(
      `cannot publish to branch ${target.branch} of ${target.repo}: another writer changed ` +
        `the same paths under scope ${scopeShown} between the check (head ${checkedHead}) and ` +
        `the merge (lakeFS: ${error.message}); nothing was published; run the workflow ` +
        "again on the new head",
      { scope: target.scope, paths: [], cause: error },
    );
  }
  onMerged?.();
  const commit = await lakefs.getCommit(target.repo, merged, signal);
  const mergedOnto = commit.parents[0];
  if (mergedOnto === undefined || mergedOnto === checkedHead) {
    return { ref: merged, kind: "merged" };
  }
  const slipped = await changedUnder(
    lakefs,
    target.repo,
    checkedHead,
    mergedOnto,
    target.scope,
    CONFLICT_PATHS_SHOWN,
    signal,
  );
  if (slipped.paths.length === 0) return { ref: merged, kind: "merged" };

  const what = `scope ${scopeShown} of branch ${target.branch} changed between the check ` +
    `(head ${checkedHead}) and the merge (onto ${mergedOnto}): ` +
    `${listPaths(slipped.paths, slipped.more)}`;
  return await revertAndFail(lakefs, target, merged, what, slipped.paths, {
    whose: "this attempt's merge",
    why: "",
  }, signal);
}

/**
 * Reverts `merged`, a publication of this task that combined its change with another
 * writer's under the scope (a new commit marked with what it undid; nothing else is touched),
 * and throws the {@linkcode ScopeConflictError} saying so, or saying the revert failed.
 */
async function revertAndFail(
  lakefs: LakeFsApi,
  target: PublishTarget,
  merged: string,
  what: string,
  paths: readonly string[],
  named: { whose: string; why: string },
  signal: AbortSignal,
): Promise<never> {
  try {
    await revertPublication(lakefs, target, merged, `perago: revert ${merged} (${what})`, signal);
  } catch (error) {
    throw new ScopeConflictError(
      `${what}; ${named.whose} ${merged}${named.why} could not be reverted ` +
        `(${(error as Error).message}), so both changes are on the branch; check the scope ` +
        "by hand before running the workflow again",
      { scope: target.scope, paths, cause: error },
    );
  }
  throw new ScopeConflictError(
    `${what}; ${named.whose} ${merged}${named.why} was reverted so the two changes are not ` +
      "combined; run the workflow again on the new head",
    { scope: target.scope, paths },
  );
}

/**
 * Reverts `merged` on the target branch: directly (lakeFS allows a revert on a protected
 * branch), or where a server refuses it there, on a throw-away branch from the head that is
 * then squash-merged into the target. Either way the new commit is marked with what it undid.
 */
async function revertPublication(
  lakefs: LakeFsApi,
  target: PublishTarget,
  merged: string,
  message: string,
  signal: AbortSignal,
): Promise<void> {
  const metadata = { [COMMIT_METADATA.revertedCommit]: merged };
  try {
    await lakefs.revertCommit(target.repo, target.branch, merged, { message, metadata, signal });
    return;
  } catch (error) {
    if (!(error instanceof LakeFsProtectedBranchError)) throw error;
  }
  const temp = publishBranchName(target);
  await lakefs.createBranch(target.repo, temp, target.branch, signal);
  try {
    await lakefs.revertCommit(target.repo, temp, merged, { message, metadata, signal });
    await squashMerge(lakefs, target, temp, target.branch, { message, metadata }, signal);
  } finally {
    await lakefs.deleteBranch(target.repo, temp, signal).catch(() => {});
  }
}

function listPaths(paths: readonly string[], more: boolean): string {
  const shown = paths.map((path) => JSON.stringify(path)).join(", ");
  return more ? `${shown} and more` : shown;
}

/** Squash-merges `from` into `into` as one commit with `commit`'s message and metadata. */
function squashMerge(
  lakefs: LakeFsApi,
  target: PublishTarget,
  from: string,
  into: string,
  commit: { message: string; metadata: Record<string, string> },
  signal: AbortSignal,
): Promise<string> {
  return lakefs.merge(target.repo, from, into, {
    message: commit.message,
    metadata: commit.metadata,
    squashMerge: true,
    signal,
    ...timeouts(target),
  });
}

/** The publish budget's request timeout of a merge or hard reset, when the task has one. */
function timeouts(target: PublishTarget): { requestTimeoutMs?: number } {
  return target.publishRequestTimeoutMs === undefined
    ? {}
    : { requestTimeoutMs: target.publishRequestTimeoutMs };
}
