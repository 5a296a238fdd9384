/**
 * perago/testing: test your tasks with `deno test`.
 *
 * - {@linkcode runTask} runs one attempt of a task through the same code path a worker uses
 *   (validation, guardrails, snapshots and change detection, staging and publication, the
 *   result mapping), on a private temporary directory filled from a map of files, against an
 *   in-memory lakeFS: no server, no network.
 * - {@linkcode withDemoStack} starts the demo Conductor and demo lakeFS in the test's process,
 *   seeds a repository, and runs workflows of your task modules through `perago start`:
 *   integration tests without external servers.
 *
 * ```ts
 * // tasks/normalize_test.ts (the task is usually imported from its own module)
 * import assert from "node:assert/strict";
 * import { defineTask, z } from "perago";
 * import { runTask } from "perago/testing";
 *
 * const normalize = defineTask({
 *   name: "normalize", ownerEmail: "docs@example.com", description: "trims line ends in docs/",
 *   params: z.object({}), result: z.object({}), workspace: { prefix: "docs/" },
 *   async run(_params, ctx) {
 *     const path = `${ctx.workspace}/docs/a.txt`;
 *     const text = await Deno.readTextFile(path);
 *     await Deno.writeTextFile(path, text.replace(/[ \t]+(?=\r?\n)/g, "").replaceAll("\r\n", "\n"));
 *     return {};
 *   },
 * });
 *
 * Deno.test("normalize trims trailing whitespace", async () => {
 *   const run = await runTask(normalize, { files: { "docs/a.txt": "a  \r\n" } });
 *   assert.equal(run.status, "COMPLETED", run.reason);
 *   assert.deepEqual(run.changes.changed, ["docs/a.txt"]);
 *   assert.equal(run.read("docs/a.txt"), "a\n");
 * });
 * ```
 *
 * `runTask` needs `--allow-read --allow-write` (its temporary directory and your modules);
 * `withDemoStack` also `--allow-net` (loopback), `--allow-run` (`perago start`) and
 * `--allow-env`.
 *
 * @module
 */
export {
  runTask,
  type RunTaskAttempt,
  type RunTaskOptions,
  type TaskChanges,
  type TaskRun,
} from "./src/testing/run_task.ts";
export { type FileContent, MemoryLakeFs } from "./src/testing/memory_lakefs.ts";
export {
  type DemoStack,
  type DemoStackOptions,
  type RunWorkflowOptions,
  withDemoStack,
  type WorkflowRun,
  type WorkflowTaskRun,
} from "./src/testing/demo_stack.ts";
