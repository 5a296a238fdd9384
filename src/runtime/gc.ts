/**
 * Garbage collection of attempt directories under the workspace root. A directory is removed
 * only when all of these hold:
 * - it is a real directory (symlinks are never followed nor removed) holding the marker
 *   `.perago-attempt.json` as a regular file that parses;
 * - its owner is gone: the owner pid is dead, or, when the owner pid is this process
 *   (thread mode), the owner token is no longer active;
 * - it is older than the TTL (by the marker's `started_at`, else the marker's mtime).
 * Everything else (foreign files, young dirs, live owners, unreadable markers) is kept, but
 * for an empty `task_id=...` dir without a marker (its process died before writing one),
 * which a full sweep removes once it is older than the TTL.
 *
 * A removed directory whose marker names a staging branch (written just before the attempt
 * creates it) is reported in {@linkcode SweepReport.stagingBranches}: its owner died before its
 * own cleanup ran, and the caller deletes the branch, so a killed attempt whose task is never
 * retried (its workflow failed or was cancelled meanwhile) leaves no branch behind.
 *
 * @module
 */
import { removeTrashIfEmpty, TRASH_DIR_NAME } from "../workspace/attempt_dir.ts";
import { STAGING_BRANCH_PREFIX } from "../workspace/staging.ts";
import { isPidAlive } from "./_pid.ts";

/** Name of the marker file the attempt writes into its directory. */
export const ATTEMPT_MARKER = ".perago-attempt.json";

/** The marker fields GC reads. */
export interface AttemptMarker {
  owner_pid: number;
  owner_token: string | undefined;
  owner_worker_id: string | undefined;
  started_at: string | undefined;
  /** The staging branch the attempt was creating or had created, if it got that far. */
  staging: StagingBranchRef | undefined;
}

/** A staging branch named by an attempt marker. */
export interface StagingBranchRef {
  repository: string;
  branch: string;
}

/** Options of {@linkcode sweepAttemptDirs}. */
export interface SweepOptions {
  /** Minimum age in ms; 0 at startup and at the final sweep. */
  ttlMs: number;
  /** Only directories whose marker names this owner pid (collecting a dead executor's dir). */
  onlyOwnerPid?: number;
  /** Only directories whose marker names this owner worker id (a dead thread-mode executor). */
  onlyOwnerWorkerId?: string;
  /** @default Date.now() */
  now?: number;
  /** @default kill(pid, 0) */
  isPidAlive?: (pid: number) => boolean;
  /** Whether an in-process owner token is active (thread mode). @default () => false */
  isTokenActive?: (token: string) => boolean;
  /** This process's pid (owner of thread-mode attempts). @default Deno.pid */
  selfPid?: number;
  signal?: AbortSignal;
}

/** Why a directory was kept or removed, for logs and tests. */
export interface SweepReport {
  removed: string[];
  kept: { path: string; reason: string }[];
  errors: { path: string; error: unknown }[];
  /** Staging branches named by the markers of removed directories: the caller deletes them. */
  stagingBranches: StagingBranchRef[];
}

/**
 * Sweeps `root` once. Never throws for a single directory; a missing root is an empty sweep.
 * Requires read and write access to `root` and `--allow-run` for the pid check.
 *
 * @example
 * ```ts
 * const workspaceRoot = await Deno.makeTempDir();
 * const report = await sweepAttemptDirs(workspaceRoot, { ttlMs: 0 }); // nothing to sweep yet
 * ```
 */
