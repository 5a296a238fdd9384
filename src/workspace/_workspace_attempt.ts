/**
 * The phases of a workspace task's attempt: download, run between snapshots, stage, publish
 * behind fences, and the cleanup of its directory and staging branch. attempt.ts imports this
 * module on the first attempt of a workspace task only: a worker serving workspace-free tasks
 * never holds the lakeFS sync, snapshot and publication code (2.2 MiB of an executor's RSS
 * after its attempts, measured with the start-up benchmark's executor).
 *
 * @module
 */
import { type DownloadCache, downloadPrefix, type RemoteEntry } from "../lakefs/sync.ts";
import { TaskInputError } from "../task/errors.ts";
import { join } from "node:path";
import { readAhead } from "../util/read_ahead.ts";
import { prepareAttemptDir, recordStagingBranch, trashAttemptDir } from "./attempt_dir.ts";
import { checkInputKeys, invokeTaskBody, parseWorkspaceInput, workspaceOutput } from "./_invoke.ts";
import type { newOwner } from "./owners.ts";
import { assertCurrentAttempt } from "./publish.ts";
import { KeyTreeGuard, resolveInsideDir } from "./safe_path.ts";
import { describeScope, resolveScope } from "./scope.ts";
import {
  changeStamp,
  diffSnapshots,
  type Snapshot,
  snapshotDir,
  snapshotsEqual,
  type WrittenDigests,
} from "./snapshot.ts";
import { type KnownFile, walkClaimedDir, type WalkedDir } from "./warm_pool.ts";
import {
  type AttemptState,
  type BodyResult,
  context,
  type WorkspaceAttempt,
} from "./_attempt_state.ts";
import { deleteLeftoverStaging } from "./attempt_cleanup.ts";
import {
  createStagingBranch,
  planUploads,
  stagedChangeOf,
  stagePhase,
  stagingBranchOf,
  type UploadPlan,
} from "./attempt_stage.ts";
import { assertUnchanged, publishPhase, readHead } from "./attempt_publish.ts";

export { cleanup } from "./attempt_cleanup.ts";

/**
 * The attempt of a workspace task, phase by phase: download, run (between two snapshots for
 * a writable task), then, when something changed, stage and publish, each publication step
 * behind a fence.
 */
export async function runWorkspace(
  state: AttemptState,
  owner: ReturnType<typeof newOwner>,
): Promise<BodyResult> {
  const { options, signal } = state;
  const spec = options.task.workspace!;
  const ws = await openWorkspace(state, owner);
  const listing = await downloadPhase(ws);
  const snapshots = !spec.readOnly || options.verifyReadOnly === true;
  if (snapshots) options.onPhase?.("snapshot");
  const before = snapshots
    ? await snapshotDir(ws.dir, { signal, written: writtenDigests(listing) })
    : undefined;
  if (before !== undefined) noteCachedDigests(options.downloadCache, listing, before);
  // Taken before the task runs: a file whose ctime is older was not changed by the task.
  const stamp = before === undefined && options.warmPool === undefined ? 0 : changeStamp(ws.dir);
  if (options.warmPool !== undefined) {
    state.warm = {
      repository: ws.input.repository,
      scope: ws.scope,
      stampMs: stamp,
      known: knownFiles(listing, before),
    };
  }
  const result = await runPhase(ws);
  const since = before === undefined ? undefined : { snapshot: before, stamp };

  if (spec.readOnly || before === undefined || options.dryRun) {
    // Read-only, or a dry run: no lakeFS side effect to fence; complete with the input ref.
    if (before !== undefined) {
      const after = await snapshotDir(ws.dir, { signal, since });
      if (spec.readOnly) assertUnchanged(options.task.name, before, after);
      else state.changes = diffSnapshots(before, after);
    }
    return {
      output: { workspace: workspaceOutput(ws.input, ws.input.ref, options.refStyle), result },
      publishedRef: ws.input.ref,
    };
  }

  options.onPhase?.("snapshot");
  const branch = stagingBranchOf(state);
  // Fence #1 is read while the snapshot is taken: it guards what comes after both (deleting
  // leftovers, staging, publishing), and nothing of that starts before both are done.
  const fenced = fence(state);
  let walkedChange = false;
  const snapshotted = snapshotDir(ws.dir, {
    signal,
    since,
    onWalked: (entries) => walkedChange = stagedChangeOf(before, entries, ws.scope),
  });
  // Meanwhile the marker names the staging branch, which must happen before the branch can
  // exist (a process that dies later leaves it to whoever collects the directory). The
  // snapshot walked the directory before returning, so the marker's rewrite is not in it. When
  // nothing changed no branch is made, and a collector deleting the name finds none.
  const recorded = recordStagingBranch(ws.dir, ws.input.repository, branch);
  // A change the walk already shows will be staged: its branch is made as soon as fence #1
  // passed and the marker names it, while the files are still being read.
  const early = walkedChange
    ? createStagingBranch(ws, branch, Promise.all([fenced, recorded]))
    : undefined;
  early?.catch(() => {}); // awaited by the staging, or settled before the attempt ends
  const [fence1, snapshot, marker] = await Promise.allSettled([fenced, snapshotted, recorded]);
  try {
    return await publishChanges(ws, {
      before,
      result,
      listing,
      branch,
      fence1,
      snapshot,
      marker,
      early,
    });
  } finally {
    // The branch is never left being made when the attempt ends (the clean-up deletes it).
    await early?.catch(() => {});
  }
}

