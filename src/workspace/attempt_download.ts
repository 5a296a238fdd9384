/**
 * The start of a workspace attempt: its input checked, its private directory made (or taken
 * from the warm pool), and the objects under its scope at the input ref downloaded into it,
 * with the digests the download learnt handed on to the snapshot, the host cache and the warm
 * pool. Every key is claimed and resolved inside the directory before anything is written:
 * an object key from lakeFS never places a file outside the attempt directory, and a key
 * that is a file and a folder at once is refused. A pooled directory is only a head start:
 * whatever of it the listing does not confirm is removed or fetched again. Part of the
 * workspace phases, loaded with _workspace_attempt.ts (never import it from attempt.ts).
 *
 * @module
 */
import { join } from "node:path";
import { type DownloadCache, downloadPrefix, type RemoteEntry } from "../lakefs/sync.ts";
import { TaskInputError } from "../task/errors.ts";
import { readAhead } from "../util/read_ahead.ts";
import type { AttemptState, WorkspaceAttempt } from "./_attempt_state.ts";
import type { AttemptOptions } from "./attempt_types.ts";
import { checkInputKeys, parseWorkspaceInput } from "./_invoke.ts";
import { prepareAttemptDir, trashAttemptDir } from "./attempt_dir.ts";
import type { newOwner } from "./owners.ts";
import { checkRelativeKey, KeyTreeGuard, resolveInsideDir } from "./safe_path.ts";
import { describeScope, resolveScope } from "./scope.ts";
import type { Snapshot, SnapshotEntry, WrittenDigests } from "./snapshot.ts";
import { keepPooledFile, type KnownFile, walkClaimedDir, type WalkedDir } from "./warm_pool.ts";
import { cursorLookup } from "../util/sorted.ts";

/** Checks the workspace input, and makes the attempt directory. */
export async function openWorkspace(
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

/**
 * Whether the attempt snapshots its directory before and after the task: a writable task,
 * or a read-only one whose unchanged directory is verified.
 */
export function takesSnapshots(options: AttemptOptions): boolean {
  return !options.task.workspace!.readOnly || options.verifyReadOnly === true;
}

/** `download`: the objects under the scope at the input ref, into the attempt directory. */
export async function downloadPhase(ws: WorkspaceAttempt): Promise<RemoteEntry[]> {
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
        // Checked as a downloaded key is (`resolvePath`): a kept file's key is staged unchecked.
        checkRelativeKey(entry.key);
        keys.claim(entry.key);
        const file = claimed.files.get(entry.key);
        if (file === undefined || file.checksum !== entry.checksum || file.size !== entry.size) {
          return undefined;
        }
        // Unchanged since it was pooled, or removed here (and fetched).
        if (keepPooledFile(claimed, entry.key) === undefined) return undefined;
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
    // The snapshot before the task then takes every digest from the download: no file is
    // read back.
    sha256: takesSnapshots(options),
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
export function knownFiles(
  listing: readonly RemoteEntry[],
  before: Snapshot | undefined,
): Map<string, KnownFile> {
  const known = new Map<string, KnownFile>();
  // Both are sorted by path: one cursor follows the snapshot.
  const beforeOf = before === undefined ? undefined : cursorLookup(before, (entry) => entry.path);
  for (const entry of listing) {
    let sha256 = entry.sha256;
    if (beforeOf !== undefined) {
      const found = beforeOf(entry.key);
      sha256 = found?.kind === "file" && found.size === entry.size ? found.digest : undefined;
    }
    if (sha256 !== undefined) {
      known.set(entry.key, { size: entry.size, sha256, checksum: entry.checksum });
    }
  }
  return known;
}

/**
 * The snapshot before the task, from the download alone, when it knew the SHA-256 of every
 * file (hashed as written, the host cache's, or a pooled file's): the attempt directory then
 * holds the listed objects and no other file (the download created each, or kept it from a
 * pooled directory whose other entries the claim's walk and the download removed), and
 * nothing else has written to it, so a walk of it would find the listing again (21,000
 * files: ~40 ms of `readDir` and sorting). `undefined` when a digest is missing (a large
 * object copied from a host cache that had no digest of it yet): the snapshot then walks the
 * directory and reads only those (`writtenDigests` gives it the others).
 */
export function downloadedSnapshot(listing: readonly RemoteEntry[]): Snapshot | undefined {
  const entries: SnapshotEntry[] = [];
  for (const entry of listing) {
    if (entry.sha256 === undefined) return undefined;
    entries.push({ path: entry.key, kind: "file", digest: entry.sha256, size: entry.size });
  }
  // The download returns its listing sorted by key, the order of a snapshot.
  return entries;
}

/**
 * The SHA-256 of each downloaded file the download knew (hashed as written, or the host
 * cache's), for the snapshot taken before the task: nothing but the download has written to
 * the attempt directory yet, and each key is the file's path in it.
 */
export function writtenDigests(listing: readonly RemoteEntry[]): WrittenDigests {
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
 * digest of (large objects copied from it before it had their digest; the download hashes the
 * others itself), so that the next attempt copying them needs no read. The snapshot is taken
 * before the task runs, so each digest is of the verified bytes the cache holds under that
 * object's MD5 and size.
 */
export function noteCachedDigests(
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
