/**
 * Maps object keys to paths inside an attempt directory (which mirrors the repository root:
 * key `docs/a.txt` is `<dir>/docs/a.txt`), and refuses every key that could escape it or that
 * no filesystem can hold. lakeFS validates object paths only for length (1,024 bytes): `..`,
 * a leading `/`, backslashes, `//`, control characters and a key that is a file and a folder
 * at once are all valid there, so the keys a listing returns are untrusted input.
 *
 * @module
 */
import { resolve, sep } from "node:path";
import { ATTEMPT_MARKER } from "./attempt_dir.ts";
import { UnsafePathError, WorkspaceSymlinkError } from "./errors.ts";

/** The longest file name (one path segment) Linux filesystems hold, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 255;

const utf8 = new TextEncoder();

/**
 * Checks that `key` is a safe relative POSIX key and returns its segments. Refused: empty
 * keys, absolute keys, backslashes, NUL and other control characters, empty segments (`a//b`,
 * a trailing `/`), `.` and `..` segments, segments over {@linkcode MAX_NAME_BYTES} bytes, and
 * the attempt marker's name at the top level.
 *
 * @throws {UnsafePathError} naming the key (JSON-quoted, so control characters show).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UnsafePathError } from "./errors.ts";
 *
 * checkRelativeKey("docs/a.txt"); // ["docs", "a.txt"]
 * assert.throws(() => checkRelativeKey("../x"), UnsafePathError);
 * ```
 */
export function checkRelativeKey(key: string): string[] {
  const refuse = (why: string): never => {
    throw new UnsafePathError(
      `unsafe object key ${JSON.stringify(key)}: ${why}; rename or remove the object`,
    );
  };
  if (key === "") refuse("empty key");
  if (key.startsWith("/")) refuse("absolute key");
  if (key.includes("\\")) refuse("backslash in key");
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(key)) refuse("control character in key");
  const segments = key.split("/");
  for (const segment of segments) {
    if (segment === "") refuse("empty path segment");
    if (segment === "." || segment === "..") refuse(`"${segment}" path segment`);
    // A UTF-16 code unit is at most 3 UTF-8 bytes: only a longer segment can be over the
    // limit, so the encoding (an allocation per segment of every downloaded key) is skipped.
    if (segment.length > MAX_NAME_BYTES / 3 && utf8.encode(segment).length > MAX_NAME_BYTES) {
      refuse(`a path segment longer than the filesystem's ${MAX_NAME_BYTES}-byte name limit`);
    }
  }
  if (segments.length === 1 && segments[0] === ATTEMPT_MARKER) {
    refuse("the name of the attempt marker is reserved");
  }
  return segments;
}

/**
 * Resolves the object key `key` to an absolute path inside `attemptDir` for
 * writing. Besides {@linkcode checkRelativeKey}, every existing parent below `attemptDir` is
 * checked with `lstat`: a symlink there, or an existing symlink at the target, is refused so
 * a write never goes through a link; a parent that is not a directory is refused too.
 *
 * Requires `--allow-read` on the attempt directory.
 *
 * @throws {UnsafePathError} for unsafe keys or a path outside the directory.
 * @throws {WorkspaceSymlinkError} for a symlink on the way.
 * @example
 * ```ts
 * const dir = await Deno.makeTempDir();
 * const path = await resolveInsideDir(dir, "docs/a.txt"); // `${dir}/docs/a.txt`
 * ```
 */
