/**
 * Hand-written stand-ins for zod schemas on hot paths: a quick check tests the same rules as
 * its schema and returns what the schema would, or `undefined` for anything it does not take,
 * which then goes through the schema (whose error names the problem). zod's generic checks of
 * a message or an answer per task, in code run once a task, were a visible part of the CPU of
 * a worker's trivial tasks.
 *
 * @module
 */
import type { z } from "../vendor/zod.ts";

/** What {@linkcode checkWith} returns: zod's answer, or the quick check's. */
export type CheckedValue<T> = { success: true; data: T } | { success: false; error: z.ZodError };

const checks = new WeakMap<object, (value: unknown) => unknown>();

/**
 * Makes `check` the quick check of `schema`: it must take a value only when `schema` would,
 * and return what `schema` would (a test should hold the two to the same answers: the tests'
 * `assertQuickAgrees` compares them on every one-field change of valid values).
 */
export function setQuickCheck<T>(schema: z.ZodType<T>, check: (value: unknown) => T | undefined) {
  checks.set(schema, check);
}

/**
 * Checks `value` against `schema`, its quick check first when it has one.
 *
 * @example
 * ```ts
 * import { z } from "../vendor/zod.ts";
 *
 * const schema = z.object({ n: z.number() });
 * setQuickCheck(schema, (v) => typeof (v as { n?: unknown })?.n === "number" ? { n: (v as { n: number }).n } : undefined);
 * checkWith(schema, { n: 1 }); // { success: true, data: { n: 1 } } (the quick check's)
 * checkWith(schema, { n: "1" }).success; // false (zod's answer, with its error)
 * ```
 */
export function checkWith<T>(schema: z.ZodType<T>, value: unknown): CheckedValue<T> {
  const quick = checks.get(schema)?.(value);
  if (quick !== undefined) return { success: true, data: quick as T };
  return schema.safeParse(value);
}

/** A plain object (what zod's `z.object` and `z.record` take from JSON or a structured clone). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value) &&
    Object.getPrototypeOf(value) === Object.prototype;
}

/** A finite number (zod's `z.number()`). */
export function isFiniteNumber(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}
