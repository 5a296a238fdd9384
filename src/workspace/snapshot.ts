/**
 * Snapshots of an attempt directory: the sorted list of `(path, kind, digest)` of every file
 * and symlink (the digest is the content's SHA-256 for files, the link target for symlinks),
 * the attempt marker excepted. Two snapshots taken before and after the task function tell
 * whether the task changed the workspace, and what.
 *
 * The digest is SHA-256: through Web Crypto (`crypto.subtle.digest`, the product's choice)
 * for files up to {@linkcode SMALL_FILE_MAX_BYTES}, each read whole with one `Deno.readFile`,
 * with up to `concurrency` digests in flight so the async op of each overlaps the reads of the
 * others. Web Crypto has no incremental digest, so larger files stream in 1 MiB chunks through
 * `node:crypto`'s `createHash("sha256")`, which keeps memory bounded whatever the file size;
 * both give the same standard SHA-256. The kind and size come from one synchronous `lstat` per
 * entry, which also keeps a file swapped for a FIFO from blocking a read. The snapshot computes
 * no MD5: the sync compares unchanged files by the checksum lakeFS listed for them and uploads
 * every changed file. The measurements behind these choices are in `bench/README.md`.
 *
 * Symlinks are never followed: the kind comes from `readDir`/`lstat`, targets from
 * `readLink`. Directories are walked but not listed (an empty directory is no change: lakeFS
 * stores objects, not folders); FIFOs, sockets and devices are ignored.
 *
 * Two ways to hash less, for an attempt of thousands of files that changes a few:
 *
 * - `written`: digests the caller already knows, of files it wrote itself into a directory
 *   nothing else wrote to since (the download, which hashes each small object's bytes as they
 *   are written and gets large ones' digests from the host cache). Those files are taken from
 *   the walk without a `stat` or a read.
 * - `since`: a previous snapshot and the {@linkcode changeStamp} taken right after it. A file
 *   is reused from that snapshot, unread, when it is still a regular file of the same size
 *   whose status-change time (ctime) is older than the stamp. The rule is the one of Git's
 *   index ("racily clean" entries): the kernel sets a file's ctime to the current time on
 *   every change of its content or metadata (write, truncate, `mmap` write fault, rename,
 *   link, chmod, utime), and no call sets it to a chosen value, so a file changed after the
 *   stamp has a ctime at or past the stamp, taken from the same clock on the same filesystem.
 *   Timestamp granularity only makes more files "racy": Deno reports ctime in whole seconds,
 *   so every file whose ctime is in the stamp's second (or later) is read and hashed again
 *   (small ones synchronously, in slices: they were written a moment ago);
 *   a task that rewrites a file with the same size in the same millisecond as its download
 *   is therefore still seen. A wall clock stepped back between the two snapshots could hide
 *   a change: a second stamp is taken first, and when it is older than the first one nothing
 *   is reused. The workspace must be a local filesystem that keeps ctime (every Linux one).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { forEachConcurrent } from "../util/pool.ts";
import { slicer } from "../util/slices.ts";
import { cursorLookup, forEachPair } from "../util/sorted.ts";
import { ATTEMPT_MARKER } from "./attempt_dir.ts";

/**
 * Files up to this size are read whole and digested with Web Crypto; larger ones are
 * streamed through `node:crypto` (Web Crypto cannot digest incrementally).
 */
export const SMALL_FILE_MAX_BYTES = 1024 * 1024;

const CHUNK_BYTES = 1024 * 1024;

/** One entry of a snapshot. */
export interface SnapshotEntry {
  /** POSIX path relative to the attempt directory. */
  readonly path: string;
  readonly kind: "file" | "symlink";
  /** Hex SHA-256 of the content (files) or the link target (symlinks). */
  readonly digest: string;
  /** Size in bytes (files); 0 for symlinks. */
  readonly size: number;
}

/** A snapshot: entries sorted by path (UTF-16 code unit order). */
export type Snapshot = readonly SnapshotEntry[];

/** The differences between two snapshots, each list sorted by path. */
export interface SnapshotDiff {
  added: { path: string; size: number }[];
  changed: { path: string; size: number }[];
  removed: { path: string; size: number }[];
}

