/**
 * The host's object cache: verified copies of lakeFS objects kept under the workspace root
 * (`<PERAGO_WORKSPACE_ROOT>/.perago-cache/`), shared by every attempt of the host, so an
 * attempt that needs an object the host downloaded before copies it instead of fetching it.
 *
 * - Identity: an object is cached under its content's identity, the MD5 lakeFS lists as its
 *   checksum plus its size (`objects/<md5[0..2]>/<md5>-<size>`). Objects whose checksum is
 *   not a hex MD5 (some imported objects list an S3 multipart ETag) cannot be verified and
 *   are never cached.
 * - Fill: only a file whose size and MD5 the downloader verified is added, through a
 *   temporary file in `tmp/` renamed into place, so a reader never sees a partial entry and
 *   several executor processes (or threads) can fill the same entry at once: the last
 *   rename wins with the same bytes.
 * - Use: a small object's entry is read whole and re-verified (size and MD5, a few us for a
 *   few KiB) before its bytes are written into the attempt; a large one is served after an
 *   `lstat` shows a regular file of the listed size, and the caller copies it
 *   (`Deno.copyFile`: an in-kernel `copy_file_range`, which Btrfs and XFS turn into a
 *   copy-on-write clone). A wrong entry is removed and reported as a miss. Nothing is ever
 *   hard-linked: a task may rewrite its files in place.
 * - Bound: the entries' total size (read from their names, no `stat` needed) is kept under
 *   `maxBytes`; past it the least recently used entries (by mtime, which a hit refreshes at
 *   most once per {@linkcode TOUCH_INTERVAL_MS}) are removed down to 90 %. Each instance
 *   re-counts the directory at its first fill and after each 1/16 of the bound it added, so
 *   with several processes filling at once the total can pass the bound by about 1/16 of it
 *   per process until the next count.
 *
 * An entry removed while another process copies it is harmless: the copy holds the file
 * open; a copy that starts after the removal fails with `NotFound` and the caller downloads.
 *
 * Requires `--allow-read` and `--allow-write` on the cache directory.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";

/** The cache's directory name under the workspace root. */
export const OBJECT_CACHE_DIR_NAME = ".perago-cache";

/** A hit refreshes an entry's mtime (its LRU clock) when it is older than this. */
export const TOUCH_INTERVAL_MS = 60_000;

/** A temporary file older than this is a fill that died: removed by the next count. */
const STALE_TEMP_MS = 60 * 60_000;

const MD5_HEX = /^[0-9a-f]{32}$/i;
const ENTRY_NAME = /^([0-9a-f]{32})-(0|[1-9][0-9]*)$/;

/** The object an entry stands for: the listing's checksum and size. */
export interface CachedObject {
  readonly size: number;
  /** lakeFS checksum; cached only when it is a hex MD5. */
  readonly checksum: string;
}

/** Counters of one cache instance (this process's view). */
export interface ObjectCacheStats {
  /** Lookups that found a good entry. */
  hits: number;
  /** Lookups of cacheable objects that found none (or a bad one, then removed). */
  misses: number;
  /** Entries this instance added. */
  fills: number;
  /** Entries this instance removed to keep the bound. */
  evictions: number;
  /** Fills or counts that failed (the cache is best effort; the download never fails). */
  errors: number;
}

/** Options of {@linkcode ObjectCache}. */
export interface ObjectCacheOptions {
  /** The cache directory, created on first fill (see {@linkcode objectCacheDir}). */
  readonly dir: string;
  /** Bound of the entries' total size in bytes; must be positive. */
  readonly maxBytes: number;
  /** Told why a fill or count failed (the cache carries on without it). */
  readonly onError?: (message: string) => void;
  /** @default Date.now */
  readonly now?: () => number;
}

/**
 * The cache directory of a workspace root.
 *
 * @example
 * ```ts
 * objectCacheDir("/var/lib/perago/ws"); // "/var/lib/perago/ws/.perago-cache"
 * ```
 */
