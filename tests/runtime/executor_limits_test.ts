import assert from "node:assert/strict";
import { spawnPeragoStart } from "../_perago_process.ts";
import { NORMALIZE_EXAMPLE } from "./_normalize_example.ts";
import { startStack, startWorker, stopWorker } from "./_stack.ts";

/** The stack's environment without the lakeFS settings (and nothing inherited). */
function withoutLakeFs(env: Record<string, string>): Record<string, string> {
  const kept = Object.fromEntries(
    Object.entries(env).filter(([name]) => !name.startsWith("LAKECTL_")),
  );
  return {
    ...kept,
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/tmp",
    ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
  };
}

Deno.test("start: a worker of workspace-free tasks runs without lakeFS settings; its executors reach no host", async () => {
  await using stack = await startStack();
  const worker = spawnPeragoStart([stack.modulePath], {
    cwd: stack.dir,
    env: withoutLakeFs(stack.env),
    clearEnv: true,
  });
  // gcHidden: the executor process has its gc exposed for idle collections, out of tasks' reach.
  const ok = await stack.startWorkflow({ a: 2, b: 40, gcHidden: true });
  assert.deepEqual((await stack.waitWorkflow(ok, "COMPLETED")).output, { sum: 42 });
  // No lakeFS host in the executor's --allow-net, and no other host either.
  const fetchId = await stack.startWorkflow({ a: 1, b: 1, fetch: `${stack.lakefsUrl}/` });
  const failed = await stack.waitWorkflow(fetchId, "FAILED");
  const reasons = failed.tasks.map((t) => String(t.reasonForIncompletion)).join("\n");
  assert.match(reasons, /NotCapable|PermissionDenied|Requires net access/);
  assert.equal(await stopWorker(worker), 0, worker.output());
});

Deno.test("start: a workspace task without lakeFS settings is refused at start, naming the task", async () => {
  await using stack = await startStack();
  const worker = spawnPeragoStart([NORMALIZE_EXAMPLE], {
    cwd: stack.dir,
    env: withoutLakeFs(stack.env),
    clearEnv: true,
  });
  const status = await worker.status;
  assert.equal(status.code, 1, worker.output());
  assert.match(
    worker.output(),
    /error: perago start needs lakeFS for the workspace task\(s\) normalize_text: set LAKECTL_SERVER_ENDPOINT_URL/,
  );
});

Deno.test("start: a task past PERAGO_EXECUTOR_MAX_HEAP_MB kills only its executor; FAILED names the limit; the retry completes", async () => {
  await using stack = await startStack();
  stack.env.PERAGO_EXECUTOR_MAX_HEAP_MB = "64";
  await using worker = startWorker(stack);
  const id = await stack.startWorkflow({ a: 20, b: 22, hogOnlyFirst: true });
  const wf = await stack.waitWorkflow(id, "COMPLETED", 60_000);
  assert.deepEqual(wf.output, { sum: 42 });
  assert.equal(wf.tasks[0]?.status, "FAILED");
  assert.match(
    String(wf.tasks[0]?.reasonForIncompletion),
    /exited during the attempt \(signal SIGTRAP\): a fatal V8 error, most likely the task's memory passing the executor heap limit \(PERAGO_EXECUTOR_MAX_HEAP_MB=64\)/,
  );
  assert.equal(wf.tasks.filter((t) => t.status === "COMPLETED").length, 1, "completes once");
  // The supervisor and broker lived on: the same worker served the retry.
  assert.match(worker.output(), /restarting executor probe0000/);
  assert.equal(await stopWorker(worker), 0, worker.output());
});