/**
 * The hex SHA-256 of a file's content, read in bounded memory (see the module doc).
 *
 * Requires `--allow-read` on the file.
 */
export async function sha256File(path: string, signal?: AbortSignal): Promise<string> {
  const { size } = await Deno.stat(path);
  return (await hashFile(path, size, signal)).digest;
}

/** Hashes a file whose `lstat` said `size`; the size returned is the bytes hashed. */
async function hashFile(
  path: string,
  size: number,
  signal?: AbortSignal,
): Promise<{ digest: string; size: number }> {
  if (size <= SMALL_FILE_MAX_BYTES) {
    const data = await Deno.readFile(path, signal ? { signal } : {});
    // A file that grew past the limit since the lstat is still read whole once (it is
    // already in memory); the digest and size describe what was read.
    const digest = await crypto.subtle.digest("SHA-256", data);
    return { digest: new Uint8Array(digest).toHex(), size: data.length };
  }
  const file = await Deno.open(path, { read: true });
  try {
    const hash = createHash("sha256");
    const buffer = new Uint8Array(CHUNK_BYTES);
    let total = 0;
    while (true) {
      signal?.throwIfAborted();
      const n = await file.read(buffer);
      if (n === null) break;
      hash.update(buffer.subarray(0, n));
      total += n;
    }
    return { digest: hash.digest("hex"), size: total };
  } finally {
    file.close();
  }
}

/** An entry of a directory as `readDirSync` gave it, with the name it sorts by. */
interface Listed {
  readonly name: string;
  /** The name, with a `/` after it for a directory: see {@linkcode sortedEntries}. */
  readonly sortKey: string;
  readonly isDirectory: boolean;
  readonly isFile: boolean;
  readonly isSymlink: boolean;
}

/**
 * The entries of one directory, read with one synchronous `readDirSync` (directory reads are
 * short, and the async variant costs an op per entry: measured 4.1 us against 1.1 us per
 * file), sorted so that a walk visiting them in this order, each directory's entries in place
 * of it, yields every path in path order: a directory sorts by its name followed by `/`, as
 * every path below it does. One sort of each directory's names costs less than one of every
 * path at the end (paths of one folder share their prefix, which each comparison re-reads).
 */
function sortedEntries(dir: string): Listed[] {
  const listed: Listed[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    listed.push({
      name: entry.name,
      sortKey: entry.isDirectory ? `${entry.name}/` : entry.name,
      isDirectory: entry.isDirectory,
      isFile: entry.isFile,
      isSymlink: entry.isSymlink,
    });
  }
  return listed.sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0));
}

/** Digests a caller knows for files it wrote (see the module doc). */
export type WrittenDigests = ReadonlyMap<
  string,
  { readonly size: number; readonly digest: string }
>;

/** Options of {@linkcode snapshotDir}. */
export interface SnapshotOptions {
  /** Digests hashed at once. @default 8 */
  concurrency?: number;
  signal?: AbortSignal;
  /**
   * Files the caller wrote itself, by relative path, with their size and SHA-256: used as is
   * (no `stat`, no read). Only for a directory nothing else wrote to since.
   */
  written?: WrittenDigests | undefined;
  /**
   * A snapshot of this directory and the {@linkcode changeStamp} taken right after it: files
   * not changed since the stamp (by ctime, see the module doc) keep their digest unread.
   */
  since?: { snapshot: Snapshot; stamp: number } | undefined;
  /**
   * Called once with every file and symlink the walk found, and each file's size as `lstat`
   * (or `written`) gave it, before any file is read and before `snapshotDir` returns: what
   * can be known of the directory without reading it (a file added, removed or resized).
   * The entries are the snapshot's own (no copy of each is made): read them during the call.
   */
  onWalked?: (entries: readonly WalkedEntry[]) => void;
}

/** An entry as the walk of {@linkcode snapshotDir} found it, before any read. */
export interface WalkedEntry {
  readonly path: string;
  readonly kind: "file" | "symlink";
  /** The size `lstat` gave (files); 0 for symlinks. */
  readonly size: number;
}

