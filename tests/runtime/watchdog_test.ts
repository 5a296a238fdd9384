/**
 * A task that ignores its timeout (it blocks its event loop, so even the attempt's abort
 * cannot run) must not hold its slot and lease forever: the supervisor kills its executor
 * after `timeout.seconds` plus a grace, the task is retried and completes.
 */
import assert from "node:assert/strict";
import { loadTask } from "../../src/task/loader.ts";
import { buildTaskDef } from "../../src/task/taskdef.ts";
import { startStack, startWorker, stopWorker } from "./_stack.ts";

const MOD = new URL("../../mod.ts", import.meta.url).href;

const BLOCKING_TASK = (name: string) => `
import { defineTask, z } from "${MOD}";
export default defineTask({
  name: "${name}",
  ownerEmail: "tests@example.com",
  description: "blocks its event loop on the first try",
  params: z.object({ a: z.number(), b: z.number() }),
  result: z.object({ sum: z.number() }),
  controls: {
    retry: { count: 2, logic: "FIXED", delaySeconds: 0 },
    timeout: { policy: "RETRY", seconds: 1, responseSeconds: 1 },
  },
  run(p, ctx) {
    if (ctx.attempt.retryCount === 0) {
      const end = Date.now() + 120_000;
      while (Date.now() < end) { /* deaf to ctx.signal: nothing else can run */ }
    }
    return { sum: p.a + p.b };
  },
});
`;

Deno.test("start: an executor stuck past its task's timeout.seconds is killed; the retry completes", async () => {
  await using stack = await startStack();
  await Deno.writeTextFile(stack.modulePath, BLOCKING_TASK(stack.taskName));
  const { task } = await loadTask(stack.modulePath);
  await stack.api.updateTaskDef(buildTaskDef(task));
  await using worker = startWorker(stack, ["-j", "1"]);
  const id = await stack.startWorkflow({ a: 2, b: 3 });
  const wf = await stack.waitWorkflow(id, "COMPLETED", 45_000).catch((error) => {
    throw new Error(`${error.message}\n${worker.output()}`);
  });
  assert.deepEqual(wf.output, { sum: 5 });
  const done = wf.tasks.find((t) => t.status === "COMPLETED");
  assert.ok(done && done.retryCount >= 1, JSON.stringify(wf.tasks.map((t) => t.status)));
  assert.match(worker.output(), /past its timeout\.seconds .* killing it/);
  assert.match(worker.output(), /restarting executor probe0000/);
  assert.equal(await stopWorker(worker), 0, worker.output());
});
