/**
 * Glob matching for guardrails. The only module that imports picomatch.
 *
 * @module
 */
// @ts-types="npm:@types/picomatch@4.0.3"
import picomatch from "picomatch";

/**
 * Compiles a glob pattern into a matcher of relative POSIX paths (as the guardrail walker
 * produces them: `docs/a.txt`, no leading `./`). Dotfiles and dot-directories match like any
 * other name (`**\/*.json` matches `.config/x.json`); `*` never crosses a `/`, `**` does.
 * Backslashes are never path separators.
 *
 * @example
 * ```ts
 * const isCsv = compileGlob("out/*.csv");
 * isCsv("out/a.csv"); // true
 * isCsv("out/sub/a.csv"); // false
 * ```
 */
export function compileGlob(pattern: string): (relativePosixPath: string) => boolean {
  const matcher = picomatch(pattern, { dot: true, windows: false });
  return (path: string) => matcher(path);
}
