import assert from "node:assert/strict";
import { waitForOutput } from "../_perago_process.ts";
import {
  assertNormalizePublishes,
  NORMALIZE_EXAMPLE,
  registerNormalizeTaskDef,
} from "./_normalize_example.ts";
import { type Stack, startStack, startWorker, stopWorker, type Worker } from "./_stack.ts";
import { realServers, skipNote } from "../_real_servers.ts";

const THREAD = ["--execution-mode", "thread"];
const THREAD_FLAGS = ["-A", "--unstable-worker-options"];

async function withThreads(
  args: string[],
  body: (stack: Stack, worker: Worker) => Promise<void>,
  stackOptions: Parameters<typeof startStack>[0] = {},
): Promise<void> {
  await using stack = await startStack(stackOptions);
  await using worker = startWorker(stack, [...args, ...THREAD], THREAD_FLAGS);
  await body(stack, worker);
}

function explain(worker: Worker) {
  return (error: Error) => {
    throw new Error(`${error.message}\n${worker.output()}`);
  };
}

Deno.test("thread: a workflow completes in thread mode (workers, one process); SIGTERM exits 0", async () => {
  await withThreads(["-j", "2"], async (stack, worker) => {
    const id = await stack.startWorkflow({ a: 2, b: 3, printStdout: true });
    const wf = await stack.waitWorkflow(id, "COMPLETED").catch(explain(worker));
    assert.deepEqual(wf.output, { sum: 5 });
    assert.match(String(wf.tasks[0]?.workerId), /^probe000[01]$/);
    const output = worker.output();
    assert.match(output, /\(thread mode\)/);
    // Every child runs in the supervisor's process.
    const pids = new Set(
      [...output.matchAll(/ started \((?:slot \d+, )?pid (\d+)\)/g)].map((m) => m[1]),
    );
    assert.equal(pids.size, 1, output);
    assert.equal(await stopWorker(worker), 0, worker.output());
    assert.match(worker.output(), /supervisor draining -> stopped/);
  });
});

Deno.test("thread: a task reading /etc/passwd or fetching another host is denied; the worker keeps serving", async () => {
  await withThreads([], async (stack, worker) => {
    const read = await stack.startWorkflow({ a: 1, b: 1, read: "/etc/passwd" });
    const failedRead = await stack.waitWorkflow(read, "FAILED").catch(explain(worker));
    const readReasons = failedRead.tasks.map((t) => String(t.reasonForIncompletion)).join("\n");
    assert.match(readReasons, /NotCapable|Requires read access/);
    // Another host: the demo Conductor (only the broker worker may reach it).
    const fetchId = await stack.startWorkflow({
      a: 1,
      b: 1,
      fetch: `${stack.conductorUrl}/health`,
    });
    const failedFetch = await stack.waitWorkflow(fetchId, "FAILED").catch(explain(worker));
    const fetchReasons = failedFetch.tasks.map((t) => String(t.reasonForIncompletion)).join("\n");
    assert.match(fetchReasons, /NotCapable|Requires net access/);
    const ok = await stack.startWorkflow({ a: 4, b: 5 });
    assert.deepEqual((await stack.waitWorkflow(ok, "COMPLETED")).output, { sum: 9 });
    assert.equal(await stopWorker(worker), 0, worker.output());
  });
});

Deno.test("thread: SIGTERM during a running attempt drains it: result delivered, exit 0", async () => {
  await withThreads([], async (stack, worker) => {
    const id = await stack.startWorkflow({ a: 1, b: 2, sleepMs: 1_500 });
    await waitForOutput(worker, /attempt a1: task \S+ of \S+ started/, {
      timeoutMs: 15_000,
      what: "attempt started",
    }).catch(explain(worker));
    assert.equal(await stopWorker(worker), 0, worker.output());
    const wf = await stack.api.getWorkflow(id);
    assert.equal(wf.status, "COMPLETED", worker.output());
    assert.deepEqual(wf.output, { sum: 3 });
  });
});