/** What {@linkcode runWorkspace} has when the snapshot after the task is taken. */
interface AfterTask {
  readonly before: Snapshot;
  readonly result: unknown;
  readonly listing: readonly RemoteEntry[];
  readonly branch: string;
  readonly fence1: PromiseSettledResult<void>;
  readonly snapshot: PromiseSettledResult<Snapshot>;
  readonly marker: PromiseSettledResult<void>;
  /** The staging branch being made already, when the walk showed a change. */
  readonly early: Promise<void> | undefined;
}

/**
 * The rest of a writable attempt once fence #1 and the snapshot after the task are in:
 * nothing changed, or stage and publish the change (fence #2 between).
 */
async function publishChanges(ws: WorkspaceAttempt, after: AfterTask): Promise<BodyResult> {
  const { state } = ws;
  const { options, signal } = state;
  const { before, result, listing, branch, fence1, snapshot, marker, early } = after;
  if (snapshot.status === "fulfilled") {
    state.changes = diffSnapshots(before, snapshot.value);
  }
  if (fence1.status === "rejected") throw fence1.reason; // fence #1
  if (snapshot.status === "rejected") throw snapshot.reason;
  const changed = !snapshotsEqual(before, snapshot.value);

  // This attempt is the current one: staging branches of earlier attempts of the same task
  // are leftovers of processes killed before their cleanup ran. They are deleted while this
  // attempt stages and publishes (its own branch excepted), and the attempt ends after both.
  const leftovers = deleteLeftoverStaging(ws.lakefs, ws.input.repository, options.attempt, {
    except: branch,
    log: state.log,
    signal,
  });
  let plan: UploadPlan | undefined;
  try {
    plan = changed ? planUploads(ws.dir, before, snapshot.value, listing, ws.scope) : undefined;
  } catch (error) {
    await leftovers.catch(() => {});
    throw error;
  }
  if (plan === undefined || (plan.uploads.length === 0 && plan.deletes.length === 0)) {
    // (A branch the walk had started is deleted by the clean-up.)
    return await besides(publishPhase(ws, result, undefined), leftovers);
  }
  const stagingPlan = plan;
  return await besides(
    (async () => {
      // A marker that could not name the branch fails the attempt before the branch is made.
      if (marker.status === "rejected") throw marker.reason;
      // The target's head is read while the attempt stages (nothing orders it after that):
      // the publication checks it and merges onto it, and the merge is checked after.
      const head = readHead(ws);
      const created = early ?? createStagingBranch(ws, branch, Promise.resolve());
      const staged = await besides(stagePhase(ws, stagingPlan, branch, created), head);
      await fence(state); // fence #2
      return await publishPhase(ws, result, staged, head);
    })(),
    leftovers,
  );
}

/**
 * Waits for `main` and `side`, which run side by side, to settle (neither is left running),
 * then throws `main`'s error, else `side`'s, else returns `main`'s value.
 */
async function besides<T>(main: Promise<T>, side: Promise<unknown>): Promise<T> {
  const [a, b] = await Promise.allSettled([main, side]);
  if (a.status === "rejected") throw a.reason;
  if (b.status === "rejected") throw b.reason;
  return a.value;
}