export async function sweepAttemptDirs(root: string, options: SweepOptions): Promise<SweepReport> {
  const report: SweepReport = { removed: [], kept: [], errors: [], stagingBranches: [] };
  const now = options.now ?? Date.now();
  const alive = options.isPidAlive ?? isPidAlive;
  const tokenActive = options.isTokenActive ?? (() => false);
  const selfPid = options.selfPid ?? Deno.pid;
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(root));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return report;
    throw error;
  }
  for (const entry of entries) {
    options.signal?.throwIfAborted();
    const path = `${root.replace(/\/+$/, "")}/${entry.name}`;
    try {
      // readDir reports the link itself; lstat again in case the entry changed meanwhile.
      const stat = await Deno.lstat(path);
      if (stat.isSymlink || !stat.isDirectory) continue; // not ours: silently ignored
      if (entry.name === TRASH_DIR_NAME) {
        await sweepTrash(path, options, alive, selfPid, report);
        continue;
      }
      const marker = await readMarker(path);
      if (marker === undefined) {
        // A process killed between creating its attempt dir and writing the marker leaves an
        // empty dir nobody can attribute. A full sweep (no owner filter: startup, periodic,
        // final) removes it once older than the TTL; a non-empty one is never touched
        // (a non-recursive remove refuses it).
        const orphan = entry.name.startsWith("task_id=") &&
          options.onlyOwnerPid === undefined && options.onlyOwnerWorkerId === undefined &&
          now - (stat.mtime?.getTime() ?? now) >= options.ttlMs;
        if (orphan && await Deno.remove(path).then(() => true, () => false)) {
          report.removed.push(path);
        } else {
          report.kept.push({ path, reason: "no marker" });
        }
        continue;
      }
      if (options.onlyOwnerPid !== undefined && marker.owner_pid !== options.onlyOwnerPid) {
        continue;
      }
      if (
        options.onlyOwnerWorkerId !== undefined &&
        marker.owner_worker_id !== options.onlyOwnerWorkerId
      ) {
        continue;
      }
      if (marker.owner_pid === selfPid) {
        if (marker.owner_token === undefined || tokenActive(marker.owner_token)) {
          report.kept.push({ path, reason: "owner token active" });
          continue;
        }
      } else if (alive(marker.owner_pid)) {
        report.kept.push({ path, reason: `owner pid ${marker.owner_pid} alive` });
        continue;
      }
      const startedMs = marker.started_at ? Date.parse(marker.started_at) : NaN;
      const bornMs = Number.isFinite(startedMs) ? startedMs : (marker.mtimeMs ?? now);
      if (now - bornMs < options.ttlMs) {
        report.kept.push({ path, reason: "younger than TTL" });
        continue;
      }
      // Re-check right before removal: the path must still be a real directory.
      const again = await Deno.lstat(path);
      if (again.isSymlink || !again.isDirectory) continue;
      await Deno.remove(path, { recursive: true });
      report.removed.push(path);
      if (marker.staging !== undefined) report.stagingBranches.push(marker.staging);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      report.errors.push({ path, error });
    }
  }
  return report;
}

/**
 * Removes what attempts moved into the trash folder and whose owner process is gone (its
 * pid starts each name, see `trashAttemptDir`), then the folder itself when it is empty. An
 * entry of a live process, or of this one, is its own background removal's (this process's
 * is removed as well by a full sweep: two recursive removals of one tree only race to
 * `NotFound`).
 */
async function sweepTrash(
  trash: string,
  options: SweepOptions,
  alive: (pid: number) => boolean,
  selfPid: number,
  report: SweepReport,
): Promise<void> {
  for (const entry of await Array.fromAsync(Deno.readDir(trash))) {
    const path = `${trash}/${entry.name}`;
    const pid = Number(/^([1-9][0-9]*)-/.exec(entry.name)?.[1]);
    if (!Number.isSafeInteger(pid)) continue; // not named by trashAttemptDir: not ours
    if (options.onlyOwnerPid !== undefined && pid !== options.onlyOwnerPid) continue;
    const ownersRemoval = pid === selfPid
      ? options.onlyOwnerWorkerId !== undefined || options.isTokenActive !== undefined
      : alive(pid);
    if (ownersRemoval) continue;
    try {
      const info = await Deno.lstat(path);
      if (info.isSymlink || !info.isDirectory) continue;
      await Deno.remove(path, { recursive: true });
      report.removed.push(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) report.errors.push({ path, error });
    }
  }
  // The folder itself once empty: its last removal would have taken it, but that removal's
  // process died.
  await removeTrashIfEmpty(trash);
}

/**
 * Reads the marker of an attempt directory; `undefined` when absent, a symlink, or not a
 * valid marker (such directories are never collected).
 */
export async function readMarker(
  dir: string,
): Promise<(AttemptMarker & { mtimeMs: number | undefined }) | undefined> {
  const path = `${dir}/${ATTEMPT_MARKER}`;
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.lstat(path);
  } catch {
    return undefined;
  }
  if (!stat.isFile) return undefined;
  try {
    const value = JSON.parse(await Deno.readTextFile(path)) as Record<string, unknown>;
    const pid = value.owner_pid;
    if (typeof pid !== "number" || !Number.isInteger(pid) || pid <= 0) return undefined;
    return {
      owner_pid: pid,
      owner_token: typeof value.owner_token === "string" ? value.owner_token : undefined,
      owner_worker_id: typeof value.owner_worker_id === "string"
        ? value.owner_worker_id
        : undefined,
      started_at: typeof value.started_at === "string" ? value.started_at : undefined,
      staging: stagingOf(value),
      mtimeMs: stat.mtime?.getTime(),
    };
  } catch {
    return undefined;
  }
}

/**
 * The staging branch a marker names. Only a name with the staging prefix counts: the marker
 * lies in a directory the task could write to, and nothing else may ever be deleted for it.
 */
function stagingOf(value: Record<string, unknown>): StagingBranchRef | undefined {
  const repository = value.staging_repository;
  const branch = value.staging_branch;
  if (typeof repository !== "string" || typeof branch !== "string") return undefined;
  if (!/^[a-z0-9][a-z0-9-]{2,62}$/.test(repository)) return undefined;
  if (!branch.startsWith(STAGING_BRANCH_PREFIX) || !/^\w[-\w]*$/.test(branch)) return undefined;
  return { repository, branch };
}
