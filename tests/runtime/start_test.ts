import assert from "node:assert/strict";
import { waitFor } from "../../src/util/sleep.ts";
import { waitForOutput } from "../_perago_process.ts";
import { startStack, startWorker, stopWorker } from "./_stack.ts";

Deno.test("start: a workflow completes through perago start; SIGTERM exits 0", async () => {
  await using stack = await startStack();
  await using worker = startWorker(stack, ["-j", "2"]);
  const id = await stack.startWorkflow({ a: 2, b: 3, printStdout: true });
  const wf = await stack.waitWorkflow(id, "COMPLETED");
  assert.deepEqual(wf.output, { sum: 5 });
  const task = wf.tasks[0]!;
  assert.match(String(task.workerId), /^probe000[01]$/, "reported with the executor's id");
  assert.equal(await stopWorker(worker), 0, worker.output());
  assert.match(worker.output(), /supervisor draining -> stopped/);
});

Deno.test("start: a task reading /etc/passwd or fetching another host is denied; the worker keeps serving", async () => {
  await using stack = await startStack();
  await using worker = startWorker(stack);
  const read = await stack.startWorkflow({ a: 1, b: 1, read: "/etc/passwd" });
  const failedRead = await stack.waitWorkflow(read, "FAILED");
  const readReasons = failedRead.tasks.map((t) => String(t.reasonForIncompletion)).join("\n");
  assert.match(readReasons, /NotCapable|PermissionDenied|Requires read access/);
  // Another host: the demo Conductor (only the broker may reach it).
  const fetchId = await stack.startWorkflow({
    a: 1,
    b: 1,
    fetch: `${stack.conductorUrl}/health`,
  });
  const failedFetch = await stack.waitWorkflow(fetchId, "FAILED");
  const fetchReasons = failedFetch.tasks.map((t) => String(t.reasonForIncompletion)).join("\n");
  assert.match(fetchReasons, /NotCapable|PermissionDenied|Requires net access/);
  // Still serving.
  const ok = await stack.startWorkflow({ a: 4, b: 5 });
  assert.deepEqual((await stack.waitWorkflow(ok, "COMPLETED")).output, { sum: 9 });
  assert.equal(await stopWorker(worker), 0, worker.output());
});

Deno.test("start: a task module beside the operator's .env cannot read it in process mode; thread mode warns", async () => {
  await using stack = await startStack();
  const tasksDir = stack.modulePath.slice(0, stack.modulePath.lastIndexOf("/"));
  const envFile = `${tasksDir}/.env`;
  await Deno.writeTextFile(envFile, "# operator settings\nPERAGO_LOG_LEVEL=info\n");
  // Started from the task's directory, so perago reads that .env and grants the directory.
  const spawn = (extra: string[], denoFlags: string[]) =>
    stack.testStack.spawnWorker([stack.modulePath, ...extra], {
      cwd: tasksDir,
      env: stack.env,
      denoFlags,
    });
  {
    await using worker = spawn([], ["-A"]);
    const denied = await stack.startWorkflow({ a: 1, b: 1, read: envFile });
    const failed = await stack.waitWorkflow(denied, "FAILED");
    const reasons = failed.tasks.map((t) => String(t.reasonForIncompletion)).join("\n");
    assert.match(reasons, /NotCapable|Requires read access/, worker.output());
    // The module's directory stays readable: its other files load and read.
    const sibling = await stack.startWorkflow({ a: 2, b: 2, read: stack.modulePath });
    assert.deepEqual((await stack.waitWorkflow(sibling, "COMPLETED")).output, { sum: 4 });
    assert.equal(await stopWorker(worker), 0, worker.output());
    assert.doesNotMatch(worker.output(), /can read .*\.env/);
  }
  {
    await using worker = spawn(
      ["--execution-mode", "thread"],
      ["-A", "--unstable-worker-options"],
    );
    await waitForOutput(worker, /executors \(Workers\) can read \S*\.env/, {
      timeoutMs: 15_000,
      what: "the thread-mode warning about .env",
    });
    assert.equal(await stopWorker(worker), 0, worker.output());
  }
});

Deno.test("start: kill -9 of an executor mid-attempt -> restarted, task retried, completes once", async () => {
  await using stack = await startStack();
  await using worker = startWorker(stack);
  const id = await stack.startWorkflow({ a: 20, b: 22, sleepMs: 60_000, sleepOnlyFirst: true });
  await waitForOutput(worker, /attempt a1: task \S+ of \S+ started/, {
    timeoutMs: 15_000,
    what: "attempt started",
  });
  const [pid] = worker.executorPids();
  assert.ok(pid, worker.output());
  Deno.kill(pid, "SIGKILL");
  await waitFor(() => worker.executorPids().length >= 2, {
    timeoutMs: 15_000,
    what: "executor restarted",
  });
  const wf = await stack.waitWorkflow(id, "COMPLETED", 20_000);
  assert.deepEqual(wf.output, { sum: 42 });
  assert.equal(wf.tasks[0]?.status, "FAILED");
  assert.match(String(wf.tasks[0]?.reasonForIncompletion), /exited during the attempt/);
  assert.equal(wf.tasks.filter((t) => t.status === "COMPLETED").length, 1, "completes once");
  assert.match(worker.output(), /restarting executor probe0000 in 1000 ms/);
});