export function objectCacheDir(workspaceRoot: string): string {
  return join(workspaceRoot, OBJECT_CACHE_DIR_NAME);
}

/**
 * A bounded, multi-process-safe store of verified lakeFS objects (see the module doc).
 *
 * @example
 * ```ts
 * const root = await Deno.makeTempDir();
 * const cache = new ObjectCache({ dir: objectCacheDir(root), maxBytes: 5 * 2 ** 30 });
 * // "abc", as lakeFS lists it: hex MD5 and size. The caller verified these bytes.
 * const object = { size: 3, checksum: "900150983cd24fb0d6963f7d28e17f72" };
 * cache.addBytes(object, new TextEncoder().encode("abc"));
 * cache.readVerified(object); // the bytes of "abc", re-verified
 * cache.readVerified({ size: 3, checksum: "0".repeat(32) }); // undefined: a miss
 * ```
 */
export class ObjectCache {
  readonly #dir: string;
  readonly #maxBytes: number;
  readonly #onError: ((message: string) => void) | undefined;
  readonly #now: () => number;
  readonly #stats: ObjectCacheStats = { hits: 0, misses: 0, fills: 0, evictions: 0, errors: 0 };
  /** Shard folders known to exist. */
  readonly #folders = new Set<string>();
  /** Total size at the last count, `undefined` before the first one. */
  #countedBytes: number | undefined;
  /** Bytes this instance added since the last count. */
  #addedBytes = 0;
  #counting: Promise<void> | undefined;

  constructor(options: ObjectCacheOptions) {
    if (!Number.isSafeInteger(options.maxBytes) || options.maxBytes <= 0) {
      throw new RangeError(
        `ObjectCache: maxBytes must be a positive integer, got ${options.maxBytes}`,
      );
    }
    this.#dir = options.dir;
    this.#maxBytes = options.maxBytes;
    this.#onError = options.onError;
    this.#now = options.now ?? Date.now;
  }

  /** The cache directory. */
  get dir(): string {
    return this.#dir;
  }

  /** The bound in bytes. */
  get maxBytes(): number {
    return this.#maxBytes;
  }

  /** A copy of this instance's counters. */
  get stats(): ObjectCacheStats {
    return { ...this.#stats };
  }

  /**
   * The entry name of an object (`<md5>-<size>`), or `undefined` when it cannot be cached
   * (its checksum is not a hex MD5, so a fill could not be verified).
   */
  static entryName(object: CachedObject): string | undefined {
    if (!MD5_HEX.test(object.checksum) || !Number.isSafeInteger(object.size) || object.size < 0) {
      return undefined;
    }
    return `${object.checksum.toLowerCase()}-${object.size}`;
  }

  #entryPath(name: string): string {
    return join(this.#dir, "objects", name.slice(0, 2), name);
  }

  /**
   * The content of a good entry for a small `object` (read whole: meant for objects of a few
   * hundred KiB at most), re-verified (size and MD5) on every use; a bad entry is removed.
   * Synchronous: a handful of syscalls on local disk, cheaper than an async op per step when
   * an attempt copies thousands of small files.
   */
  readVerified(object: CachedObject): Uint8Array | undefined {
    const name = ObjectCache.entryName(object);
    if (name === undefined) return undefined;
    const path = this.#entryPath(name);
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { read: true });
    } catch {
      this.#stats.misses++;
      return undefined;
    }
    let data: Uint8Array | undefined;
    try {
      const info = file.statSync();
      if (info.isFile && info.size === object.size) {
        data = new Uint8Array(object.size);
        let offset = 0;
        while (offset < data.length) {
          const n = file.readSync(data.subarray(offset));
          if (n === null) break;
          offset += n;
        }
        const good = offset === data.length &&
          createHash("md5").update(data).digest("hex") === object.checksum.toLowerCase();
        if (!good) data = undefined;
        else if (this.#stale(info.mtime)) {
          const now = new Date(this.#now());
          file.utimeSync(now, now);
        }
      }
    } catch {
      data = undefined;
    } finally {
      file.close();
    }
    if (data === undefined) {
      try {
        Deno.removeSync(path);
      } catch {
        // Gone already.
      }
      this.#stats.misses++;
      return undefined;
    }
    this.#stats.hits++;
    return data;
  }

