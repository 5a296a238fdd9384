/**
 * Evaluates workspace guardrails against an attempt directory.
 *
 * @module
 */
import { join } from "node:path";
import { PostGuardrailViolation, PreGuardrailViolation } from "./errors.ts";
import { describeGuardrail } from "./guardrails.ts";
import type { Guardrail } from "./types.ts";
import { importLazily } from "../util/lazy_import.ts";

/** The attempt marker at the root of every attempt directory; never checked, never uploaded. */
export const ATTEMPT_MARKER = ".perago-attempt.json";

/** How many matching paths a message lists before `...`. */
const SHOWN = 5;

type EntryKind = "file" | "dir" | "symlink" | "other";

/**
 * Checks `guardrails` against `attemptDir` (the repository root of the attempt). The tree is
 * walked once with lstat semantics: symlinks are never followed and never count as a file,
 * a directory or a glob match; globs count regular files only. The attempt marker
 * `.perago-attempt.json` at the root is ignored. Every guardrail is evaluated and all
 * failures are reported together.
 *
 * Requires `--allow-read` on `attemptDir`.
 *
 * @throws {PreGuardrailViolation} (phase `pre`, terminal) or {PostGuardrailViolation}
 * (phase `post`) with a message such as
 * `post guardrail requireGlob("out/*.csv", min 1) failed: 0 matches`.
 * @example
 * ```ts
 * import { requireFile } from "./guardrails.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(`${dir}/docs`);
 * await Deno.writeTextFile(`${dir}/docs/index.md`, "# Docs\n");
 * await checkGuardrails(dir, [requireFile("docs/index.md")], "post"); // passes
 * ```
 */
export async function checkGuardrails(
  attemptDir: string,
  guardrails: readonly Guardrail[],
  phase: "pre" | "post",
  options: { signal?: AbortSignal } = {},
): Promise<void> {
  if (guardrails.length === 0) return;
  // The glob matcher (picomatch) is loaded only for a task that has glob guardrails.
  const compileGlob = guardrails.some((g) => g.kind === "requireGlob" || g.kind === "forbidGlob")
    ? (await importLazily<typeof import("./glob.ts")>("task/glob.ts")).compileGlob
    : undefined;
  const entries = await walk(attemptDir, options.signal);
  const failures: string[] = [];
  for (const guardrail of guardrails) {
    const problem = evaluate(guardrail, entries, compileGlob);
    if (problem !== undefined) {
      failures.push(`${phase} guardrail ${describeGuardrail(guardrail)} failed: ${problem}`);
    }
  }
  if (failures.length === 0) return;
  const message = failures.join("; ");
  throw phase === "pre"
    ? new PreGuardrailViolation(message, { failures })
    : new PostGuardrailViolation(message, { failures });
}

/** Compiles a glob (`compileGlob` of glob.ts). */
type GlobCompiler = (pattern: string) => (relativePosixPath: string) => boolean;

function evaluate(
  guardrail: Guardrail,
  entries: ReadonlyMap<string, EntryKind>,
  compileGlob: GlobCompiler | undefined,
): string | undefined {
  switch (guardrail.kind) {
    case "requireFile":
    case "requireDir": {
      const wanted: EntryKind = guardrail.kind === "requireFile" ? "file" : "dir";
      const found = entries.get(guardrail.path);
      if (found === wanted) return undefined;
      if (found === undefined) {
        const blocker = symlinkAncestor(guardrail.path, entries);
        return blocker === undefined
          ? "not found"
          : `not found (${JSON.stringify(blocker)} is a symlink, which is never followed)`;
      }
      return `found a ${describeKind(found)} instead`;
    }
    case "requireGlob": {
      const matches = matching(compileGlob!, guardrail.pattern, entries);
      const tooFew = matches.length < guardrail.min;
      const tooMany = guardrail.max !== undefined && matches.length > guardrail.max;
      if (!tooFew && !tooMany) return undefined;
      return `${countMatches(matches.length)}${listPaths(matches)}`;
    }
    case "forbidGlob": {
      const matches = matching(compileGlob!, guardrail.pattern, entries);
      if (matches.length === 0) return undefined;
      return `${countMatches(matches.length)}${listPaths(matches)}`;
    }
  }
}

function matching(
  compileGlob: GlobCompiler,
  pattern: string,
  entries: ReadonlyMap<string, EntryKind>,
): string[] {
  const isMatch = compileGlob(pattern);
  const result: string[] = [];
  for (const [path, kind] of entries) {
    if (kind === "file" && isMatch(path)) result.push(path);
  }
  return result;
}

function countMatches(count: number): string {
  return `${count} ${count === 1 ? "match" : "matches"}`;
}

function listPaths(paths: readonly string[]): string {
  if (paths.length === 0) return "";
  const shown = paths.slice(0, SHOWN).join(", ");
  return ` (${shown}${paths.length > SHOWN ? `, ... ${paths.length - SHOWN} more` : ""})`;
}

function describeKind(kind: EntryKind): string {
  switch (kind) {
    case "file":
      return "regular file";
    case "dir":
      return "directory";
    case "symlink":
      return "symlink";
    case "other":
      return "special file";
  }
}

function symlinkAncestor(
  path: string,
  entries: ReadonlyMap<string, EntryKind>,
): string | undefined {
  const segments = path.split("/");
  for (let i = 1; i < segments.length; i++) {
    const ancestor = segments.slice(0, i).join("/");
    if (entries.get(ancestor) === "symlink") return ancestor;
  }
  return undefined;
}

/** Lists every entry under `root` by relative POSIX path, sorted; never follows symlinks. */
async function walk(
  root: string,
  signal: AbortSignal | undefined,
): Promise<Map<string, EntryKind>> {
  const entries = new Map<string, EntryKind>();
  const pending: string[] = [""];
  while (pending.length > 0) {
    signal?.throwIfAborted();
    const relative = pending.pop()!;
    const children: Deno.DirEntry[] = [];
    // Deno.readDir reports each entry without following it (lstat semantics).
    for await (const child of Deno.readDir(relative === "" ? root : join(root, relative))) {
      children.push(child);
    }
    for (const child of children) {
      const path = relative === "" ? child.name : `${relative}/${child.name}`;
      if (path === ATTEMPT_MARKER) continue;
      const kind: EntryKind = child.isSymlink
        ? "symlink"
        : child.isDirectory
        ? "dir"
        : child.isFile
        ? "file"
        : "other";
      entries.set(path, kind);
      if (kind === "dir") pending.push(path);
    }
  }
  return new Map([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
