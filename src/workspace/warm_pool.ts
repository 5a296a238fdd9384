/**
 * The warm pool: attempt directories kept on the host after their attempt, so that the next
 * attempt of the same repository reuses the files instead of creating them again (creating
 * 21,000 files is most of a warm re-run once every object comes from the host cache).
 *
 * A retired directory waits in `<root>/.perago-warm/<holder>.<entry>.<repo key>.<bytes>` with a
 * manifest beside it (`<that name>.json`): per path the lakeFS checksum and size the file
 * matches, its SHA-256 (what the snapshot before the task needs) and its stat identity (size,
 * mtime, ctime, inode), plus a stamp taken before those `lstat`s. A new attempt takes one by
 * renaming it onto its own attempt directory: the rename is the claim, so two attempts never
 * get the same directory. It then reads its folders ({@linkcode walkClaimedDir}): every entry
 * that is not a folder or a regular file the manifest lists is removed (symlinks, FIFOs, extra
 * files, a folder's content where a file was). A folder the description found holding only
 * described entries has a row too (inode, mtime, ctime): found the same, older than the stamp,
 * it holds the same entries (the kernel sets a folder's mtime and ctime when an entry is
 * added, removed or renamed in it) and is not read. The download then keeps a listed file only once
 * {@linkcode keepPooledFile} found it unchanged: the same stat identity as in the manifest
 * (files changed in place differ: the kernel sets ctime on every change, content or metadata,
 * and no call sets it to a chosen value), else it is removed and fetched again. Deno's ctime
 * has whole seconds, so a file whose ctime is not older than the stamp could have changed
 * again in that second without a trace: it is read and hashed again, and kept only when its
 * SHA-256 is the manifest's. Files of the manifest the listing no longer has are removed after
 * the download. Each file's `lstat` is thus made as the listing confirms it, while its later
 * pages are on their way, not in a walk before it. The stamp is taken at once when the
 * attempt ends (no wait for the next second, which `perago run` would spend before exiting):
 * the files the attempt wrote in its last second are the ones read again.
 *
 * When the code that used a directory can no longer write to it: the executor gives tasks no
 * `--allow-run` and no FFI, so a task's code lives only in the process or Worker that ran it
 * (timers it left, files it left open). Each pool instance holds an exclusive lock on
 * `<pool>/holders/<holder>.lock` for as long as its process or Worker lives (or until
 * {@linkcode WarmPool.close}); the kernel drops the lock only when that realm's files are
 * closed: process exit or Worker termination. An entry is claimed only once its holder's
 * lock can be taken, so nothing that ran in the attempt can still write to it; a write done
 * before that is seen by the claimer's checks. Entries of a live holder (this one included) wait.
 *
 * The pool trusts the host as the object cache does: it lives under the workspace root, which
 * tasks may write, so a task that rewrote a pooled directory and its manifest to match could
 * feed a later attempt wrong bytes; `PERAGO_WARM_POOL_DIRS=0` turns it off where tasks of
 * different trust share a host.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import {
  ATTEMPT_MARKER,
  removeTrashIfEmpty,
  renameIntoTrash,
  runInBackground,
  TRASH_DIR_NAME,
  trashAttemptDir,
} from "./attempt_dir.ts";
import { changeStamp } from "./snapshot.ts";
import { slicer, yieldToEventLoop } from "../util/slices.ts";

/** The folder under the workspace root that holds the warm pool. */
export const WARM_POOL_DIR_NAME = ".perago-warm";

/** What the retiring attempt knows of a file it downloaded. */
export interface KnownFile {
  readonly size: number;
  /** Hex SHA-256 of the content. */
  readonly sha256: string;
  /** The lakeFS checksum of the object the file was downloaded from. */
  readonly checksum: string;
}

/** One file of a manifest. */
export interface PooledFile {
  readonly checksum: string;
  readonly size: number;
  readonly sha256: string;
  readonly ino: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  /** The claimer reads the file again and keeps it only with this SHA-256, whatever its ctime. */
  readonly readAgain?: boolean;
}

/** What {@linkcode WarmPool.retire} needs to describe a directory. */
export interface RetireInfo {
  readonly repository: string;
  readonly scope: string;
  /**
   * A change stamp (`changeStamp`) taken after the download and before the task ran: a file
   * whose ctime is older is as downloaded, and `known` tells its digest and checksum.
   */
  readonly stampMs: number;
  /** The downloaded files, by relative path. */
  readonly known: ReadonlyMap<string, KnownFile>;
}

