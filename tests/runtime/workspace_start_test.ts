import assert from "node:assert/strict";
import { DEMO_ACCESS_KEY_ID, DEMO_SECRET_ACCESS_KEY } from "../../src/devstack/credentials.ts";
import { LakeFsClient } from "../../src/lakefs/client.ts";
import { loadTask } from "../../src/task/loader.ts";
import { buildTaskDef } from "../../src/task/taskdef.ts";
import { startStack, startWorker, stopWorker } from "./_stack.ts";

const EXAMPLE = new URL("../../examples/normalize_text.ts", import.meta.url).pathname;

Deno.test("start: a writable workspace task publishes to lakeFS from a narrowed executor", async () => {
  const stack = await startStack();
  const worker = startWorker({ ...stack, modulePath: EXAMPLE });
  try {
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
    const { task } = await loadTask(EXAMPLE);
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
    // Nothing left behind in the workspace root but the supervisor's lock.
    const left = await Array.fromAsync(Deno.readDir(stack.workspaceRoot));
    assert.deepEqual(left.map((e) => e.name), [".perago-supervisor.lock"]);
    assert.equal(await stopWorker(worker), 0, worker.output());
  } finally {
    worker.kill("SIGKILL");
    await worker.status;
    await stack.close();
  }
});