Deno.test("start: SIGTERM during a running attempt drains it: result delivered, exit 0", async () => {
  await using stack = await startStack();
  await using worker = startWorker(stack);
  const id = await stack.startWorkflow({ a: 1, b: 2, sleepMs: 1_500 });
  await waitForOutput(worker, /attempt a1: task \S+ of \S+ started/, {
    timeoutMs: 15_000,
    what: "attempt started",
  });
  assert.equal(await stopWorker(worker), 0, worker.output());
  const wf = await stack.api.getWorkflow(id);
  assert.equal(wf.status, "COMPLETED", worker.output());
  assert.deepEqual(wf.output, { sum: 3 });
});

Deno.test("start: a task longer than responseTimeoutSeconds keeps its lease", async () => {
  await using stack = await startStack({ responseSeconds: 2, sweepIntervalMs: 200 });
  await using worker = startWorker(stack);
  const id = await stack.startWorkflow({ a: 5, b: 5, sleepMs: 5_000 });
  const wf = await stack.waitWorkflow(id, "COMPLETED", 30_000);
  assert.equal(wf.tasks.length, 1, "no timeout, no retry");
  assert.deepEqual(wf.output, { sum: 10 });
  assert.equal(await stopWorker(worker), 0, worker.output());
});

Deno.test("start: a second supervisor on the same workspace root is refused", async () => {
  await using stack = await startStack();
  await using first = startWorker(stack);
  await waitForOutput(first, /supervisor starting -> running/, {
    timeoutMs: 15_000,
    what: "first supervisor running",
  });
  const second = startWorker(stack);
  const status = await second.status;
  assert.equal(status.code, 1);
  assert.match(second.output(), /error: .*held by running pid \d+/);
  assert.equal(await stopWorker(first), 0, first.output());
});

Deno.test("start: PERAGO_SHUTDOWN_FORCE_KILL_AFTER bounds the drain: executors killed, exit 1", async () => {
  await using stack = await startStack();
  stack.env.PERAGO_SHUTDOWN_FORCE_KILL_AFTER = "1s";
  await using worker = startWorker(stack);
  const id = await stack.startWorkflow({ a: 1, b: 1, sleepMs: 60_000 });
  await waitForOutput(worker, /attempt a1: task \S+ of \S+ started/, {
    timeoutMs: 15_000,
    what: "attempt started",
  });
  const started = Date.now();
  assert.equal(await stopWorker(worker), 1, worker.output());
  assert.ok(Date.now() - started < 15_000);
  assert.match(worker.output(), /forcing the stop: PERAGO_SHUTDOWN_FORCE_KILL_AFTER/);
  const wf = await stack.api.getWorkflow(id);
  assert.equal(wf.tasks[0]?.status, "FAILED", "the killed attempt is reported, not lost");
});

Deno.test("start: broker death stops the runtime with a non-zero exit and a clear line", async () => {
  await using stack = await startStack();
  await using worker = startWorker(stack);
  const pid = await waitFor(() => {
    const text = worker.output();
    const found = text.match(/broker started \(pid (\d+)\)/);
    return /supervisor starting -> running/.test(text) && found ? Number(found[1]) : undefined;
  }, { timeoutMs: 15_000, what: "running" });
  Deno.kill(pid, "SIGKILL");
  const status = await worker.status;
  assert.equal(status.code, 1, worker.output());
  assert.match(worker.output(), /the broker exited unexpectedly \(signal SIGKILL\)/);
});

Deno.test("start: an unregistered TaskDef exits 1 with the registration hint", async () => {
  await using stack = await startStack();
  const other = `${stack.dir}/tasks/other.ts`;
  await Deno.writeTextFile(
    other,
    (await Deno.readTextFile(stack.modulePath)).replace(stack.taskName, "never_registered"),
  );
  const worker = startWorker({ ...stack, modulePath: other });
  const status = await worker.status;
  assert.equal(status.code, 1);
  assert.match(worker.output(), /never_registered is not registered/);
  assert.match(worker.output(), /perago extract .*other\.ts -o taskdef\.json/);
  assert.match(
    worker.output(),
    /curl -X POST http:\/\/127\.0\.0\.1:\d+\/api\/metadata\/taskdefs/,
  );
});
