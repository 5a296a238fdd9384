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
 * - Use: an entry is served when it is a regular file of the listed size and, for a small
 *   object (read whole, then written into the attempt), when its bytes still hash to the
 *   SHA-256 its fill stored after them (`<bytes><32-byte SHA-256>`): the attempt needs that
 *   digest for its snapshot anyway, so checking it costs a 32-byte compare where the MD5 of
 *   every copy cost a hash more. A large object's entry is its bytes alone, served after an
 *   `lstat` shows the listed size; the caller copies it with `Deno.copyFile` (an in-kernel
 *   `copy_file_range`, which Btrfs and XFS turn into a copy-on-write clone). A wrong entry is
 *   removed and reported as a miss. Nothing is ever hard-linked: a task may rewrite its
 *   files in place. Entries are read-only files (mode 0400) that nothing writes after the
 *   rename of their fill.
 * - Digest: for a large object the cache keeps the SHA-256 of its bytes beside the entry
 *   (`<entry>.sha256`, given by the download that hashed it as it checked its MD5, or by the
 *   attempt's snapshot of the verified download), so an attempt copying it knows the digest
 *   its snapshot needs without reading the copy. A wrong digest file could only make an
 *   attempt upload an unchanged file again, never miss a change: the snapshot after the task
 *   reads every file changed since the one before.
 * - Bound: the entries' total size (read from their names, no `stat` needed) is kept under
 *   `maxBytes`; past it the least recently used entries (by mtime, which a hit refreshes at
 *   most once per {@linkcode TOUCH_INTERVAL_MS}: an attempt copying 20,000 entries must not
 *   pay a `utime` for each) are removed down to 90 %, with their digest files. Each instance
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

/**
 * A hit refreshes an entry's mtime (its LRU clock) when it is older than this: the order of
 * entries used within the same ten minutes does not matter for a bound of gigabytes.
 */
export const TOUCH_INTERVAL_MS = 10 * 60_000;

/** A temporary file older than this is a fill that died: removed by the next count. */
const STALE_TEMP_MS = 60 * 60_000;

const MD5_HEX = /^[0-9a-f]{32}$/i;
const ENTRY_NAME = /^([0-9a-f]{32})-(0|[1-9][0-9]*)$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
/** The suffix of an entry's digest file. */
const DIGEST_SUFFIX = ".sha256";
/** Entries are never written after their fill. */
const ENTRY_MODE = 0o400;
/** Bytes of the SHA-256 stored after a small entry's content. */
const TRAILER_BYTES = 32;

/** A small object's cached content and its SHA-256 (checked against the entry's). */
export interface CachedBytes {
  readonly data: Uint8Array;
  /** Hex SHA-256 of `data`. */
  readonly sha256: string;
}

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
 * cache.read(object)?.data; // the bytes of "abc"
 * cache.read({ size: 3, checksum: "0".repeat(32) }); // undefined: a miss
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
   * hundred KiB at most) with its SHA-256: a regular file of the listed size plus the
   * trailer, whose bytes hash to the trailer's digest; a bad entry is removed. Synchronous: a
   * handful of syscalls on local disk, cheaper than an async op per step when an attempt
   * copies thousands of small files.
   */
  read(object: CachedObject): CachedBytes | undefined {
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
    let found: CachedBytes | undefined;
    try {
      const info = file.statSync();
      if (info.isFile && info.size === object.size + TRAILER_BYTES) {
        const buffer = new Uint8Array(info.size);
        let offset = 0;
        while (offset < buffer.length) {
          const n = file.readSync(buffer.subarray(offset));
          if (n === null) break;
          offset += n;
        }
        const data = buffer.subarray(0, object.size);
        const digest = createHash("sha256").update(data).digest();
        if (offset === buffer.length && equalBytes(digest, buffer.subarray(object.size))) {
          found = { data, sha256: digest.toString("hex") };
          if (this.#stale(info.mtime)) {
            const now = new Date(this.#now());
            file.utimeSync(now, now);
          }
        }
      }
    } catch {
      found = undefined;
    } finally {
      file.close();
    }
    if (found === undefined) {
      this.#removeEntry(path);
      this.#stats.misses++;
      return undefined;
    }
    this.#stats.hits++;
    return found;
  }

  /**
   * Adds a small object from its verified bytes, with their SHA-256 after them (computed
   * when not given), written to a temporary file renamed into place. Synchronous and best
   * effort, like {@linkcode ObjectCache.add}.
   */
  addBytes(object: CachedObject, data: Uint8Array, sha256?: string): void {
    const name = ObjectCache.entryName(object);
    if (name === undefined || data.length !== object.size || object.size > this.#maxBytes / 4) {
      return;
    }
    try {
      const shard = join(this.#dir, "objects", name.slice(0, 2));
      this.#makeFolderSync(shard);
      const content = new Uint8Array(data.length + TRAILER_BYTES);
      content.set(data);
      content.set(
        sha256 !== undefined && SHA256_HEX.test(sha256)
          ? Uint8Array.fromHex(sha256)
          : createHash("sha256").update(data).digest(),
        data.length,
      );
      this.#writeIntoPlaceSync(content, join(shard, name));
      this.#stats.fills++;
      this.#addedBytes += object.size;
    } catch (error) {
      this.#failed(`cannot add ${name}: ${errorText(error)}`);
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
      this.#removeEntry(path);
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
   * size and MD5 are the listed ones (the downloader does, before it adds the file). Best effort:
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
      await Deno.chmod(temp, ENTRY_MODE);
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
   * The SHA-256 kept beside the entry of `object` (see the module doc), or `undefined`.
   * Synchronous: one small read.
   */
  sha256Of(object: CachedObject): string | undefined {
    const name = ObjectCache.entryName(object);
    if (name === undefined) return undefined;
    try {
      const text = Deno.readTextFileSync(this.#entryPath(name) + DIGEST_SUFFIX).trim();
      return SHA256_HEX.test(text) ? text : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Keeps `sha256`, the digest of the verified bytes of `object`, beside its entry (when the
   * entry is there and has none yet; written to a temporary file and renamed into place).
   * Best effort: never throws.
   */
  addSha256(object: CachedObject, sha256: string): void {
    const name = ObjectCache.entryName(object);
    if (name === undefined || !SHA256_HEX.test(sha256)) return;
    const path = this.#entryPath(name);
    try {
      const info = Deno.lstatSync(path);
      if (!info.isFile || info.size !== object.size) return;
    } catch {
      return; // no entry
    }
    try {
      Deno.lstatSync(path + DIGEST_SUFFIX);
      return; // has one
    } catch {
      // none yet
    }
    try {
      this.#writeIntoPlaceSync(new TextEncoder().encode(sha256 + "\n"), path + DIGEST_SUFFIX);
    } catch (error) {
      this.#failed(`cannot add the digest of ${name}: ${errorText(error)}`);
    }
  }

  /**
   * Writes `content` to a new temporary file and renames it to `target`, so a reader never
   * sees part of it; when anything fails the temporary file is removed and the error thrown.
   */
  #writeIntoPlaceSync(content: Uint8Array, target: string): void {
    const tmpDir = join(this.#dir, "tmp");
    this.#makeFolderSync(tmpDir);
    const temp = join(tmpDir, `${Deno.pid}-${crypto.randomUUID()}`);
    try {
      Deno.writeFileSync(temp, content, { createNew: true, mode: ENTRY_MODE });
      Deno.renameSync(temp, target);
    } catch (error) {
      try {
        Deno.removeSync(temp);
      } catch {
        // Never created.
      }
      throw error;
    }
  }

  /** Removes an entry and its digest file; either may be gone already. */
  #removeEntry(path: string): void {
    for (const target of [path, path + DIGEST_SUFFIX]) {
      try {
        Deno.removeSync(target);
      } catch {
        // Gone already.
      }
    }
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
        await Deno.remove(entry.path + DIGEST_SUFFIX).catch(() => {});
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

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
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
