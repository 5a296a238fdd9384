/**
 * perago: Conductor task workers for versioned lakeFS workspaces. This is what task authors
 * import. A task module defines one task and exports it by default:
 *
 * ```ts
 * // tasks/normalize.ts
 * import { defineTask, requireDir, requireFile, TaskTerminalError, z } from "perago";
 *
 * export default defineTask({
 *   name: "normalize_docs",
 *   ownerEmail: "docs-team@example.com",
 *   description: "Normalises the line endings of docs/",
 *   params: z.object({ maxFiles: z.number().int().positive().default(1000) }),
 *   result: z.object({ changed: z.number().int() }),
 *   // The attempt directory mirrors the repository root, so guardrail paths include the
 *   // prefix ("docs/..."), not paths relative to it.
 *   workspace: { prefix: "docs/", pre: [requireDir("docs")], post: [requireFile("docs/index.md")] },
 *   controls: { retry: { count: 2 }, timeout: { responseSeconds: 120 } },
 *   async run({ maxFiles }, ctx) {
 *     let changed = 0;
 *     for await (const entry of Deno.readDir(`${ctx.workspace}/docs`)) {
 *       if (changed >= maxFiles) throw new TaskTerminalError("normalize_docs: too many files; raise maxFiles");
 *       if (!entry.isFile) continue;
 *       const path = `${ctx.workspace}/docs/${entry.name}`;
 *       const text = await Deno.readTextFile(path);
 *       const fixed = text.replaceAll("\r\n", "\n");
 *       if (fixed !== text) {
 *         await Deno.writeTextFile(path, fixed);
 *         changed++;
 *       }
 *     }
 *     ctx.log.info("normalised", { changed });
 *     return { changed };
 *   },
 * });
 * ```
 *
 * Then `perago check tasks/normalize.ts`, `perago extract tasks/normalize.ts -o taskdef.json`
 * (register it with Conductor) and `perago start tasks/normalize.ts`.
 *
 * @module
 */
export { z } from "./src/vendor/zod.ts";
export { defineTask, type TaskOptions, type WorkspaceOptions } from "./src/task/define.ts";
export {
  forbidGlob,
  requireDir,
  requireFile,
  requireGlob,
  type RequireGlobOptions,
} from "./src/task/guardrails.ts";
export type { WorkerOptions } from "./src/task/worker_options.ts";
export { TaskTerminalError } from "./src/task/errors.ts";
export type {
  TaskMetricDeclaration,
  TaskMetricKind,
  TaskMetrics,
  TaskMetricTimer,
} from "./src/task/metrics.ts";
export type {
  ControlsOptions,
  LimitsOptions,
  PublishBudgetOptions,
  RetryOptions,
  TimeoutOptions,
} from "./src/task/controls.ts";
export type {
  AttemptInfo,
  CompiledControls,
  CompiledPublishBudget,
  CompiledWorkerOptions,
  Guardrail,
  RetryLogic,
  TaskContext,
  TaskDefinition,
  TaskLogger,
  TimeoutPolicy,
  WorkspaceSpec,
} from "./src/task/types.ts";
