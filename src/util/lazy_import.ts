/**
 * Importing perago's own modules on first use, out of sight of Deno's module graph.
 *
 * `deno run` builds its module graph from the entry point and follows every dynamic import
 * whose specifier is a literal, reading and keeping each such module and everything it
 * imports even when that code never runs: an executor process (`main.ts __executor`) held
 * the whole CLI that way (`perago dev`'s servers, `perago run`, the broker, the Conductor
 * client, the attempt code before its first attempt), 1.7 MiB of its idle RSS (measured with
 * the start-up benchmark's executor). An import whose specifier is computed at run time is
 * read only when it runs; {@linkcode importLazily} is that import.
 *
 * `deno compile` cannot see such an import either, so every module loaded this way is listed
 * in {@linkcode LAZY_MODULES}, which `scripts/compile.ts` embeds (`--include`); a module
 * missing from the list cannot be imported this way (the type says so).
 *
 * @module
 */

/** perago's modules imported on first use, relative to `src/`. */
export const LAZY_MODULES = [
  "cli/check.ts",
  "cli/extract.ts",
  "cli/run.ts",
  "cli/start.ts",
  "cli/dev.ts",
  "cli/init.ts",
  "cli/_child.ts",
  "runtime/permissions.ts",
  "runtime/broker.ts",
  "runtime/executor.ts",
  "runtime/executor_deps.ts",
  "runtime/attempt_metrics.ts",
  "runtime/attempt_trace.ts",
  "runtime/counting_lakefs.ts",
  "conductor/client.ts",
  "otel/trace.ts",
  "workspace/attempt.ts",
  "workspace/_workspace_attempt.ts",
  "workspace/warm_pool.ts",
  "lakefs/client.ts",
  "lakefs/object_cache.ts",
  "task/glob.ts",
] as const;

/** One of {@linkcode LAZY_MODULES}. */
export type LazyModule = (typeof LAZY_MODULES)[number];

/** The URL of a module of {@linkcode LAZY_MODULES}. */
export function lazyModuleUrl(module: LazyModule): URL {
  return new URL(`../${module}`, import.meta.url);
}

/**
 * Imports `module` (a path under `src/` listed in {@linkcode LAZY_MODULES}); `T` is its
 * namespace, written `typeof import("<relative path>")` at the call site (a type-only
 * reference, which the module graph of `deno run` does not load).
 *
 * @example
 * ```ts
 * const { compileGlob } = await importLazily<typeof import("../task/glob.ts")>("task/glob.ts");
 * compileGlob("docs/**")("docs/a.md"); // true
 * ```
 */
export function importLazily<T>(module: LazyModule): Promise<T> {
  const specifier = lazyModuleUrl(module).href;
  return import(specifier);
}