/** Checks the workspace input, and makes the attempt directory. */
async function openWorkspace(
  state: AttemptState,
  owner: ReturnType<typeof newOwner>,
): Promise<WorkspaceAttempt> {
  const { options } = state;
  const task = options.task;
  checkInputKeys(options.input, true);
  const input = parseWorkspaceInput(options.input.workspace);
  const scope = resolveScope(task.workspace!.prefix, input.prefix);
  const lakefs = options.lakefs;
  if (lakefs === undefined) {
    throw new TaskInputError(
      `workspace task ${JSON.stringify(task.name)} needs lakeFS: set ` +
        "LAKECTL_SERVER_ENDPOINT_URL, LAKECTL_CREDENTIALS_ACCESS_KEY_ID and " +
        "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
    );
  }
  // Listed while the directory is prepared (a pooled one is walked meanwhile): the download
  // needs both, but neither needs the other.
  const listing = readAhead(lakefs.listObjects(input.repository, input.ref, {
    prefix: scope,
    signal: state.signal,
  }));
  const pool = options.warmPool;
  const dir = await prepareAttemptDir(
    options.workspaceRoot,
    {
      workflowInstanceId: options.attempt.workflowInstanceId,
      taskId: options.attempt.taskId,
      executionId: state.info.executionId,
      retryCount: options.attempt.retryCount,
      taskDefName: options.attempt.taskDefName,
    },
    owner,
    {
      ...(pool === undefined ? {} : {
        adopt: async (target) => {
          // The pool is an optimisation: whatever fails in it, the attempt downloads afresh.
          const claimed = await pool.claim(input.repository, scope, target).catch((error) => {
            state.log.warn("taking a directory from the warm pool failed: {message}", {
              message: (error as Error).message,
            });
            return undefined;
          });
          if (claimed === undefined) return false;
          try {
            state.claimed = await walkClaimedDir(target, claimed);
            return true;
          } catch (error) {
            // A folder the walk cannot clear (a task made it read-only): start afresh.
            state.log.warn(
              "a directory of the warm pool could not be walked ({message}); downloading " +
                "into a new one",
              { message: (error as Error).message },
            );
            await trashAttemptDir(options.workspaceRoot, target);
            return false;
          }
        },
      }),
    },
  ).catch((error) => {
    listing.cancel();
    throw error;
  });
  state.dir = dir;
  return { state, lakefs, input, params: options.input.params, scope, dir, listing };
}

/**
 * Objects an attempt downloads at once by default. Most workspaces are many small objects,
 * each a round trip mostly spent waiting on the server: more in flight hides it (lakectl
 * fetches 25 at once). Large objects keep memory bounded whatever the count (one 256 KiB
 * read buffer each, the hashing rings shared).
 */
const DOWNLOAD_CONCURRENCY = 24;

/** `download`: the objects under the scope at the input ref, into the attempt directory. */
async function downloadPhase(ws: WorkspaceAttempt): Promise<RemoteEntry[]> {
  const { options, signal, log } = ws.state;
  options.onPhase?.("download");
  const keys = new KeyTreeGuard();
  // Nothing but this download writes to the attempt directory until the task runs, so a
  // folder once found to be a real directory is not looked at again for the next key.
  const checkedDirs = new Set<string>();
  let fromCache = 0;
  let kept = 0;
  const claimed = ws.state.claimed;
  const listing = await downloadPrefix(ws.lakefs, {
    repo: ws.input.repository,
    ref: ws.input.ref,
    prefix: ws.scope,
    ...(claimed === undefined ? {} : {
      keep: (entry) => {
        keys.claim(entry.key);
        const file = claimed.files.get(entry.key);
        if (file === undefined || file.checksum !== entry.checksum || file.size !== entry.size) {
          return undefined;
        }
        claimed.files.delete(entry.key);
        return file.sha256;
      },
    }),
    resolvePath: (key) => {
      // Claimed in listing order, before any write: a key that is a file and a folder at
      // once is refused whichever of the two downloads first.
      keys.claim(key);
      if (claimed !== undefined) clearForDownload(ws.dir, claimed, key);
      // Every download creates its file exclusively: an existing name is an error there.
      return resolveInsideDir(ws.dir, key, checkedDirs, { createsNew: true });
    },
    listing: ws.listing,
    concurrency: options.syncConcurrency ?? DOWNLOAD_CONCURRENCY,
    ...(options.downloadCache === undefined && claimed === undefined ? {} : {
      ...(options.downloadCache === undefined ? {} : { cache: options.downloadCache }),
      onObject: (_entry, from) => {
        if (from === "cache") fromCache++;
        else if (from === "kept") kept++;
      },
    }),
    signal,
  });
  if (claimed !== undefined) {
    // Files of the pooled directory the listing no longer has.
    for (const path of claimed.files.keys()) Deno.removeSync(join(ws.dir, path));
    claimed.files.clear();
  }
  log.debug(
    "downloaded {count} objects under {scope} ({fromCache} from the host cache, {kept} kept " +
      "from a pooled directory)",
    {
      count: listing.length,
      scope: describeScope(ws.scope),
      fromCache,
      kept,
      ...(claimed === undefined ? {} : { removedFromPooled: claimed.removed }),
    },
  );
  return listing;
}

