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
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { forEachConcurrent } from "../util/pool.ts";
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

/**
 * Lists files and symlinks below `root` (directories are walked, other kinds ignored). Each
 * directory is read with one synchronous `readDirSync`: directory reads are short, and the
 * async variant costs an op per entry (measured 4.1 us against 1.1 us per file).
 */
function listEntries(
  root: string,
  relative: string,
  out: { path: string; kind: "file" | "symlink" }[],
  signal?: AbortSignal,
): void {
  signal?.throwIfAborted();
  const dir = relative === "" ? root : join(root, relative);
  for (const entry of Deno.readDirSync(dir)) {
    const path = relative === "" ? entry.name : `${relative}/${entry.name}`;
    if (relative === "" && entry.name === ATTEMPT_MARKER) continue;
    if (entry.isSymlink) out.push({ path, kind: "symlink" });
    else if (entry.isDirectory) listEntries(root, path, out, signal);
    else if (entry.isFile) out.push({ path, kind: "file" });
  }
}

/**
 * Takes a snapshot of `dir`. Hashing runs with bounded parallelism (`concurrency`, default 8).
 *
 * Requires `--allow-read` on `dir`.
 *
 * @example
 * ```ts
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.txt`, "alpha\n");
 * const before = await snapshotDir(dir);
 * await Deno.writeTextFile(`${dir}/a.txt`, "beta\n"); // what a task does
 * const changed = !snapshotsEqual(before, await snapshotDir(dir)); // true
 * ```
 */
export async function snapshotDir(
  dir: string,
  options: { concurrency?: number; signal?: AbortSignal } = {},
): Promise<Snapshot> {
  const found: { path: string; kind: "file" | "symlink" }[] = [];
  listEntries(dir, "", found, options.signal);
  found.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const entries: (SnapshotEntry | undefined)[] = new Array(found.length);
  await forEachConcurrent(
    found.keys(),
    options.concurrency ?? 8,
    async (index, signal) => {
      const item = found[index] as { path: string; kind: "file" | "symlink" };
      const full = join(dir, item.path);
      // The kind is taken again from lstat: an entry replaced since the walk is hashed as
      // what it is now (a file is never read through a symlink swapped in for it).
      const info = Deno.lstatSync(full);
      if (info.isSymlink) {
        entries[index] = {
          path: item.path,
          kind: "symlink",
          digest: Deno.readLinkSync(full),
          size: 0,
        };
      } else if (info.isFile) {
        const { digest, size } = await hashFile(full, info.size, signal);
        entries[index] = { path: item.path, kind: "file", digest, size };
      }
    },
    options.signal,
  );
  return entries.filter((entry): entry is SnapshotEntry => entry !== undefined);
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
 * What changed from `before` to `after`: added, changed (content, link target or kind) and
 * removed paths with their sizes (the new size for added/changed, the old one for removed).
 */
export function diffSnapshots(before: Snapshot, after: Snapshot): SnapshotDiff {
  const old = new Map(before.map((entry) => [entry.path, entry]));
  const diff: SnapshotDiff = { added: [], changed: [], removed: [] };
  for (const entry of after) {
    const previous = old.get(entry.path);
    if (previous === undefined) diff.added.push({ path: entry.path, size: entry.size });
    else {
      old.delete(entry.path);
      if (previous.kind !== entry.kind || previous.digest !== entry.digest) {
        diff.changed.push({ path: entry.path, size: entry.size });
      }
    }
  }
  for (const entry of old.values()) diff.removed.push({ path: entry.path, size: entry.size });
  return diff;
}
