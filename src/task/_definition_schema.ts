/**
 * The zod pieces the checks of a task definition share: integers in bounds and choices worded
 * the way definition errors are, strict objects that name an unknown key, and the parse that
 * turns the issue a definition reports first into a {@linkcode TaskDefinitionError}.
 *
 * A definition error names one field. When several fields are wrong, each schema says which
 * one is reported with its `rank`: issues are ordered by rank (compared element by element),
 * then as zod found them (an object's fields in the order of its shape, the items of an
 * array by index, a refinement after them).
 *
 * @module
 */
import { z } from "../vendor/zod.ts";
import { definitionError, showValue, type TaskDefinitionError } from "./errors.ts";

/** One issue of a definition schema. */
export type DefinitionIssue = z.core.$ZodIssue;

/**
 * An integer from `min` to `max`; anything else fails with `must be an integer from <min> to
 * <max>, got <value>`, or with `whenMissing` when the value is missing.
 *
 * @example
 * ```ts
 * intIn(0, 10).safeParse(11).error?.issues[0]?.message; // "must be an integer from 0 to 10, got 11"
 * ```
 */
export function intIn(min: number, max: number, whenMissing?: string): z.ZodInt {
  const error = (issue: { input?: unknown }) =>
    issue.input === undefined && whenMissing !== undefined
      ? whenMissing
      : `must be an integer from ${min} to ${max}, got ${showValue(issue.input)}`;
  return z.int({ error }).min(min, { error }).max(max, { error });
}

/**
 * One of `values`; anything else fails with `must be one of <values>, got <value>`.
 *
 * @example
 * ```ts
 * oneOf(["FIXED", "LINEAR_BACKOFF"]).parse("FIXED"); // "FIXED"
 * ```
 */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, {
    error: (issue) => `must be one of ${values.join(", ")}, got ${showValue(issue.input)}`,
  });
}

/** How a strict object words its own failures. */
export interface StrictMessages {
  /** The value is not a plain object (it is shown as {@linkcode showValue} shows it). */
  notObject: (shown: string) => string;
  /** An unknown key; the field reported is the key's. */
  unknownKey: string;
}

/**
 * A strict object (an unknown key is an error) whose own failures are worded by `messages`.
 *
 * @example
 * ```ts
 * const retry = strictSection({ count: intIn(0, 10).optional() }, {
 *   notObject: (shown) => `must be an object, got ${shown}`,
 *   unknownKey: "unknown key; expected one of count",
 * });
 * retry.safeParse([]).error?.issues[0]?.message; // "must be an object, got an array"
 * ```
 */
export function strictSection<S extends z.core.$ZodLooseShape>(
  shape: S,
  messages: StrictMessages,
): z.ZodObject<S, z.core.$strict> {
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === "unrecognized_keys"
        ? messages.unknownKey
        : messages.notObject(showValue(issue.input)),
  });
}

/** Runs a refinement only on a value with no issue so far (the combinations of valid fields). */
export const WHEN_VALID = {
  when: (payload: { issues: readonly unknown[] }): boolean => payload.issues.length === 0,
};

/** What {@linkcode parseDefinition} needs besides the schema and the value. */
export interface ParseDefinitionOptions {
  /** Named in the error message, when known. */
  taskName: string | undefined;
  /** The field the value is, e.g. `controls`; an issue's path is appended to it. */
  field: string;
  /** Which issue is reported first: the lowest rank (element by element), then zod's order. */
  rank: (issue: DefinitionIssue) => readonly number[];
}

/**
 * Parses `value` with `schema`, or throws the definition error of the issue that ranks first:
 * its field (`field` and the issue's path, with an unknown key's name, array indexes as
 * `[n]`), its message, and the `cause` an issue carries in `params.cause`.
 *
 * @throws {TaskDefinitionError} for the first issue.
 * @example
 * ```ts
 * import { z } from "../vendor/zod.ts";
 *
 * const count = parseDefinition(z.object({ count: intIn(0, 10) }), { count: 3 }, {
 *   taskName: "word_count",
 *   field: "controls.retry",
 *   rank: () => [],
 * }).count; // 3
 * ```
 */
export function parseDefinition<S extends z.ZodType>(
  schema: S,
  value: unknown,
  options: ParseDefinitionOptions,
): z.output<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((issue, index) => ({
    issue,
    index,
    rank: options.rank(issue),
  }));
  issues.sort((a, b) => compareRanks(a.rank, b.rank) || a.index - b.index);
  throw issueError(issues[0]!.issue, options);
}

function compareRanks(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const difference = (a[i] ?? -1) - (b[i] ?? -1);
    if (difference !== 0) return difference;
  }
  return 0;
}

function issueError(issue: DefinitionIssue, options: ParseDefinitionOptions): TaskDefinitionError {
  const path = issue.code === "unrecognized_keys" ? [...issue.path, issue.keys[0]!] : issue.path;
  let field = options.field;
  for (const key of path) {
    field += typeof key === "number" ? `[${key}]` : `${field === "" ? "" : "."}${String(key)}`;
  }
  const cause = issue.code === "custom" ? issue.params?.cause : undefined;
  return definitionError(
    options.taskName,
    field,
    issue.message,
    cause === undefined ? {} : { cause },
  );
}
