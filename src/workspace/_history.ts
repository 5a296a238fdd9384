/**
 * Reading a branch's history for publication: the commits added since the input ref, and
 * the paths that changed under a scope between two commits.
 *
 * @module
 */
import type { Commit, LakeFsApi } from "../lakefs/api.ts";

/** Longest history since the input ref that a publication walks. */
export const MAX_COMMITS_SINCE_INPUT = 10_000;

/** What {@linkcode commitsSince} found. */
export interface HistorySince {
  /** The commits reachable from the head and added after the input ref, newest first. */
  readonly commits: readonly Commit[];
  /**
   * False when the walk never met the input ref: the branch was reset or rewritten to a
   * history without it, or more than {@linkcode MAX_COMMITS_SINCE_INPUT} commits were added.
   */
  readonly reachesInputRef: boolean;
}

/**
 * The commits of `head`'s history added after `inputRef`, newest first (lakeFS's log walk,
 * ending at the input ref, which is left out).
 *
 * Requires `--allow-net` to the lakeFS host.
 */
export async function commitsSince(
  lakefs: LakeFsApi,
  repo: string,
  head: string,
  inputRef: string,
  signal: AbortSignal,
): Promise<HistorySince> {
  const commits: Commit[] = [];
  for await (const commit of lakefs.logCommits(repo, head, { stopAt: inputRef, signal })) {
    if (commit.id === inputRef) return { commits, reachesInputRef: true };
    commits.push(commit);
    if (commits.length > MAX_COMMITS_SINCE_INPUT) break;
  }
  return { commits, reachesInputRef: false };
}

/** What {@linkcode changedUnder} found. */
export interface ScopeChanges {
  /** Up to `limit` changed paths, in path order. */
  readonly paths: readonly string[];
  /** True when more paths changed than `paths` holds. */
  readonly more: boolean;
}

/**
 * The paths under `scope` whose content differs between the commits `from` and `to` (the two
 * trees compared), at most `limit` of them.
 *
 * Requires `--allow-net` to the lakeFS host.
 */
export async function changedUnder(
  lakefs: LakeFsApi,
  repo: string,
  from: string,
  to: string,
  scope: string,
  limit: number,
  signal: AbortSignal,
): Promise<ScopeChanges> {
  if (from === to) return { paths: [], more: false };
  const paths: string[] = [];
  // One page is enough to name the first `limit` paths and to know whether there are more.
  const diff = lakefs.diffRefs(repo, from, to, {
    prefix: scope,
    type: "two_dot",
    amount: limit + 1,
    signal,
  });
  for await (const entry of diff) {
    // A prefix filter on the server is a string prefix; keep only paths truly in the scope.
    if (!entry.path.startsWith(scope)) continue;
    if (paths.length === limit) return { paths, more: true };
    paths.push(entry.path);
  }
  return { paths, more: false };
}
