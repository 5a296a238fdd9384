/**
 * Holds a hand-written quick check to its schema on values it was not written for: every
 * sample with one field (at the top, or in an object one level down) removed or replaced by
 * each odd value, so a rule added to the schema and not to its quick check fails a test.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { z } from "../src/vendor/zod.ts";
import { checkWith } from "../src/util/quick_check.ts";

/** What a field is replaced by: each JSON kind, and the edges the schemas' rules care about. */
const ODD_VALUES: readonly unknown[] = [
  null,
  "",
  "x",
  0,
  -1,
  1.5,
  2 ** 53,
  true,
  false,
  [],
  [1],
  {},
  { a: 1 },
];

function isPlain(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** `sample` with its field at `path` removed (`remove`) or set to `value`. */
function withField(
  sample: Record<string, unknown>,
  path: readonly string[],
  change: { remove: true } | { value: unknown },
): Record<string, unknown> {
  const copy = { ...sample };
  const [key, ...rest] = path as [string, ...string[]];
  if (rest.length > 0) {
    copy[key] = withField(copy[key] as Record<string, unknown>, rest, change);
  } else if ("remove" in change) delete copy[key];
  else copy[key] = change.value;
  return copy;
}

/** Every field path of `sample`: its keys, and the keys of its plain-object fields. */
function fieldPaths(sample: Record<string, unknown>): string[][] {
  const paths: string[][] = [];
  for (const [key, value] of Object.entries(sample)) {
    paths.push([key]);
    if (isPlain(value)) { for (const inner of Object.keys(value)) paths.push([key, inner]); }
  }
  return paths;
}

/** The samples and every one-field change of each (see the module doc). */
export function oneFieldChanges(samples: readonly Record<string, unknown>[]): unknown[] {
  const values: unknown[] = [...samples];
  for (const sample of samples) {
    for (const path of fieldPaths(sample)) {
      values.push(withField(sample, path, { remove: true }));
      for (const value of ODD_VALUES) values.push(withField(sample, path, { value }));
    }
  }
  return values;
}

/** Asserts that `checkWith` (the quick check first) and `schema` agree on `value`. */
function assertAgrees<T>(schema: z.ZodType<T>, value: unknown): void {
  const expected = schema.safeParse(value);
  const checked = checkWith(schema, value);
  const what = JSON.stringify(value);
  assert.equal(checked.success, expected.success, `success differs for ${what}`);
  if (expected.success) {
    assert.deepEqual(checked.success && checked.data, expected.data, `data differs for ${what}`);
  }
}

/**
 * Asserts that `quick` takes every value of `valid` and none of `invalid`, and that
 * `checkWith` and `schema` give the same answer, and the same data, for each.
 */
export function assertQuickAnswers<T>(
  schema: z.ZodType<T>,
  quick: (value: unknown) => T | undefined,
  valid: readonly unknown[],
  invalid: readonly unknown[],
): void {
  for (const value of [...valid, ...invalid]) assertAgrees(schema, value);
  for (const value of valid) assert.ok(quick(value), `not taken: ${JSON.stringify(value)}`);
  for (const value of invalid) {
    assert.equal(quick(value), undefined, `taken: ${JSON.stringify(value)}`);
  }
}

/**
 * Asserts that `schema`'s quick check (through `checkWith`) and `schema` itself give the same
 * answer, and the same data, for every sample and every one-field change of it; returns how
 * many values `quick` took itself, so a caller can see it was tried.
 */
export function assertQuickAgrees<T>(
  schema: z.ZodType<T>,
  samples: readonly Record<string, unknown>[],
  quick: (value: unknown) => T | undefined,
): number {
  let taken = 0;
  for (const value of oneFieldChanges(samples)) {
    assertAgrees(schema, value);
    if (quick(value) !== undefined) taken++;
  }
  return taken;
}