/**
 * Makes room in a directory taken from the warm pool for the download of `key`: a kept file
 * where the key needs a folder, or a folder (with what is left in it) or a file of another
 * object where it needs its file, is removed. The walk left only folders and kept files.
 */
function clearForDownload(dir: string, claimed: WalkedDir, key: string): void {
  let slash = key.indexOf("/");
  while (slash !== -1) {
    const folder = key.slice(0, slash);
    if (claimed.files.delete(folder)) Deno.removeSync(join(dir, folder));
    slash = key.indexOf("/", slash + 1);
  }
  if (claimed.files.delete(key)) Deno.removeSync(join(dir, key));
  else if (claimed.dirs.delete(key)) {
    Deno.removeSync(join(dir, key), { recursive: true });
    for (const path of claimed.files.keys()) {
      if (path.startsWith(`${key}/`)) claimed.files.delete(path);
    }
    for (const path of claimed.dirs) if (path.startsWith(`${key}/`)) claimed.dirs.delete(path);
  }
}

/**
 * The downloaded files and what they hold (for the warm pool): the SHA-256 the snapshot
 * before the task took (or the download's, without a snapshot) and the listed checksum.
 */
function knownFiles(
  listing: readonly RemoteEntry[],
  before: Snapshot | undefined,
): Map<string, KnownFile> {
  const digests = before === undefined
    ? undefined
    : new Map(before.map((entry) => [entry.path, entry]));
  const known = new Map<string, KnownFile>();
  for (const entry of listing) {
    const found = digests?.get(entry.key);
    const sha256 = digests === undefined
      ? entry.sha256
      : found?.kind === "file" && found.size === entry.size
      ? found.digest
      : undefined;
    if (sha256 !== undefined) {
      known.set(entry.key, { size: entry.size, sha256, checksum: entry.checksum });
    }
  }
  return known;
}

/**
 * The SHA-256 of each downloaded file the download knew (hashed as written, or the host
 * cache's), for the snapshot taken before the task: nothing but the download has written to
 * the attempt directory yet, and each key is the file's path in it.
 */
function writtenDigests(listing: readonly RemoteEntry[]): WrittenDigests {
  const written = new Map<string, { size: number; digest: string }>();
  for (const entry of listing) {
    if (entry.sha256 !== undefined) {
      written.set(entry.key, { size: entry.size, digest: entry.sha256 });
    }
  }
  return written;
}

/**
 * Gives the host cache the SHA-256 the snapshot computed for downloaded files it had no
 * digest of (large objects; the download hashes small ones itself), so that the next
 * attempt copying them needs no read. The snapshot is taken before the task runs, so each
 * digest is of the verified bytes the cache holds under that object's MD5 and size.
 */
function noteCachedDigests(
  cache: DownloadCache | undefined,
  listing: readonly RemoteEntry[],
  before: Snapshot,
): void {
  if (cache?.addSha256 === undefined) return;
  const missing = listing.filter((entry) => entry.sha256 === undefined);
  if (missing.length === 0) return;
  const digests = new Map(before.map((entry) => [entry.path, entry]));
  for (const entry of missing) {
    const found = digests.get(entry.key);
    if (found?.kind === "file" && found.size === entry.size) {
      cache.addSha256(entry, found.digest);
    }
  }
}

/** `run`: params, pre guardrails, the task function, result, post guardrails. */
async function runPhase(ws: WorkspaceAttempt): Promise<unknown> {
  const { options } = ws.state;
  return await invokeTaskBody(
    options.task,
    ws.params,
    context(ws.state, ws.dir),
    () => options.onPhase?.("run"),
  );
}

/** The fence: the Conductor task must still be this attempt's. */
async function fence(state: AttemptState): Promise<void> {
  const { options, signal } = state;
  assertCurrentAttempt(options.attempt, await options.loadCurrentAttempt!(signal));
}