/**
 * A directory's files as a retirement records them ({@linkcode WarmPool.describe}): the change
 * stamp taken before any of them was looked at, and a manifest row per regular file.
 */
export interface DescribedDir {
  readonly stampMs: number;
  readonly files: Readonly<Record<string, ManifestRow>>;
  /** Folders (below the top) every entry of which has a row: inode, mtime, ctime. */
  readonly dirs?: Readonly<Record<string, DirRow>>;
}

/** A directory taken from the pool: what its manifest says. */
export interface ClaimedDir {
  readonly files: ReadonlyMap<string, PooledFile>;
  readonly stampMs: number;
  /**
   * Folders every entry of which the manifest describes, with their inode, mtime and ctime
   * then: the walk need not read one found the same (see {@linkcode walkClaimedDir}).
   */
  readonly dirs?: ReadonlyMap<string, DirRow>;
}

/** A folder's inode, mtime and ctime (ms) as a description found it. */
export type DirRow = readonly [number, number, number];

/** What a claimed directory holds after {@linkcode walkClaimedDir}. */
export interface WalkedDir {
  /** The claimed directory. */
  readonly dir: string;
  /** The manifest's stamp. */
  readonly stampMs: number;
  /**
   * Regular files of the manifest, by relative path, not yet checked against their stat
   * identity: {@linkcode keepPooledFile} checks one (and removes it when it changed).
   */
  readonly files: Map<string, PooledFile>;
  /** Directories left, by relative path. */
  readonly dirs: Set<string>;
  /** Entries removed by the walk, and files removed by {@linkcode keepPooledFile}. */
  removed: number;
}

/** Options of {@linkcode WarmPool}. */
export interface WarmPoolOptions {
  /** The workspace root (the pool lives in `<root>/.perago-warm`). */
  root: string;
  /** Directories kept at most; the least recently retired go first. */
  maxDirs: number;
  /**
   * Bytes of files the kept directories may hold together (each directory counted by its
   * manifest); the least recently retired go first, and a directory larger than this is not
   * kept. @default no bound
   */
  maxBytes?: number;
  /**
   * Smallest directory worth keeping: one whose download wrote fewer files than `minFiles`
   * and fewer bytes than `minBytes` is removed instead ({@linkcode WarmPool.retire} returns
   * `false`). An executor is replaced after each directory it keeps (its directories become
   * claimable only once it has ended), so a directory must save more than that replacement
   * costs. @default 0 and 0: every directory is kept
   */
  minFiles?: number;
  /** See `minFiles`. @default 0 */
  minBytes?: number;
  /** Told of failures of the background retirement (the directory is then removed). */
  onError?: (message: string) => void;
  /**
   * For a process whose exit waits for the retirement (`perago run`): a downloaded file the
   * retirement would read to vouch for it (its ctime is in the second of the stamp taken
   * before the task: for a short download, nearly all) is marked for the claimer to read
   * instead, which the next attempt does anyway for the files of the stamp's second; a
   * process that retires in the background (an executor) reads them then. @default false
   */
  readAtClaim?: boolean;
  /**
   * For a process whose exit waits for the retirement (`perago run`): the attempt describes
   * its directory while its commit and merge wait on lakeFS ({@linkcode WarmPool.describe}), so
   * the retirement after it has less to do. A process that retires in the background (an
   * executor) leaves the description to the retirement: made during the publication, it
   * delays the attempt's result (21,000 files: ~80 ms). @default false
   */
  describeWhilePublishing?: boolean;
}

/**
 * checksum, size, SHA-256, inode, mtime, ctime, and a trailing 1 when the claimer must read the
 * file again whatever its ctime (see `describeFiles`).
 */
type ManifestRow =
  | [string, number, string, number, number, number]
  | [string, number, string, number, number, number, 1];

interface Manifest {
  version: 1;
  repository: string;
  scope: string;
  stamp_ms: number;
  files: Record<string, ManifestRow>;
  /** Absent in manifests of earlier versions: every folder is read then. */
  dirs?: Record<string, DirRow>;
}

/** Entries whose manifest lost its directory (claimed by a process that died) are removed after this. */
const ORPHAN_MANIFEST_MS = 60 * 60 * 1000;

