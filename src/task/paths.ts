/**
 * Validation of the relative POSIX paths a task definition names (workspace prefix and
 * guardrail paths). These are checked when the task is defined, so a bad path is a
 * definition error, never a surprise at run time.
 *
 * @module
 */

/**
 * Validates and normalises a relative POSIX path: non-empty, no NUL, no backslash, not
 * absolute, no `..` segment. `./` segments, duplicate slashes and a trailing slash are removed.
 *
 * @param path the path to check.
 * @param what names the value in the error message, e.g. `workspace.prefix`.
 * @returns the normalised path (never empty, never starting or ending with `/`).
 * @throws {TypeError} when `path` is not a string.
 * @throws {RangeError} describing what is wrong.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * validateRelativePath("./docs//a.txt", "requireFile path"); // "docs/a.txt"
 * assert.throws(() => validateRelativePath("../etc", "requireFile path"), RangeError);
 * ```
 */
export function validateRelativePath(path: string, what: string): string {
  if (typeof path !== "string") {
    throw new TypeError(`${what}: expected a string, got ${describeType(path)}`);
  }
  const segments = checkedSegments(path, what);
  if (segments.length === 0) {
    throw new RangeError(
      `${what}: ${
        JSON.stringify(path)
      } names no path; give a relative POSIX path such as "docs/a.txt"`,
    );
  }
  return segments.join("/");
}

/**
 * Normalises a workspace prefix: `/`, `""` and `.` mean the repository root and become `""`;
 * anything else is validated like {@linkcode validateRelativePath} (a single leading `/` is
 * accepted as "from the root") and becomes `dir/sub/` with exactly one trailing slash.
 *
 * @throws {TypeError} when `prefix` is not a string.
 * @throws {RangeError} for `..`, backslashes, NUL or a doubled leading slash.
 * @example
 * ```ts
 * normalizePrefix("/"); // ""
 * normalizePrefix("docs"); // "docs/"
 * normalizePrefix("/data//raw/"); // "data/raw/"
 * ```
 */
export function normalizePrefix(prefix: string = "/"): string {
  const what = "workspace.prefix";
  if (typeof prefix !== "string") {
    throw new TypeError(`${what}: expected a string, got ${describeType(prefix)}`);
  }
  // The prefix is written as in the docs ("/" = root, "/docs"), so one leading slash means
  // "from the repository root". Anything that looks like a host path ("//x") is refused.
  let body = prefix;
  if (body.startsWith("/")) {
    if (body.startsWith("//") && body.length > 2) {
      throw new RangeError(
        `${what}: ${JSON.stringify(prefix)} is not a repository path; use "/" or "dir/sub/"`,
      );
    }
    body = body.slice(1);
  }
  const segments = checkedSegments(body, what);
  return segments.length === 0 ? "" : `${segments.join("/")}/`;
}

/** Splits into segments after the safety checks, dropping empty and `.` segments. */
function checkedSegments(path: string, what: string): string[] {
  const shown = JSON.stringify(path);
  if (path.includes("\0")) {
    throw new RangeError(`${what}: ${shown} contains a NUL byte; remove it`);
  }
  if (path.includes("\\")) {
    throw new RangeError(`${what}: ${shown} contains a backslash; use "/" as the separator`);
  }
  if (path.startsWith("/")) {
    throw new RangeError(
      `${what}: ${shown} is absolute; give a path relative to the workspace root`,
    );
  }
  const segments = path.split("/").filter((segment) => segment !== "" && segment !== ".");
  if (segments.includes("..")) {
    throw new RangeError(`${what}: ${shown} contains a ".." segment; stay inside the workspace`);
  }
  return segments;
}

function describeType(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
}