Deno.test("thread: a writable workspace task (examples/normalize_text.ts) publishes to lakeFS", async () => {
  await using stack = await startStack();
  await registerNormalizeTaskDef(stack);
  await using worker = startWorker(
    { ...stack, modulePath: NORMALIZE_EXAMPLE },
    THREAD,
    THREAD_FLAGS,
  );
  await assertNormalizePublishes(stack, worker);
});

const real = realServers();
Deno.test({
  name: "thread: the writable example publishes on the real Conductor and real lakeFS",
  ignore: skipNote("writable example (thread mode) on the real servers", real),
  async fn() {
    if ("skip" in real) return;
    await using stack = await startStack({ servers: real });
    await registerNormalizeTaskDef(stack);
    await using worker = startWorker(
      { ...stack, modulePath: NORMALIZE_EXAMPLE },
      THREAD,
      THREAD_FLAGS,
    );
    await assertNormalizePublishes(stack, worker);
  },
});

const CRASHES = {
  "an uncaught error": {
    code: `setTimeout(() => { throw new Error("worker crash on purpose"); }, 0);`,
    logged: /probe0000 \(worker\) crashed: .*worker crash on purpose/,
  },
  "Deno.exit(3)": {
    code: "Deno.exit(3);",
    logged: /probe0000 \(worker\) crashed: Deno\.exit\(3\) called in the worker/,
  },
};

for (const [kind, crash] of Object.entries(CRASHES)) {
  Deno.test(`thread: an executor worker ending with ${kind} mid-attempt is restarted in its slot; the retry completes once`, async () => {
    await using stack = await startStack();
    const crashing = `${stack.dir}/tasks/crash.ts`;
    await Deno.writeTextFile(
      crashing,
      (await Deno.readTextFile(stack.modulePath)).replace(
        "async run(p, ctx) {",
        `async run(p, ctx) {
    if (ctx.attempt.retryCount === 0) {
      ${crash.code}
      await new Promise(() => {});
    }`,
      ),
    );
    await using worker = startWorker({ ...stack, modulePath: crashing }, THREAD, THREAD_FLAGS);
    const id = await stack.startWorkflow({ a: 20, b: 22 });
    const wf = await stack.waitWorkflow(id, "COMPLETED", 20_000).catch(explain(worker));
    assert.deepEqual(wf.output, { sum: 42 });
    assert.equal(wf.tasks[0]?.status, "FAILED");
    assert.match(String(wf.tasks[0]?.reasonForIncompletion), /exited during the attempt/);
    assert.equal(wf.tasks.filter((t) => t.status === "COMPLETED").length, 1, "completes once");
    const output = worker.output();
    assert.match(output, crash.logged);
    assert.match(output, /restarting executor probe0000 in 1000 ms/);
    assert.equal(await stopWorker(worker), 0, worker.output());
    const left = await Array.fromAsync(Deno.readDir(stack.workspaceRoot));
    assert.deepEqual(left.map((e) => e.name), [], "crashed attempt dir collected, lock released");
  });
}

Deno.test("thread: without --unstable-worker-options, start refuses with a clear error (exit 1)", async () => {
  await using stack = await startStack();
  // The project's deno.json enables worker-options; run with a copy that does not.
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../../deno.json", import.meta.url)),
  ) as Record<string, unknown>;
  delete config.unstable;
  const configPath = `${stack.dir}/deno.no-worker-options.json`;
  await Deno.writeTextFile(configPath, JSON.stringify(config));
  await using worker = startWorker(stack, THREAD, ["-A", "--no-lock", "--config", configPath]);
  const status = await worker.status;
  assert.equal(status.code, 1, worker.output());
  assert.match(
    worker.output(),
    /error: execution mode thread needs Deno's --unstable-worker-options/,
  );
});
