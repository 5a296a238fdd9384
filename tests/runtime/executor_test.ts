/**
 * The executor on its own: messages in through `handle`, out through `emit`, with a stand-in
 * for `runAttempt` (the attempt itself is tested in tests/workspace) and an in-memory lakeFS.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { type AttemptTools, Executor, START_LINE_DELAY_MS } from "../../src/runtime/executor.ts";
import { setupLogging } from "../../src/log/setup.ts";
import type { ExecutorInit, FromExecutor } from "../../src/runtime/protocol.ts";
import { defineTask } from "../../src/task/define.ts";
import type { TaskDefinition } from "../../src/task/types.ts";
import { MemoryLakeFs } from "../../src/testing/memory_lakefs.ts";
import { sleep, waitFor } from "../../src/util/sleep.ts";
import type { AttemptOptions, AttemptOutcome } from "../../src/workspace/attempt.ts";
import type { WarmPool } from "../../src/workspace/warm_pool.ts";

const SUM = defineTask({
  name: "sum",
  ownerEmail: "tests@example.com",
  description: "adds",
  params: z.object({ a: z.number(), b: z.number() }),
  result: z.object({ sum: z.number() }),
  run: ({ a, b }) => ({ sum: a + b }),
}) as unknown as TaskDefinition;

const TASK = {
  taskId: "t1",
  taskType: "sum",
  workflowInstanceId: "wf1",
  status: "IN_PROGRESS",
  retryCount: 0,
  inputData: { params: { a: 2, b: 3 } },
};

/** An executor whose attempts run `runAttempt` (or the given tools, or their loader). */
function setup(
  runAttempt: (options: AttemptOptions) => Promise<AttemptOutcome>,
  tools?: AttemptTools | (() => Promise<AttemptTools>),
  collectGarbage?: () => void,
  metricsDelayMs?: number,
) {
  const emitted: FromExecutor[] = [];
  const executor = new Executor({
    init: {
      slot: 0,
      workerId: "sum0000",
      workspaceRoot: "/nonexistent/ws",
      failureReasonMaxLength: 500,
    } as ExecutorInit,
    tasks: new Map([["sum", SUM]]),
    tools: tools ?? { runAttempt, lakefs: new MemoryLakeFs() },
    emit: (message) => emitted.push(message),
    ...(collectGarbage === undefined ? {} : { collectGarbage }),
    ...(metricsDelayMs === undefined ? {} : { metricsDelayMs }),
  });
  const outcomes = () => emitted.filter((m) => m.type === "outcome");
  return { executor, emitted, outcomes };
}

const completed = (options: AttemptOptions): Promise<AttemptOutcome> =>
  Promise.resolve({
    status: "COMPLETED",
    outputData: { result: { input: options.input } },
    stale: false,
    durationMs: 1,
  });

Deno.test("executor: an attempt runs with the task's definition and ids; its outcome is emitted", async () => {
  let seen: AttemptOptions | undefined;
  const { executor, outcomes } = setup((options) => {
    seen = options;
    return completed(options);
  });
  executor.handle({ type: "attempt", attemptId: "a1", task: TASK });
  await executor.idle();
  assert.equal(seen?.task, SUM);
  assert.deepEqual(seen?.attempt, {
    workflowInstanceId: "wf1",
    taskId: "t1",
    retryCount: 0,
    referenceTaskName: "sum",
    seq: 0,
    iteration: 0,
    taskDefName: "sum",
  });
  assert.equal(seen?.ownerWorkerId, "sum0000");
  // The outcome goes out before the attempt directory is removed (in the background).
  assert.equal(seen?.removeDirInBackground, true);
  const [outcome] = outcomes();
  assert.equal(outcome?.type === "outcome" && outcome.attemptId, "a1");
  assert.deepEqual(outcome?.type === "outcome" && outcome.outcome, {
    status: "COMPLETED",
    stale: false,
    durationMs: 1,
    outputData: { result: { input: TASK.inputData } },
  });
});

Deno.test("executor: the fence asks through emit and resolves with the fence-result's state", async () => {
  const { executor, emitted, outcomes } = setup(async (options) => {
    const state = await options.loadCurrentAttempt!(new AbortController().signal);
    return {
      status: state.status === "IN_PROGRESS" ? "COMPLETED" : "FAILED",
      stale: false,
      durationMs: 1,
    };
  });
  executor.handle({ type: "attempt", attemptId: "a1", task: TASK });
  const fence = await waitFor(() => emitted.find((m) => m.type === "fence"), {
    timeoutMs: 5_000,
    what: "a fence request",
  });
  assert.equal(fence.type === "fence" && fence.taskId, "t1");
  const requestId = fence.type === "fence" ? fence.requestId : -1;
  executor.handle({
    type: "fence-result",
    requestId,
    state: { status: "IN_PROGRESS", workflowInstanceId: "wf1", taskId: "t1", retryCount: 0 },
  });
  await executor.idle();
  const [outcome] = outcomes();
  assert.equal(outcome?.type === "outcome" && outcome.outcome.status, "COMPLETED");
});