export function resolveInsideDir(
  attemptDir: string,
  key: string,
  checkedDirs?: Set<string>,
  options?: ResolveOptions,
): Promise<string> {
  try {
    return Promise.resolve(resolveInsideDirSync(attemptDir, key, checkedDirs, options));
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * {@linkcode resolveInsideDir} with synchronous `lstat`s (it throws instead of rejecting):
 * called once per downloaded object, where an async op per path segment (a thread hand-off
 * each) costs more than the `lstat` itself on a busy host.
 *
 * `checkedDirs`, when given, remembers the folders found to be real directories, which are
 * then not looked at again: only for a directory nothing else writes to meanwhile (an attempt
 * directory while perago downloads into it, before the task runs).
 */
export function resolveInsideDirSync(
  attemptDir: string,
  key: string,
  checkedDirs?: Set<string>,
  options?: ResolveOptions,
): string {
  const segments = checkRelativeKey(key);
  const root = resolvedRoot(attemptDir);
  // The key's segments are plain names (no "", ".", ".." nor separators), so joining them
  // to the normalized root is the concatenation: node:path's join and resolve normalize the
  // whole string again for each parent, about 25 us a key (a third of a 4 KiB object's CPU
  // in a profile of 1,000 downloads).
  const base = root.endsWith(sep) ? root : root + sep;
  const target = base + key;
  if (!target.startsWith(base) || target.length <= base.length) {
    throw new UnsafePathError(
      `unsafe object key ${JSON.stringify(key)}: resolves outside the attempt directory; ` +
        "rename or remove the object",
    );
  }
  let current = base;
  for (let i = 0; i < segments.length; i++) {
    current = i === 0 ? base + segments[0] : current + sep + segments[i];
    const isLast = i === segments.length - 1;
    if (isLast && options?.createsNew === true) break;
    if (!isLast && checkedDirs?.has(current)) continue;
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(current);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) break;
      throw error;
    }
    if (info.isSymlink) {
      throw new WorkspaceSymlinkError(
        `refusing to write ${JSON.stringify(key)}: ${current} is a symlink; ` +
          "perago never writes through links",
      );
    }
    if (!isLast && !info.isDirectory) {
      throw new UnsafePathError(
        `cannot write ${JSON.stringify(key)}: ${current} exists and is not a directory; ` +
          "the workspace holds both a file and a folder of that name",
      );
    }
    if (!isLast) checkedDirs?.add(current);
  }
  return target;
}

/** The last attempt directory resolved, and its absolute, normalized path. */
let lastRoot: { readonly dir: string; readonly root: string } | undefined;

/**
 * `resolve(attemptDir)`, kept for the absolute directory of the last call (every key of a
 * download); a relative one depends on the working directory, so it is resolved each time.
 */
function resolvedRoot(attemptDir: string): string {
  if (!attemptDir.startsWith(sep)) return resolve(attemptDir);
  if (lastRoot?.dir !== attemptDir) lastRoot = { dir: attemptDir, root: resolve(attemptDir) };
  return lastRoot.root;
}

/** Options of {@linkcode resolveInsideDir}. */
export interface ResolveOptions {
  /**
   * The caller creates the file exclusively (`createNew`: `O_CREAT|O_EXCL`, which fails on
   * any existing name, a symlink included, without following it), so the target itself is
   * not looked at: on a missing path that `lstat` is the most expensive step (a thrown
   * `NotFound`, ~60 us), paid for every downloaded object.
   */
  readonly createsNew?: boolean;
}

/**
 * Refuses a set of object keys in which one key is a folder of another (`docs/a` and
 * `docs/a/b.txt`): lakeFS allows both, a filesystem cannot hold them. Keys are claimed one at
 * a time; the second key of a clashing pair is refused, whichever comes first.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UnsafePathError } from "./errors.ts";
 *
 * const keys = new KeyTreeGuard();
 * keys.claim("docs/a");
 * assert.throws(() => keys.claim("docs/a/b.txt"), UnsafePathError); // a file and a folder at once
 * ```
 */
export class KeyTreeGuard {
  #files = new Set<string>();
  #folders = new Set<string>();
  /** The folder of the key claimed last: every folder up to it is in `#folders` already. */
  #lastFolder = "";

  /**
   * Records `key` (a key already checked with {@linkcode checkRelativeKey}).
   *
   * @throws {UnsafePathError} when `key` is a folder of a claimed key, or a claimed key's
   *   folder is `key`.
   */
  claim(key: string): void {
    const clash = (other: string): never => {
      throw new UnsafePathError(
        `unsafe object key ${JSON.stringify(key)}: ${JSON.stringify(other)} is also an ` +
          "object, so one name would have to be a file and a folder at once; rename or " +
          "remove one of them",
      );
    };
    if (this.#folders.has(key)) {
      clash([...this.#files].find((file) => file.startsWith(`${key}/`)) ?? `${key}/...`);
    }
    const last = key.lastIndexOf("/");
    // Keys come in listing order: most share their folder with the previous one, whose folders
    // were each checked against the files then (a file claimed since with a folder's name
    // clashed on `#folders` above).
    if (
      last <= 0 || last !== this.#lastFolder.length || !key.startsWith(this.#lastFolder)
    ) {
      let slash = key.indexOf("/");
      while (slash !== -1) {
        const folder = key.slice(0, slash);
        if (this.#files.has(folder)) clash(folder);
        this.#folders.add(folder);
        slash = key.indexOf("/", slash + 1);
      }
      if (last !== -1) this.#lastFolder = key.slice(0, last);
    }
    this.#files.add(key);
  }
}