  /**
   * Adds a small object from its verified bytes (written to a temporary file, renamed into
   * place). Synchronous and best effort, like {@linkcode ObjectCache.add}.
   */
  addBytes(object: CachedObject, data: Uint8Array): void {
    const name = ObjectCache.entryName(object);
    if (name === undefined || data.length !== object.size || object.size > this.#maxBytes / 4) {
      return;
    }
    let temp: string | undefined;
    try {
      const tmpDir = join(this.#dir, "tmp");
      const shard = join(this.#dir, "objects", name.slice(0, 2));
      this.#makeFolderSync(tmpDir);
      this.#makeFolderSync(shard);
      temp = join(tmpDir, `${Deno.pid}-${crypto.randomUUID()}`);
      Deno.writeFileSync(temp, data, { createNew: true, mode: 0o600 });
      Deno.renameSync(temp, join(shard, name));
      temp = undefined;
      this.#stats.fills++;
      this.#addedBytes += object.size;
    } catch (error) {
      this.#failed(`cannot add ${name}: ${errorText(error)}`);
      if (temp !== undefined) {
        try {
          Deno.removeSync(temp);
        } catch {
          // Never created.
        }
      }
      return;
    }
    // The count runs in the background: it never throws, and a fill never waits for it.
    if (this.#overBound()) void this.enforceBound();
  }

  #stale(mtime: Date | null): boolean {
    return mtime === null || this.#now() - mtime.getTime() > TOUCH_INTERVAL_MS;
  }

  #overBound(): boolean {
    return this.#countedBytes === undefined ||
      this.#countedBytes + this.#addedBytes > this.#maxBytes ||
      this.#addedBytes >= this.#maxBytes / 16;
  }

  #makeFolderSync(path: string): void {
    if (this.#folders.has(path)) return;
    Deno.mkdirSync(path, { recursive: true, mode: 0o700 });
    this.#folders.add(path);
  }

  /**
   * The path of a good entry for `object`, or `undefined`. A good entry is a regular file of
   * the listed size; anything else found there is removed. A hit refreshes the entry's mtime
   * (at most once a minute). The caller copies the file; it never writes to it.
   */
  async lookup(object: CachedObject): Promise<string | undefined> {
    const name = ObjectCache.entryName(object);
    if (name === undefined) return undefined;
    const path = this.#entryPath(name);
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(path);
    } catch {
      this.#stats.misses++;
      return undefined;
    }
    if (!info.isFile || info.size !== object.size) {
      // Not what a fill renames into place: never served.
      await Deno.remove(path).catch(() => {});
      this.#stats.misses++;
      return undefined;
    }
    if (this.#stale(info.mtime)) {
      const when = new Date(this.#now());
      await Deno.utime(path, when, when).catch(() => {});
    }
    this.#stats.hits++;
    return path;
  }

  /**
   * Adds `source` as the content of `object`. The caller must have verified that the file's
   * size and MD5 are the listed ones (the downloader does, as the bytes arrive). Best effort:
   * never throws (a full disk must not fail a download); failures go to `onError`. Objects
   * that cannot be cached, larger than a quarter of the bound, or already cached are skipped.
   */
  async add(object: CachedObject, source: string): Promise<void> {
    const name = ObjectCache.entryName(object);
    if (name === undefined || object.size > this.#maxBytes / 4) return;
    const path = this.#entryPath(name);
    const shard = join(this.#dir, "objects", name.slice(0, 2));
    const tmpDir = join(this.#dir, "tmp");
    let temp: string | undefined;
    try {
      if (await Deno.lstat(path).then(() => true, () => false)) return;
      await this.#makeFolder(tmpDir);
      await this.#makeFolder(shard);
      temp = join(tmpDir, `${Deno.pid}-${crypto.randomUUID()}`);
      await Deno.copyFile(source, temp);
      const copied = await Deno.lstat(temp);
      if (copied.size !== object.size) {
        throw new Error(`copied ${copied.size} bytes, expected ${object.size}`);
      }
      await Deno.rename(temp, path);
      temp = undefined;
      this.#stats.fills++;
      this.#addedBytes += object.size;
    } catch (error) {
      this.#failed(`cannot add ${name}: ${errorText(error)}`);
      if (temp !== undefined) await Deno.remove(temp).catch(() => {});
      return;
    }
    if (this.#overBound()) await this.enforceBound();
  }

  /**
   * Counts the entries (sizes from their names) and, past the bound, removes the least
   * recently used down to 90 % of it; temporary files of fills that died are removed too.
   * One count at a time per instance; another process counting at once is harmless.
   */
  enforceBound(): Promise<void> {
    this.#counting ??= this.#count().finally(() => this.#counting = undefined);
    return this.#counting;
  }

  async #count(): Promise<void> {
    const entries: { path: string; size: number }[] = [];
    let total = 0;
    const objects = join(this.#dir, "objects");
    try {
      for (const shard of readDirOrEmpty(objects)) {
        if (!shard.isDirectory) continue;
        const folder = join(objects, shard.name);
        for (const entry of readDirOrEmpty(folder)) {
          const match = ENTRY_NAME.exec(entry.name);
          if (!entry.isFile || match === null) continue;
          const size = Number(match[2]);
          entries.push({ path: join(folder, entry.name), size });
          total += size;
        }
      }
      this.#addedBytes = 0;
      this.#countedBytes = total;
      await this.#removeStaleTemps();
      if (total <= this.#maxBytes) return;
      // Over the bound: oldest first (mtime is the LRU clock a hit refreshes).
      const dated = entries.map((entry) => ({ ...entry, mtime: mtimeOf(entry.path) }));
      dated.sort((a, b) => a.mtime - b.mtime);
      const target = Math.floor(this.#maxBytes * 0.9);
      for (const entry of dated) {
        if (total <= target) break;
        total -= entry.size;
        if (entry.mtime === -1) continue; // gone already
        try {
          await Deno.remove(entry.path);
          this.#stats.evictions++;
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
        }
      }
      this.#countedBytes = total;
    } catch (error) {
      this.#failed(`cannot keep the cache under ${this.#maxBytes} bytes: ${errorText(error)}`);
    }
  }

  async #removeStaleTemps(): Promise<void> {
    const tmpDir = join(this.#dir, "tmp");
    const cutoff = this.#now() - STALE_TEMP_MS;
    for (const entry of readDirOrEmpty(tmpDir)) {
      const path = join(tmpDir, entry.name);
      const info = await Deno.lstat(path).catch(() => undefined);
      if (info !== undefined && (info.mtime?.getTime() ?? 0) < cutoff) {
        await Deno.remove(path).catch(() => {});
      }
    }
  }

  async #makeFolder(path: string): Promise<void> {
    if (this.#folders.has(path)) return;
    await Deno.mkdir(path, { recursive: true, mode: 0o700 });
    this.#folders.add(path);
  }

  #failed(message: string): void {
    this.#stats.errors++;
    this.#onError?.(message);
  }
}

function readDirOrEmpty(path: string): Deno.DirEntry[] {
  try {
    return [...Deno.readDirSync(path)];
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

/** An entry's mtime in ms; -1 when it is gone. */
function mtimeOf(path: string): number {
  try {
    return Deno.lstatSync(path).mtime?.getTime() ?? 0;
  } catch {
    return -1;
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
