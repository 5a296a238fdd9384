/**
 * Incremental sync between a lakeFS prefix and a local directory: stream every object under a
 * prefix to disk (bounded parallelism and memory, paginated listing), compare a local tree
 * with the remote listing by size and checksum, and stage only what differs on a branch.
 *
 * This module knows nothing of attempt directories: the caller injects `resolvePath`, which
 * maps a key to a safe local path or throws, and `open`, which reads a local file safely.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { dirname } from "node:path";
import { readAtMost } from "../util/http.ts";
import { forEachConcurrent } from "../util/pool.ts";
import { forEachPair, isSortedBy } from "../util/sorted.ts";
import { FileHashers, pipedFileSink } from "./_file_hasher.ts";
import { laneFileSink, MAX_LANES, StreamHasher } from "./_stream_hasher.ts";
import type {
  LakeFsApi,
  ObjectConnections,
  ObjectSink,
  ObjectStats,
  WrittenObject,
} from "./api.ts";

/** One object of the remote listing, as downloaded. */
export interface RemoteEntry {
  /** Full object key. */
  readonly key: string;
  readonly size: number;
  /** lakeFS checksum (hex MD5 for API uploads). */
  readonly checksum: string;
  /**
   * Hex SHA-256 of the file as {@linkcode downloadPrefix} wrote it, when it knew it: objects
   * up to {@linkcode SMALL_OBJECT_MAX_BYTES} (hashed in memory as written), larger ones
   * downloaded with the `sha256` option (hashed as they streamed in, or as their file was read
   * back to check it) and ones copied from a cache that has their digest.
   */
  readonly sha256?: string;
}

/** Options of {@linkcode downloadPrefix}. */
export interface DownloadOptions {
  readonly repo: string;
  /** Commit id (or any ref) to read from. */
  readonly ref: string;
  /** `""` (everything) or a prefix ending in `/`. */
  readonly prefix: string;
  /**
   * Maps an object key (the full key, prefix included) to the absolute local path to write,
   * or throws when the key is unsafe. Called once per object, before anything is written.
   */
  readonly resolvePath: (key: string) => Promise<string>;
  /** Objects downloaded at once. @default 8 */
  readonly concurrency?: number;
  /**
   * Whether a large object's SHA-256 is taken too (a small one's always is), in the worker
   * that checks its MD5 (as it streams in, or as its file is read back): the listing then gives
   * `sha256` for it, and a caller that snapshots the files next reads none of them back.
   * Costs the hashing worker about 0.5 s of CPU a GiB, beside the download.
   * @default false
   */
  readonly sha256?: boolean;
  /**
   * The host's object cache (`ObjectCache`): objects found there are copied from it instead
   * of fetched; objects fetched and verified are added to it.
   */
  readonly cache?: DownloadCache;
  /**
   * Asked first for each object: the SHA-256 of a file already at its path that holds this
   * object (size and checksum checked by the caller), which is then left as it is; or
   * `undefined` to download it. Called before `resolvePath`, once per object.
   */
  readonly keep?: (entry: RemoteEntry) => string | undefined;
  /** Told where each object came from, as it lands (for counts in logs and tests). */
  readonly onObject?: (entry: RemoteEntry, from: "kept" | "cache" | "lakefs") => void;
  /**
   * The listing of `prefix` at `ref`, already started by the caller (to overlap its requests
   * with other work, see `readAhead`), used instead of listing here. It must list exactly
   * `repo`, `ref` and `prefix`: every entry is still checked to be under the prefix.
   */
  readonly listing?: AsyncIterable<ObjectStats>;
  readonly signal?: AbortSignal;
}