/**
 * The pool of one workspace root, for one process or Worker (see the module doc for when a
 * directory may be claimed).
 *
 * Requires `--allow-read` and `--allow-write` on the workspace root.
 *
 * @example
 * ```ts ignore
 * const pool = new WarmPool({ root: "/var/lib/perago/ws", maxDirs: 4 });
 * // runAttempt({ ..., warmPool: pool }) claims a directory and retires its own.
 * ```
 */
export class WarmPool {
  readonly #root: string;
  readonly #dir: string;
  readonly #maxDirs: number;
  readonly #maxBytes: number;
  readonly #minFiles: number;
  readonly #minBytes: number;
  readonly #onError: (message: string) => void;
  readonly #readAtClaim: boolean;
  /** See {@linkcode WarmPoolOptions.describeWhilePublishing}. */
  readonly describesWhilePublishing: boolean;
  #kept = 0;
  #holder: Promise<{ id: string; lock: Deno.FsFile }> | undefined;
  readonly #deadHolders = new Set<string>();
  #closed = false;

  constructor(options: WarmPoolOptions) {
    if (!Number.isInteger(options.maxDirs) || options.maxDirs < 1) {
      throw new RangeError("WarmPool: maxDirs must be a positive integer");
    }
    this.#root = options.root;
    this.#dir = join(options.root, WARM_POOL_DIR_NAME);
    this.#maxDirs = options.maxDirs;
    if (
      options.maxBytes !== undefined && !(Number.isSafeInteger(options.maxBytes) &&
        options.maxBytes > 0)
    ) {
      throw new RangeError("WarmPool: maxBytes must be a positive integer");
    }
    this.#maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
    this.#minFiles = options.minFiles ?? 0;
    this.#minBytes = options.minBytes ?? 0;
    this.#onError = options.onError ?? (() => {});
    this.#readAtClaim = options.readAtClaim === true;
    this.describesWhilePublishing = options.describeWhilePublishing === true;
  }

  /** Directories this instance has kept ({@linkcode WarmPool.retire} returned `true`). */
  get kept(): number {
    return this.#kept;
  }

