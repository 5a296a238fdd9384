/**
 * The path and file URL functions of the modules an idle executor loads (logging, the task
 * loader, attempt directories), without `node:path` and `node:url`.
 *
 * The first Node module a Deno process imports sets up part of Node compatibility: an idle
 * executor held 0.6 MiB more RSS with `node:path`, `node:url` and `node:buffer` on its path
 * than with these (measured with the start-up benchmark's executor). Semantics are
 * `node:path`'s for the platform (POSIX, or Windows with drive letters and UNC roots); other
 * modules keep using `node:path`. Switching these to `@std/path` is this file's imports.
 *
 * @module
 */

const WINDOWS = Deno.build.os === "windows";

/** The platform's path separator. */
export const SEP = WINDOWS ? "\\" : "/";

function isSeparator(char: string | undefined): boolean {
  return char === "/" || (WINDOWS && char === "\\");
}

/** The root of `path` (`/`, `C:\`, `C:`, `\\server\share\`), or `""`. */
function rootOf(path: string): string {
  if (!WINDOWS) return path.startsWith("/") ? "/" : "";
  const unc = /^[\\/]{2}[^\\/]+[\\/]+[^\\/]+[\\/]?/.exec(path);
  if (unc) return unc[0].replace(/\//g, "\\").replace(/\\+$/, "") + "\\";
  const drive = /^[A-Za-z]:/.exec(path);
  if (drive) return isSeparator(path[2]) ? `${drive[0]}\\` : drive[0];
  return isSeparator(path[0]) ? "\\" : "";
}

/** Whether `path` is absolute (POSIX: starts with `/`; Windows: with a separator or `X:\`). */
export function isAbsolute(path: string): boolean {
  if (!WINDOWS) return path.startsWith("/");
  return isSeparator(path[0]) || /^[A-Za-z]:[\\/]/.test(path);
}

/**
 * `path` with `.` and `..` segments resolved and separators collapsed (as `node:path`'s
 * `normalize`; a trailing separator is kept).
 *
 * @example
 * ```ts
 * import { normalize } from "./path.ts";
 * if (Deno.build.os !== "windows") normalize("/a//b/../c/."); // "/a/c/"
 * ```
 */
export function normalize(path: string): string {
  if (path === "") return ".";
  const root = rootOf(path);
  const rest = path.slice(root.length === 0 ? 0 : rootLength(path, root));
  const trailing = rest.length > 0 && isSeparator(rest[rest.length - 1]);
  const segments: string[] = [];
  for (const segment of rest.split(WINDOWS ? /[\\/]+/ : /\/+/)) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      if (segments.length > 0 && segments[segments.length - 1] !== "..") segments.pop();
      else if (root === "" || /^[A-Za-z]:$/.test(root)) segments.push("..");
      continue;
    }
    segments.push(segment);
  }
  const body = segments.join(SEP);
  if (body === "") return root === "" ? (trailing ? `.${SEP}` : ".") : root;
  return root + body + (trailing ? SEP : "");
}

/** How many characters of `path` its root `root` spans (separators may be either kind). */
function rootLength(path: string, root: string): number {
  let length = 0;
  let matched = 0;
  while (matched < root.length && length < path.length) {
    const a = path[length]!;
    const b = root[matched]!;
    if (a === b || (isSeparator(a) && isSeparator(b))) {
      length++;
      matched++;
      // A UNC root may have repeated separators between its parts.
      while (isSeparator(b) && isSeparator(path[length]) && !isSeparator(root[matched])) length++;
    } else break;
  }
  return length;
}

/**
 * The paths joined with the separator, then normalised (`node:path`'s `join`).
 *
 * @example
 * ```ts
 * import { join } from "./path.ts";
 * if (Deno.build.os !== "windows") join("/logs", "build", "x.jsonl"); // "/logs/build/x.jsonl"
 * ```
 */
export function join(...paths: string[]): string {
  const joined = paths.filter((path) => path !== "").join(SEP);
  return joined === "" ? "." : normalize(joined);
}

/**
 * The absolute path of `paths` resolved right to left against the working directory, without
 * a trailing separator (`node:path`'s `resolve`).
 */
export function resolve(...paths: string[]): string {
  let resolved = "";
  for (let i = paths.length - 1; i >= 0 && !isAbsolute(resolved); i--) {
    const path = paths[i]!;
    if (path === "") continue;
    resolved = resolved === "" ? path : `${path}${SEP}${resolved}`;
  }
  if (!isAbsolute(resolved)) {
    resolved = resolved === "" ? Deno.cwd() : `${Deno.cwd()}${SEP}${resolved}`;
  }
  const normal = normalize(resolved);
  return normal.length > rootOf(normal).length && isSeparator(normal[normal.length - 1])
    ? normal.slice(0, -1)
    : normal;
}

/** The last segment of `path`, trailing separators ignored (`node:path`'s `basename`). */
export function basename(path: string): string {
  let end = path.length;
  while (end > 0 && isSeparator(path[end - 1])) end--;
  let start = end;
  while (start > 0 && !isSeparator(path[start - 1])) start--;
  const name = path.slice(start, end);
  return WINDOWS && start === 0 ? name.replace(/^[A-Za-z]:/, "") : name;
}

/**
 * The path of a `file:` URL (`node:url`'s `fileURLToPath`).
 *
 * @example
 * ```ts
 * import { fromFileUrl } from "./path.ts";
 * if (Deno.build.os !== "windows") fromFileUrl("file:///tmp/a%20b.ts"); // "/tmp/a b.ts"
 * ```
 */
export function fromFileUrl(url: string | URL): string {
  const parsed = url instanceof URL ? url : new URL(url);
  if (parsed.protocol !== "file:") throw new TypeError(`not a file: URL: ${parsed.href}`);
  const pathname = parsed.pathname.replace(/%(?![0-9A-Fa-f]{2})/g, "%25");
  if (!WINDOWS) return decodeURIComponent(pathname);
  let path = decodeURIComponent(pathname.replace(/\//g, "\\")).replace(
    /^\\*([A-Za-z]:)(\\|$)/,
    "$1\\",
  );
  if (parsed.hostname !== "") path = `\\\\${parsed.hostname}${path}`;
  return path;
}

/**
 * The `file:` URL of an absolute path (`node:url`'s `pathToFileURL`); a relative path is
 * resolved against the working directory first.
 */
export function toFileUrl(path: string): URL {
  let absolute = resolve(path);
  // A trailing separator is kept (a directory's URL), as pathToFileURL keeps it.
  if (isSeparator(path[path.length - 1]) && !isSeparator(absolute[absolute.length - 1])) {
    absolute += SEP;
  }
  const url = new URL("file:///");
  const encode = (text: string) =>
    text.replace(/%/g, "%25").replace(/[\t\n\v\f\r]/g, (c) => encodeURIComponent(c));
  if (!WINDOWS) {
    url.pathname = encode(absolute).replace(/\\/g, "%5C");
    return url;
  }
  const [, hostname, pathname] = /^(?:[\\/]{2}([^\\/]+)(?=[\\/](?:[^\\/]|$)))?(.*)/s.exec(
    absolute,
  )!;
  url.pathname = encode(pathname!.replace(/\\/g, "/"));
  if (hostname !== undefined && hostname !== "localhost") url.hostname = hostname;
  return url;
}