/** What {@linkcode downloadPrefix} needs of a cache (`ObjectCache` in object_cache.ts). */
export interface DownloadCache {
  /** A small object's cached bytes and their SHA-256, checked against the entry's, or `undefined`. */
  read(object: RemoteEntry): { data: Uint8Array; sha256: string } | undefined;
  /** Adds a small object's bytes, whose size and MD5 were verified; never throws. */
  addBytes(object: RemoteEntry, data: Uint8Array, sha256: string): void;
  /** The path of a cached copy of a large object (already size-checked), or `undefined`. */
  lookup(object: RemoteEntry): Promise<string | undefined>;
  /** Adds a downloaded file whose size and MD5 were verified; never throws. */
  add(object: RemoteEntry, verifiedFile: string): Promise<void>;
  /** The SHA-256 the cache keeps for an object's entry, or `undefined`. */
  sha256Of?(object: RemoteEntry): string | undefined;
  /** Records the SHA-256 of an object's entry (of the verified bytes); never throws. */
  addSha256?(object: RemoteEntry, sha256: string): void;
}

/**
 * Objects up to this size are fetched into memory, verified there and written with one call
 * (and cached the same way); larger ones stream to disk. A few thousand small files then
 * cost a fetch and one file op each, instead of a chain of async file ops (each a thread
 * hand-off, which a loaded host makes slow). The one op is synchronous, on the thread that
 * reads the network: the async `Deno.writeFile` hands each file to a blocking-pool thread
 * and back (futex wake-ups and context switches), and a `perago run` of 1,000 x 4 KiB objects
 * used about 12% more CPU with it (1.59 s against 1.40 s, median of 8 alternated runs on
 * the shared 2-core host), CPU the lakeFS server beside it needs; the reading thread sat in
 * that op anyway (CPU profile), so creating the files there costs it no more.
 */
export const SMALL_OBJECT_MAX_BYTES = 256 * 1024;