  /**
   * Moves a pooled directory of `repository` whose scope overlaps `scope` (the same first,
   * then the newest) onto `target` (which must not exist). Returns its manifest, or
   * `undefined` when there is none to take. Directories of a live holder are never taken.
   */
  async claim(repository: string, scope: string, target: string): Promise<ClaimedDir | undefined> {
    let names: string[];
    try {
      const key = repoKey(repository);
      names = [...Deno.readDirSync(this.#dir)]
        .filter((entry) => entry.isDirectory && entry.name.split(".")[2] === key)
        .map((entry) => entry.name);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
    const own = this.#holder === undefined ? undefined : (await this.#holder).id;
    const candidates: { name: string; manifest: Manifest }[] = [];
    for (const name of names) {
      const holder = name.slice(0, name.indexOf("."));
      if (holder === own || !this.#holderGone(holder)) continue;
      const manifest = readManifest(join(this.#dir, `${name}.json`));
      if (manifest === undefined || manifest.repository !== repository) continue;
      if (!scope.startsWith(manifest.scope) && !manifest.scope.startsWith(scope)) continue;
      candidates.push({ name, manifest });
    }
    // One of the same scope before any other, then the most recently retired.
    candidates.sort((a, b) =>
      Number(b.manifest.scope === scope) - Number(a.manifest.scope === scope) ||
      entryTime(b.name) - entryTime(a.name)
    );
    // Synchronous file calls: each is short, and the attempt waits for the claim.
    for (const { name, manifest } of candidates) {
      try {
        Deno.renameSync(join(this.#dir, name), target);
      } catch (error) {
        // Another attempt took it first (or evicted it): try the next one.
        if (error instanceof Deno.errors.NotFound) continue;
        throw error;
      }
      try {
        Deno.removeSync(join(this.#dir, `${name}.json`));
      } catch { /* gone already: either way not claimable again */ }
      const files = new Map<string, PooledFile>();
      let everyRow = true;
      for (const path in manifest.files) {
        const file = pooledFile(manifest.files[path]);
        if (file !== undefined) files.set(path, file);
        else everyRow = false;
      }
      // A folder whose file rows are not all usable is read: its unusable files must go.
      const dirs = everyRow ? dirRows(manifest.dirs) : undefined;
      return { files, stampMs: manifest.stamp_ms, ...(dirs === undefined ? {} : { dirs }) };
    }
    return undefined;
  }

  /**
   * Describes the files of `dir`, an attempt directory whose task has returned, for its
   * retirement ({@linkcode retire}'s `described`), while the attempt still publishes: the
   * lstat of every file (and the hashing of files the task wrote) then happens while the
   * attempt waits on lakeFS, not while its process waits to exit. A file changed afterwards
   * has a ctime at or past the stamp taken first, so the claimer reads it again, as it would
   * after a description made at retirement. The attempt marker is not described. The walk
   * lets the event loop run every few ms (its `lstat`s are synchronous), so requests the
   * attempt makes meanwhile go out and their answers are read without waiting for it.
   *
   * Requires `--allow-read` and `--allow-write` on `dir`.
   */
  async describe(dir: string, info: RetireInfo): Promise<DescribedDir> {
    // The retirement needs the holder lock: taken meanwhile (a failure is the retirement's).
    this.#holderLock().catch(() => {});
    // Started from a turn of the event loop of its own: requests made just before go out first.
    await yieldToEventLoop();
    const stampMs = changeStamp(dir);
    const files: Record<string, ManifestRow> = {};
    const dirs: Record<string, DirRow> = {};
    const slice = slicer(DESCRIBE_SLICE_MS);
    await describeFiles(dir, "", info, files, dirs, this.#readAtClaim, slice);
    return { stampMs, files, dirs };
  }

  /**
   * Whether {@linkcode retire} keeps a directory holding `info`'s files: at least `minFiles`
   * of them or `minBytes` in all. A smaller one is not worth describing: it is removed.
   */
  worthKeeping(info: RetireInfo): boolean {
    let bytes = 0;
    for (const file of info.known.values()) bytes += file.size;
    return info.known.size >= this.#minFiles || bytes >= this.#minBytes;
  }

  /**
   * Keeps `dir` (an attempt directory of this process, whose attempt has ended) for a later
   * attempt, in the background, and returns `true`; a directory that cannot be described
   * safely is removed instead. One smaller than `minFiles` and `minBytes` is moved to the
   * trash and removed, and `false` returned. {@linkcode trashedDirsRemoved} (attempt_dir.ts)
   * waits for both. `described` is {@linkcode describe}'s description of `dir`, made since
   * its task returned (described again here when it failed).
   */
  retire(dir: string, info: RetireInfo, described?: Promise<DescribedDir>): boolean {
    if (!this.worthKeeping(info)) {
      runInBackground(
        trashAttemptDir(dirname(dir), dir, (error) => this.#failed(dir, error)).catch((error) =>
          this.#failed(dir, error)
        ),
      );
      return false;
    }
    this.#kept++;
    runInBackground(
      this.#retire(dir, info, described).catch((error) => {
        this.#onError(
          `warm pool: keeping ${dir} failed: ${error instanceof Error ? error.message : error}`,
        );
      }),
    );
    return true;
  }

  #failed(dir: string, error: unknown): void {
    this.#onError(
      `warm pool: removing ${dir} failed: ${error instanceof Error ? error.message : error}`,
    );
  }

  /**
   * Releases this instance's holder lock: its retired directories become claimable. Only for
   * a caller that knows no code of the attempts that used this instance can still run (the
   * process or Worker exiting does the same by itself).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const holder = await this.#holder?.catch(() => undefined);
    holder?.lock.close();
  }

  async #retire(
    dir: string,
    info: RetireInfo,
    described: Promise<DescribedDir> | undefined,
  ): Promise<void> {
    if (this.#closed) throw new Error("the pool is closed");
    // A working directory inside would follow the directory into the pool: the process's
    // relative paths would write into it. Deno.cwd() fails without read permission on the
    // working directory, which is then outside the workspace root.
    let cwd: string | undefined;
    try {
      cwd = Deno.cwd();
    } catch { /* not readable: not ours */ }
    const trash = join(this.#root, TRASH_DIR_NAME);
    // In the trash (named by this pid) while it is being described: a process that dies
    // meanwhile leaves it to the workspace GC like any trashed directory.
    const work = join(trash, `${Deno.pid}-${crypto.randomUUID().slice(0, 8)}-warm`);
    await renameIntoTrash(dir, trash, work);
    let pooled = false;
    // The file operations on the pool's own entries are synchronous: each is short, and a
    // perago run waits for this retirement before it exits (a dozen async ones took ~10 ms).
    try {
      if (cwd !== undefined && (cwd === dir || cwd.startsWith(`${dir}/`))) {
        throw new Error("the process's working directory is inside it");
      }
      const holder = await this.#holderLock();
      try {
        Deno.removeSync(join(work, ATTEMPT_MARKER), { recursive: true });
      } catch { /* none, or gone: either way not pooled */ }
      // Files whose ctime is not older than the stamp are read again by the claimer.
      const { stampMs, files, dirs } = await described?.catch(() => undefined) ??
        await this.describe(work, info);
      let bytes = 0;
      for (const row of Object.values(files)) bytes += row[1];
      const name = `${holder.id}.${Date.now().toString(36).padStart(9, "0")}-${
        crypto.randomUUID().slice(0, 8)
      }.${repoKey(info.repository)}.${bytes.toString(36)}`;
      Deno.mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
      const manifest: Manifest = {
        version: 1,
        repository: info.repository,
        scope: info.scope,
        stamp_ms: stampMs,
        files,
        ...(dirs === undefined ? {} : { dirs }),
      };
      const next = join(this.#dir, `${name}.json.next`);
      Deno.writeTextFileSync(next, JSON.stringify(manifest), { mode: 0o600 });
      Deno.renameSync(next, join(this.#dir, `${name}.json`));
      Deno.renameSync(work, join(this.#dir, name));
      pooled = true;
    } finally {
      // Not pooled: removed (in the background of the event loop: it may hold many files).
      if (!pooled) await Deno.remove(work, { recursive: true }).catch(() => {});
      // The trash folder when empty.
      await removeTrashIfEmpty(trash);
    }
    await this.#evict();
  }

  /** Moves the oldest directories past the bound to the trash; drops orphan manifests. */
  async #evict(): Promise<void> {
    const entries = [...Deno.readDirSync(this.#dir)];
    const dirs = entries.filter((entry) => entry.isDirectory && entry.name !== "holders")
      .map((entry) => entry.name)
      .sort((a, b) => entryTime(b) - entryTime(a));
    const present = new Set(dirs);
    // The most recently retired are kept while both bounds hold; the rest go.
    const evicted: string[] = [];
    let kept = 0;
    let keptBytes = 0;
    for (const name of dirs) {
      const bytes = entryBytes(name);
      if (kept < this.#maxDirs && keptBytes + bytes <= this.#maxBytes) {
        kept++;
        keptBytes += bytes;
      } else {
        evicted.push(name);
      }
    }
    for (const name of evicted) {
      const dir = join(this.#dir, name);
      try {
        // The rename into the trash is the claim: an entry another attempt took is skipped.
        await trashAttemptDir(this.#root, dir, (error) => this.#failed(dir, error));
      } catch {
        continue;
      }
      await Deno.remove(join(this.#dir, `${name}.json`)).catch(() => {});
    }
    // Lock files of holders that are gone and left nothing here.
    const holding = new Set(dirs.map((name) => name.slice(0, name.indexOf("."))));
    const own = this.#holder === undefined ? undefined : (await this.#holder).id;
    for (const entry of Deno.readDirSync(join(this.#dir, "holders"))) {
      if (!entry.name.endsWith(".lock")) continue;
      const id = entry.name.slice(0, -".lock".length);
      if (id === own || holding.has(id) || !this.#holderGone(id)) continue;
      await Deno.remove(join(this.#dir, "holders", entry.name)).catch(() => {});
    }
    const now = Date.now();
    for (const entry of entries) {
      if (!entry.isFile || !entry.name.endsWith(".json")) continue;
      const name = entry.name.slice(0, -".json".length);
      if (present.has(name) || now - entryTime(name) < ORPHAN_MANIFEST_MS) continue;
      await Deno.remove(join(this.#dir, entry.name)).catch(() => {});
    }
  }

  /** This instance's holder lock, taken at the first retirement. */
  #holderLock(): Promise<{ id: string; lock: Deno.FsFile }> {
    this.#holder ??= (async () => {
      const dir = join(this.#dir, "holders");
      await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
      const id = crypto.randomUUID().replaceAll("-", "");
      // Locked under another name first, then renamed (the lock stays with the file): a
      // lock file is never seen unlocked while its holder lives.
      const next = join(dir, `${id}.next`);
      const lock = await Deno.open(next, { read: true, write: true, createNew: true, mode: 0o600 });
      if (!(await lock.tryLock(true))) throw new Error(`holder lock ${id} is taken`);
      await Deno.rename(next, join(dir, `${id}.lock`));
      return { id, lock };
    })();
    return this.#holder;
  }

  /** Whether the holder `id`'s process or Worker is gone (its lock can be taken). */
  #holderGone(id: string): boolean {
    if (this.#deadHolders.has(id)) return true;
    if (!/^[0-9a-f]{32}$/.test(id)) return false;
    const path = join(this.#dir, "holders", `${id}.lock`);
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { read: true, write: true });
    } catch (error) {
      // The lock file is made before any entry and removed only once its holder is gone.
      if (error instanceof Deno.errors.NotFound) {
        this.#deadHolders.add(id);
        return true;
      }
      return false;
    }
    try {
      if (!file.tryLockSync(true)) return false;
      this.#deadHolders.add(id);
      return true;
    } finally {
      file.close();
    }
  }
}

/**
 * The longest the claim's walk holds the event loop before letting it run: the attempt's
 * listing is read meanwhile.
 */
const WALK_SLICE_MS = 4;

/**
 * Removes from a claimed directory every entry that is neither a folder nor a regular file its
 * manifest lists (by the entry types `readDir` gives: no `lstat`), and returns what is left.
 * The attempt marker at the top is kept. Each file left must then pass
 * {@linkcode keepPooledFile} to be kept: its identity is checked there, as the listing confirms
 * it. Nothing else writes to the directory: the walk is synchronous, in slices of the event
 * loop ({@linkcode WALK_SLICE_MS}) so that the process's other I/O is not held up for its
 * whole length.
 *
 * Requires `--allow-read` and `--allow-write` on `dir`.
 */
export async function walkClaimedDir(dir: string, claimed: ClaimedDir): Promise<WalkedDir> {
  const walked: WalkedDir = {
    dir,
    stampMs: claimed.stampMs,
    files: new Map(),
    dirs: new Set(),
    removed: 0,
  };
  const slice = slicer(WALK_SLICE_MS);
  const inFolder = claimed.dirs === undefined ? undefined : byFolder(claimed);
  // A folder with its described inode, mtime and ctime, older than the stamp, holds the
  // entries it held then (see `describeFiles`): its files and folders are the manifest's.
  const unchanged = (relative: string, full: string): boolean => {
    const row = claimed.dirs?.get(relative);
    if (row === undefined || row[2] >= claimed.stampMs) return false;
    const info = Deno.lstatSync(full);
    return info.isDirectory && info.ino === row[0] && info.mtime?.getTime() === row[1] &&
      info.ctime?.getTime() === row[2];
  };
  // Paths by concatenation: `join` added 10-25 % to this walk (measured, 21,000 files).
  const visit = async (relative: string) => {
    const full = relative === "" ? dir : `${dir}/${relative}`;
    if (inFolder !== undefined && relative !== "" && unchanged(relative, full)) {
      const { files, dirs } = inFolder.get(relative) ?? { files: [], dirs: [] };
      for (const path of files) walked.files.set(path, claimed.files.get(path)!);
      for (const path of dirs) {
        await slice();
        walked.dirs.add(path);
        await visit(path);
      }
      return;
    }
    for (const entry of Deno.readDirSync(full)) {
      if (relative === "" && entry.name === ATTEMPT_MARKER) continue;
      await slice();
      const path = relative === "" ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory) {
        walked.dirs.add(path);
        await visit(path);
        continue;
      }
      const file = entry.isFile ? claimed.files.get(path) : undefined;
      if (file !== undefined) {
        walked.files.set(path, file);
        continue;
      }
      // A link is removed, never followed.
      Deno.removeSync(`${full}/${entry.name}`);
      walked.removed++;
    }
  };
  await visit("");
  return walked;
}

/** The manifest's files and folders by the folder holding them. */
function byFolder(claimed: ClaimedDir): Map<string, { files: string[]; dirs: string[] }> {
  const folders = new Map<string, { files: string[]; dirs: string[] }>();
  const add = (path: string, kind: "files" | "dirs") => {
    const parent = path.slice(0, Math.max(0, path.lastIndexOf("/")));
    let folder = folders.get(parent);
    if (folder === undefined) folders.set(parent, folder = { files: [], dirs: [] });
    folder[kind].push(path);
  };
  for (const path of claimed.files.keys()) add(path, "files");
  for (const path of claimed.dirs?.keys() ?? []) add(path, "dirs");
  return folders;
}

/**
 * Whether the file at `path` of a walked directory still holds what its manifest row says
 * (see the module doc): a regular file with the row's size, inode, mtime and ctime, and, when
 * that ctime is not older than the manifest's stamp (or the row asks for it), the row's
 * SHA-256 when read again. Returns the row, or `undefined` after removing the file from the
 * directory and from `walked.files` (a file not in `walked.files` is left alone).
 *
 * Requires `--allow-read` and `--allow-write` on the directory.
 */
export function keepPooledFile(walked: WalkedDir, path: string): PooledFile | undefined {
  const file = walked.files.get(path);
  if (file === undefined) return undefined;
  const full = `${walked.dir}/${path}`;
  const info = Deno.lstatSync(full);
  if (
    info.isFile && info.size === file.size && info.ino === file.ino &&
    info.mtime?.getTime() === file.mtimeMs && info.ctime?.getTime() === file.ctimeMs &&
    ((file.ctimeMs < walked.stampMs && !file.readAgain) || sameContent(full, file))
  ) {
    return file;
  }
  walked.files.delete(path);
  // A link is removed, never followed.
  Deno.removeSync(full);
  walked.removed++;
  return undefined;
}

/** Largest racy file the walk reads again; a larger one is removed (and fetched again). */
const RACY_READ_MAX_BYTES = 4 * 1024 * 1024;

/**
 * Whether a file whose ctime is in the manifest stamp's second (or later: a change in that
 * second could have kept its whole-second ctime) still holds what the manifest says: read
 * and hashed again. The holder is gone, so nothing changes it after this read.
 */
function sameContent(path: string, file: PooledFile): boolean {
  if (file.size > RACY_READ_MAX_BYTES) return false;
  const data = Deno.readFileSync(path);
  return data.length === file.size &&
    createHash("sha256").update(data).digest("hex") === file.sha256;
}

/**
 * Adds a manifest row for each regular file below `relative` that can be described, and a
 * folder row (inode, mtime, ctime, from the `lstat` made before its entries were read) for
 * each folder below it all of whose entries were described: a folder the claimer finds with
 * the same row, older than the stamp, holds the same entries (the kernel sets a folder's
 * mtime and ctime when an entry is added, removed or renamed in it). Returns whether every
 * entry of `relative` was described.
 */
async function describeFiles(
  root: string,
  relative: string,
  info: RetireInfo,
  out: Record<string, ManifestRow>,
  dirsOut: Record<string, DirRow>,
  readAtClaim: boolean,
  slice: () => Promise<void>,
): Promise<boolean> {
  const full = relative === "" ? root : join(root, relative);
  let complete = true;
  for (const entry of Deno.readDirSync(full)) {
    await slice();
    // The marker (still there when the attempt describes its directory) is never pooled.
    if (relative === "" && entry.name === ATTEMPT_MARKER) continue;
    const path = relative === "" ? entry.name : `${relative}/${entry.name}`;
    const stat = Deno.lstatSync(join(root, path));
    if (stat.isDirectory) {
      const described = await describeFiles(
        root,
        path,
        info,
        out,
        dirsOut,
        readAtClaim,
        slice,
      );
      if (described && stat.ctime !== null && stat.mtime !== null) {
        dirsOut[path] = [stat.ino ?? 0, stat.mtime.getTime(), stat.ctime.getTime()];
      } else {
        // A folder not read by the claimer must not hide one it has to read.
        complete = false;
      }
      continue;
    }
    if (!stat.isFile || stat.ctime === null || stat.mtime === null) {
      complete = false;
      continue;
    }
    const ctimeMs = stat.ctime.getTime();
    const mtimeMs = stat.mtime.getTime();
    const known = info.known.get(path);
    let row: ManifestRow;
    const rowOf = (file: KnownFile) => manifestRow(file, stat.ino ?? 0, mtimeMs, ctimeMs);
    if (known !== undefined && ctimeMs < info.stampMs && known.size === stat.size) {
      // Unchanged since the download.
      row = rowOf(known);
    } else if (
      readAtClaim && known !== undefined && known.size === stat.size &&
      stat.size <= RACY_READ_MAX_BYTES
    ) {
      // Downloaded in the second of the stamp taken before the task (or rewritten by it with
      // the same size): the download's digests, for the claimer to check by reading the file
      // (as it reads the files of the stamp's second) instead of a read here, which a perago
      // run waits for before exiting (1,000 x 4 KiB files: most of them, for a short download).
      row = [...rowOf(known), 1];
    } else {
      // Written by the task (or in the download's last second): read once, here, off the
      // attempt's path. A change while reading moves its ctime past the stamp.
      const hashed = await hashSha256AndMd5(join(root, path), stat.size);
      if (hashed.size !== stat.size) {
        complete = false;
        continue;
      }
      row = rowOf({ checksum: hashed.md5, size: hashed.size, sha256: hashed.sha256 });
    }
    out[path] = row;
  }
  return complete;
}

/** The longest a description's walk holds the event loop before letting it run. */
const DESCRIBE_SLICE_MS = 2;

/** A manifest row: what the file matches, then its stat identity. */
function manifestRow(
  file: KnownFile,
  ino: number,
  mtimeMs: number,
  ctimeMs: number,
): [string, number, string, number, number, number] {
  return [file.checksum, file.size, file.sha256, ino, mtimeMs, ctimeMs];
}

const CHUNK_BYTES = 1024 * 1024;

/**
 * SHA-256 and MD5 of a file (MD5: the checksum lakeFS gives an object uploaded whole) whose
 * `lstat` gave `sizeHint` bytes.
 */
async function hashSha256AndMd5(
  path: string,
  sizeHint: number,
): Promise<{ sha256: string; md5: string; size: number }> {
  const sha256 = createHash("sha256");
  const md5 = createHash("md5");
  const file = await Deno.open(path, { read: true });
  let size = 0;
  try {
    // Sized to the file (one byte more, so the read that finds its end is the second) up to
    // 1 MiB: a 1 MiB buffer for every file made the retirement of 1,000 x 4 KiB files, which
    // a perago run waits for before exiting, take 210-350 ms instead of 50-60 ms.
    const buffer = new Uint8Array(Math.min(CHUNK_BYTES, sizeHint + 1));
    while (true) {
      const n = await file.read(buffer);
      if (n === null) break;
      sha256.update(buffer.subarray(0, n));
      md5.update(buffer.subarray(0, n));
      size += n;
    }
  } finally {
    file.close();
  }
  return { sha256: sha256.digest("hex"), md5: md5.digest("hex"), size };
}

function readManifest(path: string): Manifest | undefined {
  try {
    const parsed = JSON.parse(Deno.readTextFileSync(path)) as Partial<Manifest>;
    if (
      parsed.version !== 1 || typeof parsed.repository !== "string" ||
      typeof parsed.scope !== "string" || typeof parsed.stamp_ms !== "number" ||
      typeof parsed.files !== "object" || parsed.files === null
    ) {
      return undefined;
    }
    return parsed as Manifest;
  } catch {
    return undefined;
  }
}

function pooledFile(row: unknown): PooledFile | undefined {
  if (!Array.isArray(row) || (row.length !== 6 && !(row.length === 7 && row[6] === 1))) {
    return undefined;
  }
  const [checksum, size, sha256, ino, mtimeMs, ctimeMs] = row;
  if (
    typeof checksum !== "string" || typeof sha256 !== "string" || typeof size !== "number" ||
    typeof ino !== "number" || typeof mtimeMs !== "number" || typeof ctimeMs !== "number"
  ) {
    return undefined;
  }
  return { checksum, size, sha256, ino, mtimeMs, ctimeMs, readAgain: row.length === 7 };
}

/** The folder rows of a manifest, or `undefined` when there are none or one is malformed. */
function dirRows(rows: unknown): Map<string, DirRow> | undefined {
  if (typeof rows !== "object" || rows === null) return undefined;
  const dirs = new Map<string, DirRow>();
  for (const [path, row] of Object.entries(rows)) {
    if (!Array.isArray(row) || row.length !== 3) return undefined;
    const [ino, mtimeMs, ctimeMs] = row as unknown[];
    if (typeof ino !== "number" || typeof mtimeMs !== "number" || typeof ctimeMs !== "number") {
      return undefined;
    }
    dirs.set(path, [ino, mtimeMs, ctimeMs]);
  }
  return dirs;
}

/** A short key of a repository name, for entry names (filtering before reading manifests). */
function repoKey(repository: string): string {
  return createHash("sha256").update(repository).digest("hex").slice(0, 16);
}

/** The bytes of files an entry's manifest lists (from its name); 0 when the name has none. */
function entryBytes(name: string): number {
  const bytes = parseInt(name.split(".")[3] ?? "", 36);
  return Number.isFinite(bytes) ? bytes : 0;
}

/** When an entry was retired (from its name), ms; 0 when the name is not one. */
function entryTime(name: string): number {
  const time = name.split(".")[1]?.split("-")[0];
  const parsed = time === undefined ? NaN : parseInt(time, 36);
  return Number.isFinite(parsed) ? parsed : 0;
}