Deno.test("executor: an unknown task type, and an attempt handed to a busy executor, are FAILED outcomes", async () => {
  const release = Promise.withResolvers<void>();
  const { executor, outcomes } = setup(async (options) => {
    await release.promise;
    return completed(options);
  });
  executor.handle({ type: "attempt", attemptId: "a1", task: { ...TASK, taskType: "nope" } });
  await executor.idle();
  const unknown = outcomes()[0];
  assert.match(
    unknown?.type === "outcome" ? String(unknown.outcome.reasonForIncompletion) : "",
    /no task named nope is loaded by this worker \(it serves sum\)/,
  );
  executor.handle({ type: "attempt", attemptId: "a2", task: TASK });
  executor.handle({ type: "attempt", attemptId: "a3", task: TASK });
  const busy = outcomes().find((m) => m.type === "outcome" && m.attemptId === "a3");
  assert.match(
    busy?.type === "outcome" ? String(busy.outcome.reasonForIncompletion) : "",
    /executor busy/,
  );
  release.resolve();
  await executor.idle();
  assert.equal(outcomes().length, 3);
});

Deno.test("executor: shutdown drains: stopped once the running attempt has reported", async () => {
  const release = Promise.withResolvers<void>();
  const { executor, outcomes } = setup(async (options) => {
    await release.promise;
    return completed(options);
  });
  executor.handle({ type: "attempt", attemptId: "a1", task: TASK });
  executor.handle({ type: "shutdown" });
  assert.equal(executor.state, "draining");
  release.resolve();
  await executor.drained;
  assert.equal(executor.state, "stopped");
  assert.equal(outcomes().length, 1);
});

Deno.test("executor: the attempt tools load on the first attempt, once; a failed load fails that attempt and is tried again", async () => {
  let loads = 0;
  const { executor, outcomes } = setup(completed, () => {
    loads++;
    if (loads === 1) return Promise.reject(new Error("module not found"));
    return Promise.resolve({ runAttempt: completed, lakefs: new MemoryLakeFs() });
  });
  assert.equal(loads, 0, "nothing is loaded while the executor waits for work");
  for (const attemptId of ["a1", "a2", "a3"]) {
    executor.handle({ type: "attempt", attemptId, task: TASK });
    await executor.idle();
  }
  assert.equal(loads, 2);
  const [first, second, third] = outcomes();
  assert.equal(first?.type === "outcome" && first.outcome.status, "FAILED");
  assert.match(
    first?.type === "outcome" ? first.outcome.reasonForIncompletion ?? "" : "",
    /attempt crashed: Error: module not found/,
  );
  assert.equal(second?.type === "outcome" && second.outcome.status, "COMPLETED");
  assert.equal(third?.type === "outcome" && third.outcome.status, "COMPLETED");
});

Deno.test("executor: an attempt whose directory the warm pool kept ends the executor: its outcome says recycle, then it is drained; one the pool did not keep does not", async () => {
  let kept = 0;
  // A pool whose `kept` grows when the attempt says so (the real one counts its retirements).
  const pool = {
    get kept() {
      return kept;
    },
  } as unknown as WarmPool;
  const keep = [false, true];
  const runAttempt = (options: AttemptOptions) => {
    assert.equal(options.warmPool, pool);
    if (keep.shift()) kept++;
    return completed(options);
  };
  const { executor, outcomes } = setup(runAttempt, {
    runAttempt,
    lakefs: new MemoryLakeFs(),
    warmPool: pool,
  });
  executor.handle({ type: "attempt", attemptId: "a1", task: TASK });
  await executor.idle();
  assert.equal(executor.state, "running");
  executor.handle({ type: "attempt", attemptId: "a2", task: { ...TASK, taskId: "t2" } });
  await executor.drained;
  assert.deepEqual(outcomes().map((m) => [m.attemptId, m.recycle]), [["a1", undefined], [
    "a2",
    true,
  ]]);
  assert.equal(executor.state, "stopped");
});

