/**
 * The guardrail builders task authors use in `workspace.pre` and `workspace.post`. Each one
 * validates its arguments when called (so a bad path fails when the task module is
 * imported) and returns a frozen {@linkcode Guardrail}.
 *
 * Paths and patterns are relative POSIX paths from the root of the attempt directory, which
 * mirrors the repository root: with `prefix: "docs/"` a file is checked as `docs/a.md`, not
 * `a.md`. Symlinks are never followed and never count as a file, a directory or a glob match.
 *
 * @module
 */
import { z } from "../vendor/zod.ts";
import { definitionError, TaskDefinitionError } from "./errors.ts";
import { validateRelativePath } from "./paths.ts";
import type { Guardrail } from "./types.ts";

/**
 * Requires a regular file at `path`.
 *
 * @throws {TaskDefinitionError} for an absolute path, a `..` segment, a backslash or NUL.
 * @example
 * ```ts
 * import { z } from "../vendor/zod.ts";
 * import { defineTask } from "./define.ts";
 *
 * defineTask({
 *   name: "index_docs", ownerEmail: "docs@example.com", description: "writes docs/manifest.json",
 *   params: z.object({}), result: z.object({}), run: () => ({}),
 *   workspace: { prefix: "docs/", post: [requireFile("docs/manifest.json")] },
 * });
 * ```
 */
export function requireFile(path: string): Guardrail {
  return Object.freeze({ kind: "requireFile", path: checkedPath(path, "requireFile") });
}

/**
 * Requires a directory (not a symlink to one) at `path`.
 *
 * @throws {TaskDefinitionError} for an absolute path, a `..` segment, a backslash or NUL.
 * @example
 * ```ts
 * const pre = [requireDir("docs")];
 * ```
 */
export function requireDir(path: string): Guardrail {
  return Object.freeze({ kind: "requireDir", path: checkedPath(path, "requireDir") });
}

/** Bounds of {@linkcode requireGlob}. */
export interface RequireGlobOptions {
  /** Fewest regular files that must match. @default 1 */
  min?: number;
  /** Most regular files that may match. @default unbounded */
  max?: number;
}

/**
 * Requires between `min` and `max` regular files matching `pattern` (dotfiles included).
 *
 * @throws {TaskDefinitionError} for a bad pattern or bounds that are not non-negative
 * integers with `min <= max`.
 * @example
 * ```ts
 * const post = [requireGlob("out/*.csv", { min: 1, max: 10 })];
 * ```
 */
export function requireGlob(pattern: string, options: RequireGlobOptions = {}): Guardrail {
  const where = "requireGlob";
  const checked = checkedPattern(pattern, where);
  if (options === null || typeof options !== "object") {
    throw definitionError(undefined, `${where}(options)`, "expected an object { min?, max? }");
  }
  for (const key of Object.keys(options)) {
    if (key !== "min" && key !== "max") {
      throw definitionError(
        undefined,
        `${where}(options)`,
        `unknown option ${JSON.stringify(key)}; use min and max`,
      );
    }
  }
  const min = options.min ?? 1;
  const max = options.max;
  if (!isCount(min)) {
    throw definitionError(
      undefined,
      `${where}(options.min)`,
      `must be a non-negative integer, got ${String(min)}`,
    );
  }
  if (max !== undefined && !isCount(max)) {
    throw definitionError(
      undefined,
      `${where}(options.max)`,
      `must be a non-negative integer, got ${String(max)}`,
    );
  }
  if (max !== undefined && min > max) {
    throw definitionError(undefined, `${where}(options)`, `min ${min} is greater than max ${max}`);
  }
  return Object.freeze({ kind: "requireGlob", pattern: checked, min, max });
}

/**
 * Forbids any regular file matching `pattern` (dotfiles included).
 *
 * @throws {TaskDefinitionError} for a bad pattern.
 * @example
 * ```ts
 * const post = [forbidGlob("**\/*.tmp")];
 * ```
 */
export function forbidGlob(pattern: string): Guardrail {
  return Object.freeze({
    kind: "forbidGlob",
    pattern: checkedPattern(pattern, "forbidGlob"),
  });
}

/**
 * Describes a guardrail as written in the task, for messages:
 * `requireGlob("out/*.csv", min 1)`.
 */
export function describeGuardrail(guardrail: Guardrail): string {
  switch (guardrail.kind) {
    case "requireFile":
    case "requireDir":
      return `${guardrail.kind}(${JSON.stringify(guardrail.path)})`;
    case "forbidGlob":
      return `forbidGlob(${JSON.stringify(guardrail.pattern)})`;
    case "requireGlob": {
      const max = guardrail.max === undefined ? "" : `, max ${guardrail.max}`;
      return `requireGlob(${JSON.stringify(guardrail.pattern)}, min ${guardrail.min}${max})`;
    }
  }
}

/**
 * The schema of `workspace.pre` / `workspace.post`: nothing (no guardrail) or an array of
 * values made by the builders above; parses to the frozen list. A value that is not an array
 * fails with `must be an array of guardrails ...`, an entry that is not a guardrail (at its
 * index) with `is not a guardrail; build it with ...`.
 *
 * @example
 * ```ts
 * guardrailListSchema.parse([requireDir("docs")]); // [{ kind: "requireDir", path: "docs" }]
 * guardrailListSchema.parse(undefined); // []
 * ```
 */
export const guardrailListSchema: z.ZodType<readonly Guardrail[], unknown> = z.array(
  z.custom<Guardrail>(isGuardrail, {
    error: "is not a guardrail; build it with requireFile, requireDir, requireGlob or forbidGlob",
  }),
  { error: "must be an array of guardrails (requireFile(...), ...)" },
).optional().transform((list): readonly Guardrail[] => Object.freeze(list ?? []));

function isGuardrail(value: unknown): value is Guardrail {
  if (value === null || typeof value !== "object") return false;
  const g = value as Record<string, unknown>;
  switch (g.kind) {
    case "requireFile":
    case "requireDir":
      return typeof g.path === "string" && safeRelative(g.path);
    case "forbidGlob":
      return typeof g.pattern === "string" && safeRelative(g.pattern);
    case "requireGlob":
      return typeof g.pattern === "string" && safeRelative(g.pattern) && isCount(g.min) &&
        (g.max === undefined || (isCount(g.max) && (g.min as number) <= g.max));
    default:
      return false;
  }
}

function safeRelative(path: string): boolean {
  try {
    return validateRelativePath(path, "path") === path;
  } catch {
    return false;
  }
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function checkedPath(path: string, field: string): string {
  try {
    return validateRelativePath(path, field);
  } catch (error) {
    throw new TaskDefinitionError(`invalid guardrail: ${(error as Error).message}`, {
      cause: error,
      field,
    });
  }
}

/**
 * Patterns follow the path rules (relative, no `..`, no backslash: picomatch would read a
 * backslash as an escape); leading `./` and doubled slashes are normalised away.
 */
function checkedPattern(pattern: string, field: string): string {
  return checkedPath(pattern, field);
}