/** Thrown when a downloaded object does not match its listing (size or MD5). */
export class DownloadIntegrityError extends Error {
  override name = "DownloadIntegrityError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

const MD5_HEX = /^[0-9a-f]{32}$/i;

/**
 * Downloads every object under `prefix` at `ref` into local files. Zero-byte folder markers
 * (keys ending in `/`) are skipped and left out of the listing. Each file is created fresh
 * (`createNew`: an existing path, including a symlink, is an error). The size is always
 * verified, and the MD5 when the listed checksum is one: objects up to
 * {@linkcode SMALL_OBJECT_MAX_BYTES} in memory as they arrive; larger ones, through
 * `downloadObject` when the client has it (the HTTP client does): over the client's kept-alive
 * connections, read straight into the slots of the stream hasher (`_stream_hasher.ts`: written
 * to the file from there and hashed as they stream, every download's slots at once), else piped
 * natively from the socket to the file and then read back by a hashing worker
 * (`_file_hasher.ts`); both keep memory bounded whatever the size. Without `downloadObject`,
 * through `getObject`, hashed chunk by chunk as they stream to disk. A large object is checked
 * once its last bytes are hashed, while the next objects download;
 * it is reported (`onObject`) and cached only once checked, and a mismatch fails the whole
 * download, which settles only once every check and cache copy it started has. With a `cache`,
 * objects the host has are copied from it instead. Returns the listing of what was downloaded,
 * in key order.
 *
 * Requires `--allow-net` to the lakeFS host and `--allow-read` and `--allow-write` on the
 * target paths (the read-back's hashing worker reads the files).
 *
 * @example
 * ```ts
 * import { MemoryLakeFs } from "../testing/memory_lakefs.ts";
 * import { resolveInsideDir } from "../workspace/safe_path.ts";
 *
 * const lakefs = new MemoryLakeFs();
 * const commit = await lakefs.seedRepository("songs", { "docs/a.txt": "alpha\n" });
 * const dir = await Deno.makeTempDir();
 * const listing = await downloadPrefix(lakefs, {
 *   repo: "songs", ref: commit.id, prefix: "docs/",
 *   resolvePath: (key) => resolveInsideDir(dir, key),
 * });
 * listing.map((entry) => entry.key); // ["docs/a.txt"], now in `${dir}/docs/a.txt`
 * ```
 */
export async function downloadPrefix(
  lakefs: LakeFsApi,
  options: DownloadOptions,
): Promise<RemoteEntry[]> {
  const { repo, ref } = options;
  const entries: RemoteEntry[] = [];
  const cache = options.cache;
  const sha256 = options.sha256 === true;
  const hashers = new FileHashers({ sha256 });
  // Small objects are read over connections kept for the whole download, when the client
  // has them; so are large ones, hashed as they stream in (the stream hasher, started with the
  // first of them) where it runs, else read back by `hashers`.
  const connections = lakefs.openConnections?.();
  const concurrency = options.concurrency ?? 8;
  let streams: StreamHasher | null | undefined;
  const streamHasher = () => {
    if (streams === undefined) {
      streams = connections !== undefined && lakefs.downloadObject !== undefined
        ? StreamHasher.create(Math.min(concurrency, MAX_LANES), { sha256 }) ?? null
        : null;
    }
    return streams ?? undefined;
  };
  const makeFolder = folderMaker();
  // Downloads whose MD5 is still being checked: the pool moves on to the next object while
  // a hashing worker reads one back (see `downloadOne`); the first mismatch stops the pool.
  const checks: Promise<void>[] = [];
  const stop = new AbortController();
  let checkFailed: { error: unknown } | undefined;
  const onAbort = () => stop.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  try {
    const pooled = await forEachConcurrent(
      listedObjects(lakefs, options, entries),
      concurrency,
      async (entry, signal) => {
        const kept = options.keep?.(entry);
        if (kept !== undefined) {
          entry.sha256 = kept;
          options.onObject?.(entry, "kept");
          return;
        }
        const path = await options.resolvePath(entry.key);
        await makeFolder(dirname(path));
        if (entry.size <= SMALL_OBJECT_MAX_BYTES) {
          const cached = cache?.read(entry);
          const data = cached?.data ??
            await fetchSmall(lakefs, repo, ref, entry, signal, connections);
          signal.throwIfAborted();
          writeNewFile(path, entry, data);
          // The digest the snapshot before the task needs, for a few us on bytes already in
          // memory (the cache checked its own against the entry's) instead of reading back.
          entry.sha256 = cached?.sha256 ?? createHash("sha256").update(data).digest("hex");
          if (cached === undefined && cache !== undefined && MD5_HEX.test(entry.checksum)) {
            cache.addBytes(entry, data, entry.sha256);
          }
          options.onObject?.(entry, cached === undefined ? "lakefs" : "cache");
          return;
        }
        let created = false;
        if (cache !== undefined) {
          const cached = await cache.lookup(entry);
          if (cached !== undefined) {
            createTarget(path, entry).close();
            created = true;
            const sha256 = cache.sha256Of?.(entry);
            if (await copyCached(cached, path)) {
              if (sha256 !== undefined) entry.sha256 = sha256;
              options.onObject?.(entry, "cache");
              return;
            }
          }
        }
        // Over kept-alive connections a body is hashed as it streams into a lane of the stream
        // hasher; without them, or with more downloads at once than it has lanes, it is read
        // back by `hashers` once written.
        const stream = connections === undefined ? undefined : streamHasher();
        const lane = stream?.lane();
        const target = { repo, ref, entry, path, created };
        let via: DownloadVia;
        if (lane === undefined) {
          // The first hashing worker starts while this object downloads, not once its file
          // is written.
          if (lakefs.downloadObject !== undefined) hashers.start();
          via = { sink: (file) => pipedFileSink(file, () => hashers.hash(path, options.signal)) };
        } else {
          via = {
            sink: (file) =>
              laneFileSink(file, lane, {
                maxBytes: entry.size,
                tooLong: () =>
                  new DownloadIntegrityError(
                    `download of ${JSON.stringify(entry.key)} is longer than the ` +
                      `${entry.size} bytes the listing says; retry the attempt`,
                  ),
              }),
            connections: connections!,
          };
        }
        let checked: Promise<void>;
        try {
          ({ checked } = await downloadOne(lakefs, target, via, signal, options.signal));
        } finally {
          if (lane !== undefined) stream!.release(lane);
        }
        const done = checked.then(async () => {
          // Only MD5-verified downloads are cacheable (the cache skips other checksums).
          if (cache !== undefined && MD5_HEX.test(entry.checksum)) {
            await cache.add(entry, path);
            // The digest taken as it streamed in: the next copy of it needs no read either.
            if (entry.sha256 !== undefined) cache.addSha256?.(entry, entry.sha256);
          }
          options.onObject?.(entry, "lakefs");
        });
        done.catch((error: unknown) => {
          checkFailed ??= { error };
          stop.abort(error);
        });
        checks.push(done);
      },
      stop.signal,
    ).catch((error: unknown) => ({ error }));
    // No more files are coming: the workers hash what they hold without waiting for company.
    hashers.flush();
    // Every check started (and the cache copy after it) settles before this returns, so
    // nothing writes into the cache or the target once a failed download has been reported.
    await Promise.allSettled(checks);
    if (checkFailed !== undefined) throw checkFailed.error;
    if (pooled !== undefined) throw pooled.error;
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    connections?.close();
    hashers.close();
    streams?.close();
  }
  entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return entries;
}

/**
 * The objects under the prefix, in listing order, each also pushed to `entries`; folder
 * markers are left out, and a key outside the prefix is an error.
 */
async function* listedObjects(
  lakefs: LakeFsApi,
  options: DownloadOptions,
  entries: RemoteEntry[],
): AsyncGenerator<Listed> {
  const { repo, ref, prefix } = options;
  const listing = options.listing ?? lakefs.listObjects(repo, ref, {
    prefix,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  for await (const stats of listing) {
    if (stats.path_type !== "object") continue;
    // A zero-byte key ending in "/" is a folder marker (S3 tools make them): it has no
    // file to become, and leaving it out of the listing also keeps staging from deleting it.
    if (stats.path.endsWith("/") && stats.size_bytes === 0) continue;
    if (!stats.path.startsWith(prefix)) {
      throw new DownloadIntegrityError(
        `listing ${repo}@${ref} under ${JSON.stringify(prefix)} returned ` +
          `${JSON.stringify(stats.path)}, outside the prefix; check the lakeFS server`,
      );
    }
    const entry: Listed = {
      key: stats.path,
      size: stats.size_bytes,
      checksum: stats.checksum,
    };
    entries.push(entry);
    yield entry;
  }
}

/** A listed object while it downloads: its SHA-256 is set once known. */
type Listed = { -readonly [K in keyof RemoteEntry]: RemoteEntry[K] };

/**
 * mkdir -p with one call per folder, synchronous: the folder exists as soon as its first
 * object asks for it, so the next objects' path checks find it (an async mkdir left a window
 * in which every worker's check of the folder threw NotFound, ~60 us each).
 */
function folderMaker(): (folder: string) => Promise<void> {
  const folders = new Set<string>();
  return (folder) => {
    if (folders.has(folder)) return Promise.resolve();
    try {
      Deno.mkdirSync(folder, { recursive: true });
    } catch (error) {
      return Promise.reject(error);
    }
    folders.add(folder);
    return Promise.resolve();
  };
}

/** Where {@linkcode downloadOne} puts an object. */
interface DownloadTarget {
  readonly repo: string;
  readonly ref: string;
  /** The listed object; its `sha256` is set once checked, when the sink took it. */
  readonly entry: Listed;
  readonly path: string;
  /** Whether the caller created the file already. */
  readonly created: boolean;
}

/**
 * How {@linkcode downloadOne} writes and hashes an object: the sink over each try's file
 * (`finish` resolving with the size and MD5 once hashed), and the connections to read it over.
 */
interface DownloadVia {
  readonly sink: (file: Deno.FsFile) => ObjectSink;
  readonly connections?: ObjectConnections;
}

/**
 * Downloads one object to its path through `via`'s sink; resolves once the file is written,
 * with a promise settled once its size and MD5 are checked (rejected with
 * `DownloadIntegrityError` on a mismatch): the pool moves on to the next object while the
 * last bytes of this one are hashed (the stream hasher) or the file is read back (a hashing
 * worker). Only the caller's abort cancels that wait: when another object fails the download,
 * hashes already started still finish (and their cache copies), so the failure settles after
 * them. Without `downloadObject`, the body is read through `getObject` and checked here.
 */
async function downloadOne(
  lakefs: LakeFsApi,
  target: DownloadTarget,
  via: DownloadVia,
  signal: AbortSignal,
  callerSignal: AbortSignal | undefined,
): Promise<{ checked: Promise<void> }> {
  const { repo, ref, entry, path } = target;
  // The first try creates the file (an existing path is an error) unless the caller did.
  let tries = target.created ? 1 : 0;
  const openFile = async () =>
    tries++ === 0
      ? createTarget(path, entry)
      : await Deno.open(path, { write: true, truncate: true });
  if (lakefs.downloadObject === undefined) {
    const body = await lakefs.getObject(repo, ref, entry.key, signal);
    await writeBody(body, entry, openFile, signal);
    return { checked: Promise.resolve() };
  }
  let hashed: Promise<WrittenObject> | undefined;
  const open = async (): Promise<ObjectSink> => {
    const sink = via.sink(await openFile());
    // The try that succeeds hands its hash over without waiting for it.
    const finish = () => {
      hashed = sink.finish();
      // Handled below; a rejection before then is not unhandled.
      hashed.catch(() => {});
      return Promise.resolve({ size: entry.size, md5: "" });
    };
    // The sink's own members, `finish` replaced (a spread would read `writable`, a file's
    // stream, on every sink).
    return Object.assign(Object.create(sink) as ObjectSink, { finish });
  };
  try {
    await lakefs.downloadObject(
      repo,
      ref,
      entry.key,
      open,
      signal,
      via.connections === undefined ? {} : { connections: via.connections },
    );
  } catch (error) {
    // Only the first try creates the file (later ones truncate what it created).
    throw twoKeysOnePath(entry, path, error);
  }
  signal.throwIfAborted();
  const pending = hashed;
  if (pending === undefined) throw new Error(`download of ${entry.key}: no sink finished`);
  const checked = abortable(pending, callerSignal).then((hash) => {
    checkDownload(entry, hash.size, MD5_HEX.test(entry.checksum) ? hash.md5 : undefined);
    if (hash.sha256 !== undefined) entry.sha256 = hash.sha256;
  });
  return { checked };
}

/** `promise`, or its rejection with the signal's reason once `signal` aborts first. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Fetches a small object into memory and verifies its size and (when the checksum is one)
 * its MD5 against the listing.
 */
async function fetchSmall(
  lakefs: LakeFsApi,
  repo: string,
  ref: string,
  entry: RemoteEntry,
  signal: AbortSignal,
  connections: ObjectConnections | undefined,
): Promise<Uint8Array> {
  const maxBytes = entry.size;
  const data = lakefs.getObjectBytes !== undefined
    ? await lakefs.getObjectBytes(repo, ref, entry.key, {
      maxBytes,
      signal,
      ...(connections === undefined ? {} : { connections }),
    })
    : await readAtMost(await lakefs.getObject(repo, ref, entry.key, signal), maxBytes + 1);
  const md5 = MD5_HEX.test(entry.checksum)
    ? createHash("md5").update(data).digest("hex")
    : undefined;
  checkDownload(entry, data.length, md5);
  return data;
}

/**
 * Writes a new file (an existing path, even a symlink, is an error) in one synchronous op
 * (see {@linkcode SMALL_OBJECT_MAX_BYTES}).
 */
function writeNewFile(path: string, entry: RemoteEntry, data: Uint8Array): void {
  try {
    // No mode: it costs an fchmod per file, and the attempt directory (0700) already keeps
    // everything in it from other users.
    Deno.writeFileSync(path, data, { createNew: true });
  } catch (error) {
    throw twoKeysOnePath(entry, path, error);
  }
}

/**
 * Copies a cached object into the (new, empty) file at `path`; `false` when the entry was
 * removed since the lookup (another process evicted it): the caller downloads instead.
 */
async function copyCached(cached: string, path: string): Promise<boolean> {
  try {
    await Deno.copyFile(cached, path);
    // copyFile copies the entry's mode (read-only); the task's copy is writable, like a
    // downloaded file.
    await Deno.chmod(path, 0o600);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Creates the file of a download; an existing path (even a symlink) is an error. Created
 * synchronously, on the thread reading the network, like a small object's file (see
 * {@linkcode SMALL_OBJECT_MAX_BYTES}): the async open hands each file to a blocking-pool thread
 * and back, and on a 2-core host those wake-ups and context switches cost the download more than
 * the create itself (1,000 x 1 MiB, 8 at once, alternated against one demo lakeFS: 0.80 of a
 * plain fetch against 0.69, medians of 6 rounds at load 2.3-2.8).
 */
function createTarget(path: string, entry: RemoteEntry): Deno.FsFile {
  try {
    return Deno.openSync(path, { write: true, createNew: true, mode: 0o600 });
  } catch (error) {
    throw twoKeysOnePath(entry, path, error);
  }
}

/** `AlreadyExists` on creating a download's file: two keys of the listing map to one path. */
function twoKeysOnePath(entry: RemoteEntry, path: string, error: unknown): unknown {
  if (!(error instanceof Deno.errors.AlreadyExists)) return error;
  return new DownloadIntegrityError(
    `cannot download ${JSON.stringify(entry.key)}: ${path} already exists; the listing ` +
      "maps two keys to one path",
    { cause: error },
  );
}

/** Compares what was downloaded with the listing. */
function checkDownload(entry: RemoteEntry, written: number, md5: string | undefined): void {
  if (written !== entry.size) {
    throw new DownloadIntegrityError(
      `download of ${JSON.stringify(entry.key)} is ${written} bytes, the listing says ` +
        `${entry.size}; retry the attempt`,
    );
  }
  if (md5 !== undefined && md5 !== entry.checksum.toLowerCase()) {
    throw new DownloadIntegrityError(
      `download of ${JSON.stringify(entry.key)} has MD5 ${md5}, the listing says ` +
        `${entry.checksum}; retry the attempt`,
    );
  }
}

/**
 * Pipes an object body to a new file through a transform that only counts bytes and updates
 * the MD5 (`node:crypto`, native): no per-chunk promise of our own, and back-pressure from
 * the file down to the socket keeps at most a few chunks in memory.
 */
async function writeBody(
  body: ReadableStream<Uint8Array>,
  entry: RemoteEntry,
  open: () => Promise<Deno.FsFile>,
  signal: AbortSignal,
): Promise<void> {
  let file: Deno.FsFile;
  try {
    file = await open();
  } catch (error) {
    await body.cancel().catch(() => {});
    throw error;
  }
  const md5 = MD5_HEX.test(entry.checksum) ? createHash("md5") : undefined;
  let written = 0;
  const verify = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      md5?.update(chunk);
      written += chunk.length;
      controller.enqueue(chunk);
    },
  });
  try {
    // The file's writable closes the file when the pipe ends, whatever the outcome.
    await body.pipeThrough(verify).pipeTo(file.writable, { signal });
  } catch (error) {
    try {
      file.close();
    } catch {
      // Already closed by its writable.
    }
    throw error;
  }
  signal.throwIfAborted();
  checkDownload(entry, written, md5?.digest("hex"));
}

/** A local file for {@linkcode diffLocalWithRemote}. */
export interface LocalEntry {
  /** The object key this file is published as. */
  readonly key: string;
  readonly size: number;
  /**
   * The lakeFS checksum this content has, when known: the hex MD5, or the listed checksum of
   * the object this file is a byte-identical copy of. Unknown means "upload".
   */
  readonly checksum?: string | undefined;
}

/** What {@linkcode diffLocalWithRemote} found. */
export interface SyncPlan<L extends LocalEntry = LocalEntry> {
  /** Local files that are new or differ from the remote object (sorted by key). */
  readonly uploads: L[];
  /** Remote objects with no local file (sorted by key). */
  readonly deletes: RemoteEntry[];
}

/**
 * Compares a local tree with the remote listing: a local file is uploaded when the remote has
 * no object at its path, the sizes differ, or its checksum is unknown or differs (compared
 * case-insensitively); a remote object without a local file is deleted. Everything else is
 * left alone, so a one-file change in a 10,000-file workspace moves one object.
 *
 * @example
 * ```ts
 * const plan = diffLocalWithRemote(
 *   [{ key: "docs/a.txt", size: 3, checksum: "900150983cd24fb0d6963f7d28e17f72" }],
 *   [
 *     { key: "docs/a.txt", size: 3, checksum: "900150983cd24fb0d6963f7d28e17f72" },
 *     { key: "docs/old.txt", size: 1, checksum: "0cc175b9c0f1b6a831c399e269772661" },
 *   ],
 * );
 * plan.uploads.length; // 0: docs/a.txt is unchanged
 * plan.deletes.map((entry) => entry.key); // ["docs/old.txt"]
 * ```
 */
export function diffLocalWithRemote<L extends LocalEntry>(
  local: readonly L[],
  remote: readonly RemoteEntry[],
): SyncPlan<L> {
  const same = (entry: L, other: RemoteEntry | undefined) =>
    other !== undefined && other.size === entry.size && entry.checksum !== undefined &&
    entry.checksum.toLowerCase() === other.checksum.toLowerCase();
  const byKey = (entry: { readonly key: string }) => entry.key;
  if (isSortedBy(local, byKey) && isSortedBy(remote, byKey)) {
    // Both in key order (an attempt's snapshot and listing are): one cursor each, no Map.
    const uploads: L[] = [];
    const deletes: RemoteEntry[] = [];
    forEachPair(local, remote, byKey, (entry, other) => {
      if (entry === undefined) deletes.push(other!);
      else if (!same(entry, other)) uploads.push(entry);
    });
    return { uploads, deletes };
  }
  const remoteByKey = new Map(remote.map((entry) => [entry.key, entry]));
  const uploads: L[] = [];
  for (const entry of local) {
    const other = remoteByKey.get(entry.key);
    if (other !== undefined) remoteByKey.delete(entry.key);
    if (!same(entry, other)) uploads.push(entry);
  }
  uploads.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const deletes = [...remoteByKey.values()].sort((a, b) =>
    a.key < b.key ? -1 : a.key > b.key ? 1 : 0
  );
  return { uploads, deletes };
}

/** One upload for {@linkcode stageChanges}. */
export interface StageUpload {
  /** Full object key. */
  readonly key: string;
  readonly size: number;
  /** Opens the content; called again if the client retries. */
  readonly open: () => Promise<ReadableStream<Uint8Array> | Uint8Array>;
}

/** Options of {@linkcode stageChanges}. */
export interface StageOptions {
  readonly repo: string;
  /** The (staging) branch the changes go to. */
  readonly branch: string;
  readonly uploads: readonly StageUpload[];
  /** Full keys to delete. */
  readonly deletes: readonly string[];
  /** Uploads at once. @default 8 */
  readonly concurrency?: number;
  readonly signal?: AbortSignal;
}

/**
 * Writes a sync plan to a branch: the deletes (one `deleteObjects` call, which the client
 * splits into requests the server accepts), then the uploads with bounded parallelism. Nothing is committed here. An upload whose stored size differs
 * from the local size is an error.
 *
 * Requires `--allow-net` to the lakeFS host and `--allow-read` on the uploaded files.
 */
export async function stageChanges(
  lakefs: LakeFsApi,
  options: StageOptions,
): Promise<{ uploaded: number; deleted: number }> {
  const { repo, branch, signal } = options;
  if (options.deletes.length > 0) {
    await lakefs.deleteObjects(repo, branch, [...options.deletes], signal);
  }
  await forEachConcurrent(
    options.uploads,
    options.concurrency ?? 8,
    async (upload, inner) => {
      const stats = await lakefs.uploadObject(repo, branch, upload.key, upload.open, {
        size: upload.size,
        signal: inner,
      });
      if (stats.size_bytes !== upload.size) {
        throw new Error(
          `upload of ${JSON.stringify(upload.key)} stored ${stats.size_bytes} bytes, expected ` +
            `${upload.size}: the file changed while uploading; retry the attempt`,
        );
      }
    },
    signal,
  );
  return { uploaded: options.uploads.length, deleted: options.deletes.length };
}