/**
 * A change stamp of `dir`, in ms: the ctime the kernel gives `dir` when its times are set
 * now. Any file of the same filesystem changed after this call has a ctime at or past it.
 *
 * Requires `--allow-read` and `--allow-write` on `dir`.
 */
export function changeStamp(dir: string): number {
  const now = new Date();
  Deno.utimeSync(dir, now, now);
  const ctime = Deno.lstatSync(dir).ctime;
  if (ctime === null) throw new Error(`no ctime on ${dir}: the filesystem does not keep one`);
  return ctime.getTime();
}

/**
 * Takes a snapshot of `dir`. Hashing runs with bounded parallelism (`concurrency`, default 8).
 * `written` and `since` spare reading files whose digest is known (see the module doc).
 *
 * The directory is walked, and every entry's kind and size taken, before this returns its
 * promise (synchronously): an entry the caller creates after the call is not in the snapshot,
 * and only the files the walk found are read afterwards.
 *
 * Requires `--allow-read` on `dir` (and `--allow-write` with `since`, for the stamp).
 *
 * @example
 * ```ts
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.txt`, "alpha\n");
 * const before = await snapshotDir(dir);
 * const stamp = changeStamp(dir);
 * await Deno.writeTextFile(`${dir}/a.txt`, "beta\n"); // what a task does
 * const after = await snapshotDir(dir, { since: { snapshot: before, stamp } });
 * const changed = !snapshotsEqual(before, after); // true
 * ```
 */
export async function snapshotDir(
  dir: string,
  options: SnapshotOptions = {},
): Promise<Snapshot> {
  const signal = options.signal;
  const entries: SnapshotEntry[] = [];
  const written = options.written;
  let previous: Snapshot = [];
  let stamp = 0;
  if (options.since !== undefined && changeStamp(dir) >= options.since.stamp) {
    previous = options.since.snapshot;
    stamp = options.since.stamp;
  }
  // `previous` is sorted by path and the walk goes in path order: one cursor finds each
  // path's earlier entry (a snapshot out of order only misses reuses: those files are read).
  const previousOf = cursorLookup(previous, (entry) => entry.path);
  // Files to read, with the size lstat gave; everything else is settled without an async op.
  const toHash: { index: number; full: string; size: number }[] = [];
  // Files unchanged but for their ctime's second (see the module doc), read synchronously.
  const racy: { index: number; full: string }[] = [];
  // Paths by concatenation: `join` normalises each one again (21,000 files: ~10 ms).
  const visit = (relative: string, full: string) => {
    signal?.throwIfAborted();
    for (const entry of sortedEntries(full)) {
      if (relative === "" && entry.name === ATTEMPT_MARKER) continue;
      const path = relative === "" ? entry.name : `${relative}/${entry.name}`;
      const entryFull = `${full}/${entry.name}`;
      if (entry.isDirectory) {
        visit(path, entryFull);
        continue;
      }
      if (!entry.isFile && !entry.isSymlink) continue;
      const known = entry.isFile ? written?.get(path) : undefined;
      if (known !== undefined) {
        entries.push({ path, kind: "file", digest: known.digest, size: known.size });
        continue;
      }
      // The kind is taken again from lstat: an entry replaced since the directory was read is
      // hashed as what it is now (a file is never read through a symlink swapped in for it).
      const info = Deno.lstatSync(entryFull);
      if (info.isSymlink) {
        entries.push({ path, kind: "symlink", digest: Deno.readLinkSync(entryFull), size: 0 });
      } else if (info.isFile) {
        const old = previousOf(path);
        const same = old !== undefined && old.kind === "file" && old.size === info.size;
        if (same && info.ctime !== null && info.ctime.getTime() < stamp) {
          entries.push(old);
        } else if (same && info.size <= RACY_SYNC_MAX_BYTES) {
          racy.push({ index: entries.length, full: entryFull });
          entries.push({ path, kind: "file", digest: "", size: info.size });
        } else {
          toHash.push({ index: entries.length, full: entryFull, size: info.size });
          entries.push({ path, kind: "file", digest: "", size: info.size });
        }
      }
    }
  };
  visit("", dir);
  // Every entry already has its path, kind and the size lstat gave (a file reused from
  // `since` has that size too): they are what the walk found, before any read.
  options.onWalked?.(entries);
  // Nothing above awaits: the walk is done when the caller gets the promise (see the doc).
  await hashRacy(entries, racy, signal);
  await forEachConcurrent(
    toHash,
    options.concurrency ?? 8,
    async ({ index, full, size }, signal) => {
      const path = entries[index]!.path;
      const hashed = await hashFile(full, size, signal);
      entries[index] = { path, kind: "file", digest: hashed.digest, size: hashed.size };
    },
    signal,
  );
  return entries;
}

