/**
 * The scope of an attempt: the part of the repository it downloads, guards, snapshots, stages
 * and publishes. It is the task's declared prefix, optionally narrowed per task input by
 * `workspace.prefix` (a dynamic fork over partitions gives each forked task its own
 * `data/part=07/`). Two attempts on one branch conflict only where their scopes overlap.
 *
 * @module
 */
import { normalizePrefix } from "../task/paths.ts";
import { WorkspaceScopeError } from "./errors.ts";

/**
 * The scope of an attempt: `declaredPrefix` (normalised, `""` or `dir/sub/`) narrowed by the
 * input's `workspace.prefix` when one is given. The input prefix is POSIX, has no `..`
 * segment and must be equal to or under the declared prefix; it is normalised the same way
 * (`/` and `""` mean the repository root, one trailing slash).
 *
 * @throws {WorkspaceScopeError} (terminal: the same input can never succeed) naming
 *   `workspace.prefix`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WorkspaceScopeError } from "./errors.ts";
 *
 * resolveScope("data/", undefined); // "data/"
 * resolveScope("data/", "data/part=07"); // "data/part=07/"
 * assert.throws(() => resolveScope("data/", "docs/"), WorkspaceScopeError);
 * ```
 */
export function resolveScope(declaredPrefix: string, inputPrefix: string | undefined): string {
  if (inputPrefix === undefined) return declaredPrefix;
  let scope: string;
  try {
    scope = normalizePrefix(inputPrefix);
  } catch (error) {
    throw new WorkspaceScopeError(
      `invalid workspace input: ${(error as Error).message}; fix the task input`,
      { cause: error },
    );
  }
  if (!scope.startsWith(declaredPrefix)) {
    throw new WorkspaceScopeError(
      `invalid workspace input: workspace.prefix: ${JSON.stringify(inputPrefix)} is not under ` +
        `the task's prefix ${JSON.stringify(declaredPrefix === "" ? "/" : declaredPrefix)}; ` +
        "give the task's prefix or a folder below it",
    );
  }
  return scope;
}

/**
 * Whether the repository path `path` lies in `scope` (`""` is the whole repository).
 *
 * @example
 * ```ts
 * inScope("data/part=07/a.csv", "data/part=07/"); // true
 * inScope("data/part=070/a.csv", "data/part=07/"); // false
 * ```
 */
export function inScope(path: string, scope: string): boolean {
  return path.startsWith(scope);
}

/**
 * How a scope is shown in messages: `/` for the whole repository, else the prefix itself.
 *
 * @example
 * ```ts
 * describeScope(""); // "/"
 * ```
 */
export function describeScope(scope: string): string {
  return scope === "" ? "/" : scope;
}
