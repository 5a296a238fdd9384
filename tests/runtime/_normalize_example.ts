/**
 * The writable example (examples/normalize_text.ts) run through a live `perago start`: seed a
 * repository, register the TaskDef and a one-task workflow, and check what was published.
 * Shared by the process-mode and thread-mode tests.
 */
import assert from "node:assert/strict";
import { DEMO_ACCESS_KEY_ID, DEMO_SECRET_ACCESS_KEY } from "../../src/devstack/credentials.ts";
import { LakeFsClient } from "../../src/lakefs/client.ts";
import { loadTask } from "../../src/task/loader.ts";
import { buildTaskDef } from "../../src/task/taskdef.ts";
import { type Stack, stopWorker, type Worker } from "./_stack.ts";

/** Path of the writable example task module. */
export const NORMALIZE_EXAMPLE = new URL("../../examples/normalize_text.ts", import.meta.url)
  .pathname;

/**
 * Runs the example through `worker` (started on `stack` with {@linkcode NORMALIZE_EXAMPLE})
 * and asserts: the workflow completes, the branch moves to the published commit, the file is
 * normalised, nothing but the lock is left in the workspace root, and SIGTERM exits 0.
 */
export async function assertNormalizePublishes(stack: Stack, worker: Worker): Promise<void> {
  const lakefs = new LakeFsClient({
    endpointUrl: stack.lakefsUrl,
    accessKeyId: DEMO_ACCESS_KEY_ID,
    secretAccessKey: DEMO_SECRET_ACCESS_KEY,
  });
  await lakefs.createRepository("demo", "local://demo", "main");
  await lakefs.uploadObject(
    "demo",
    "main",
    "docs/a.txt",
    () => Promise.resolve(new TextEncoder().encode("hello   \r\nworld\n\n\n")),
  );
  const input = await lakefs.commit("demo", "main", "seed");
  const { task } = await loadTask(NORMALIZE_EXAMPLE);
  await stack.api.registerTaskDefs([buildTaskDef(task)]);
  await stack.api.upsertWorkflowDefs([{
    name: "normalize_wf",
    version: 1,
    schemaVersion: 2,
    ownerEmail: "tests@example.com",
    tasks: [{
      name: task.name,
      taskReferenceName: "norm",
      type: "SIMPLE",
      inputParameters: { workspace: "${workflow.input.workspace}", params: {} },
    }],
    outputParameters: { workspace: "${norm.output.workspace}" },
  }]);
  const id = await stack.api.startWorkflow("normalize_wf", {
    workspace: { repository: "demo", branch: "main", ref_type: "commit", ref: input.id },
  });
  const wf = await stack.waitWorkflow(id, "COMPLETED", 30_000).catch(async (error) => {
    const now = await stack.api.getWorkflow(id);
    throw new Error(
      `${error.message}: ${JSON.stringify(now.tasks.map((t) => t.reasonForIncompletion))}\n` +
        worker.output(),
    );
  });
  const published = (wf.output?.workspace as { ref?: string } | undefined)?.ref;
  assert.ok(published && published !== input.id, JSON.stringify(wf.output));
  assert.equal((await lakefs.getBranch("demo", "main")).commit_id, published);
  const text = await new Response(await lakefs.getObject("demo", published, "docs/a.txt")).text();
  assert.equal(text, "hello\nworld\n");
  // Nothing left behind in the workspace root but the supervisor's lock.
  const left = await Array.fromAsync(Deno.readDir(stack.workspaceRoot));
  assert.deepEqual(left.map((e) => e.name), [".perago-supervisor.lock"]);
  assert.equal(await stopWorker(worker), 0, worker.output());
}