/**
 * Files up to this size that only their ctime's second keeps from being reused (same size as
 * in `since`, changed in the stamp's second or later) are read and hashed synchronously.
 */
const RACY_SYNC_MAX_BYTES = 64 * 1024;
/** The longest the synchronous hashing holds the event loop before letting it run. */
const RACY_SLICE_MS = 4;

/**
 * Hashes the racy files synchronously, in slices of {@linkcode RACY_SLICE_MS} between which
 * the event loop runs (timers, I/O). A download makes every file of an attempt racy when the
 * task runs within the second (Deno reports ctime in whole seconds), so after the task
 * thousands of small files are read again, all in the page cache. An async read and an async
 * digest each (two thread hand-offs per file) took 35-55 ms and about 80 ms of CPU for 1,000
 * x 4 KiB files in a `perago run` on the shared 2-core host; synchronously 20-22 ms and 35 ms.
 */
async function hashRacy(
  entries: SnapshotEntry[],
  racy: readonly { index: number; full: string }[],
  signal: AbortSignal | undefined,
): Promise<void> {
  const slice = slicer(RACY_SLICE_MS);
  for (const { index, full } of racy) {
    signal?.throwIfAborted();
    await slice();
    signal?.throwIfAborted();
    // Read whole even if it grew since the lstat; the digest and size describe what was read.
    const data = Deno.readFileSync(full);
    const digest = createHash("sha256").update(data).digest("hex");
    entries[index] = { path: entries[index]!.path, kind: "file", digest, size: data.length };
  }
}

/** Whether two snapshots hold the same `(path, kind, digest)` entries. */
export function snapshotsEqual(a: Snapshot, b: Snapshot): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as SnapshotEntry;
    const y = b[i] as SnapshotEntry;
    if (x.path !== y.path || x.kind !== y.kind || x.digest !== y.digest) return false;
  }
  return true;
}

/**
 * Calls `visit` once per path found in `a` or in `b`, in path order, with the entry each holds
 * at that path (`undefined` where one has none): {@linkcode forEachPair} by path. Both are
 * lists sorted by path (snapshots and the walk's entries are); one out of order is sorted
 * first (a copy).
 *
 * @example
 * ```ts
 * const pairs: string[] = [];
 * forEachPathPair([{ path: "a" }, { path: "b" }], [{ path: "b" }, { path: "c" }], (x, y) => {
 *   pairs.push(`${x?.path ?? "-"}${y?.path ?? "-"}`);
 * });
 * pairs; // ["a-", "bb", "-c"]
 * ```
 */
export function forEachPathPair<
  A extends { readonly path: string },
  B extends { readonly path: string },
>(
  a: readonly A[],
  b: readonly B[],
  visit: (inA: A | undefined, inB: B | undefined) => void,
): void {
  forEachPair(a, b, (entry) => entry.path, visit);
}

/**
 * What changed from `before` to `after`: added, changed (content, link target or kind) and
 * removed paths with their sizes (the new size for added/changed, the old one for removed).
 */
export function diffSnapshots(before: Snapshot, after: Snapshot): SnapshotDiff {
  const diff: SnapshotDiff = { added: [], changed: [], removed: [] };
  forEachPathPair(before, after, (previous, entry) => {
    if (entry === undefined) diff.removed.push({ path: previous!.path, size: previous!.size });
    else if (previous === undefined) diff.added.push({ path: entry.path, size: entry.size });
    else if (previous.kind !== entry.kind || previous.digest !== entry.digest) {
      diff.changed.push({ path: entry.path, size: entry.size });
    }
  });
  return diff;
}