Deno.test("executor: garbage is collected once it has waited a second for work, never during an attempt", async () => {
  let collections = 0;
  const release = Promise.withResolvers<void>();
  const { executor, outcomes } = setup(
    async (options) => {
      await release.promise;
      return completed(options);
    },
    undefined,
    () => collections++,
  );
  // An attempt at once: the start-up collection is called off.
  executor.handle({ type: "attempt", attemptId: "a1", task: TASK });
  await new Promise((resolve) => setTimeout(resolve, 1_300));
  assert.equal(collections, 0, "no collection while the attempt runs");
  release.resolve();
  await executor.idle();
  assert.equal(outcomes().length, 1);
  await waitFor(() => collections === 1, { timeoutMs: 5_000, what: "the idle collection" });
  executor.handle({ type: "shutdown" });
  await executor.drained;
  assert.equal(collections, 1);
});

Deno.test("executor: with metricsDelayMs, attempts in a row share one metrics message, sent after their outcomes", async () => {
  const { executor, emitted } = setup(completed, undefined, undefined, 200);
  for (const attemptId of ["a1", "a2", "a3"]) {
    executor.handle({ type: "attempt", attemptId, task: { ...TASK, taskId: `t-${attemptId}` } });
    await executor.idle();
  }
  assert.deepEqual(emitted.map((m) => m.type), ["outcome", "outcome", "outcome"]);
  const metrics = await waitFor(
    () => emitted.find((m) => m.type === "metrics"),
    { timeoutMs: 5_000, what: "the held metrics message" },
  );
  const attempts = metrics.records.filter((r) => r.name === "perago_attempts_total");
  assert.deepEqual(attempts.map((r) => r.value), [3], "one record counting the three attempts");
  assert.equal(emitted.filter((m) => m.type === "metrics").length, 1);
  // Held records go out when the executor ends, not after the delay.
  executor.handle({ type: "attempt", attemptId: "a4", task: { ...TASK, taskId: "t-a4" } });
  await executor.idle();
  executor.handle({ type: "shutdown" });
  await executor.drained;
  assert.equal(emitted.filter((m) => m.type === "metrics").length, 2);
  assert.equal(emitted.at(-1)?.type, "metrics");
});

Deno.test("executor: by default an attempt's metrics are emitted before its outcome", async () => {
  const { executor, emitted } = setup(completed);
  executor.handle({ type: "attempt", attemptId: "a1", task: TASK });
  await executor.idle();
  assert.deepEqual(emitted.map((m) => m.type), ["metrics", "outcome"]);
});

/** The messages of the JSON lines the executor logged while `fn` ran, logging at `level`. */
async function loggedMessages(level: "info" | "debug", fn: () => Promise<void>): Promise<string[]> {
  const dir = await Deno.makeTempDir({ prefix: "perago-executor-log-" });
  try {
    const logging = await setupLogging({
      logRoot: dir,
      moduleName: "sum",
      workerId: "sum0000",
      maxFileBytes: 1024 * 1024,
      retentionMs: 86_400_000,
      console: false,
      level,
    });
    try {
      await fn();
    } finally {
      await logging.dispose();
    }
    const text = await Deno.readTextFile(logging.logFile);
    return text.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line).message)
      .filter((message: string) => message.startsWith("attempt "));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("executor: a quick attempt is logged by its end line; one running past START_LINE_DELAY_MS by its start too", async () => {
  const messages = await loggedMessages("info", async () => {
    const { executor } = setup(async (options) => {
      if ((options.input as { slow?: boolean }).slow) await sleep(START_LINE_DELAY_MS * 3);
      return await completed(options);
    });
    executor.handle({ type: "attempt", attemptId: "a1", task: TASK });
    await executor.idle();
    executor.handle({
      type: "attempt",
      attemptId: "a2",
      task: { ...TASK, taskId: "t2", inputData: { slow: true } },
    });
    await executor.idle();
  });
  assert.deepEqual(messages, [
    "attempt a1: task t1 ended COMPLETED",
    "attempt a2: task t2 of sum started",
    "attempt a2: task t2 ended COMPLETED",
  ]);
});

Deno.test("executor: with debug on, every attempt's start is logged at once", async () => {
  const messages = await loggedMessages("debug", async () => {
    const { executor } = setup(completed);
    executor.handle({ type: "attempt", attemptId: "a1", task: TASK });
    await executor.idle();
  });
  assert.deepEqual(messages, [
    "attempt a1: task t1 of sum started",
    "attempt a1: task t1 ended COMPLETED",
  ]);
});
