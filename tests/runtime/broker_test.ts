import assert from "node:assert/strict";
import { ResultDelivery } from "../../src/conductor/delivery.ts";
import { Broker, type TaskPolling } from "../../src/runtime/broker.ts";
import type { FromBroker } from "../../src/runtime/protocol.ts";
import type { PollOptions, Task, TaskResult } from "../../src/conductor/api.ts";
import { ConductorError } from "../../src/conductor/errors.ts";
import { sleep, waitFor } from "../../src/util/sleep.ts";
import { MemoryConductor } from "./_memory_conductor.ts";

/** Holds a batch poll until `count` tasks are queued or the timeout passes (real Conductor). */
class FillingConductor extends MemoryConductor {
  /** Polls started (`polls` records them when they return). */
  started = 0;
  override async pollBatch(taskType: string, options: PollOptions): Promise<Task[]> {
    this.started++;
    const deadline = Date.now() + options.timeoutMs;
    while ((this.queues.get(taskType)?.length ?? 0) < options.count && Date.now() < deadline) {
      await sleep(5, options.signal);
    }
    return await super.pollBatch(taskType, { ...options, timeoutMs: 0 });
  }
}

function setup(
  options: {
    pollTimeoutMs?: number;
    taskTypes?: string[];
    api?: MemoryConductor;
    taskPolling?: Record<string, TaskPolling>;
    pausedTaskTypes?: string[];
    /** Counts the broker's calls of its delivery's `serverAnswered`. */
    answered?: { count: number };
  } = {},
) {
  const api = options.api ?? new MemoryConductor();
  const emitted: FromBroker[] = [];
  const delivery = new ResultDelivery({ api, baseDelayMs: 5, maxDelayMs: 20 });
  const answered = options.answered;
  const broker = new Broker({
    api,
    delivery: answered === undefined ? delivery : {
      deliver: delivery.deliver.bind(delivery),
      serverAnswered: () => void answered.count++,
    },
    taskTypes: options.taskTypes ?? ["sum"],
    ...(options.taskPolling ? { taskPolling: options.taskPolling } : {}),
    ...(options.pausedTaskTypes ? { pausedTaskTypes: options.pausedTaskTypes } : {}),
    workerId: "sumBroker",
    emit: (message) => emitted.push(message),
    pollTimeoutMs: options.pollTimeoutMs ?? 100,
    errorBackoffMs: 5,
    maxErrorBackoffMs: 20,
  });
  const tasksOut = () =>
    emitted.flatMap((m) => m.type === "tasks" ? m.tasks.map((t) => t.taskId) : []);
  return { api, emitted, broker, tasksOut };
}

const done = {
  status: "COMPLETED",
  outputData: { result: 3 },
  stale: false,
  durationMs: 1,
} as const;

Deno.test("broker: never holds more tasks than credits; polls with count = credits", async () => {
  const { api, broker, tasksOut } = setup();
  for (let i = 0; i < 5; i++) api.enqueue("sum");
  const running = broker.run();
  try {
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(api.polls.length, 0, "no credit, no poll");
    broker.handle({ type: "credit", n: 2 });
    await waitFor(() => tasksOut().length === 2, { what: "two tasks out", timeoutMs: 2000 });
    assert.equal(api.polls[0]?.count, 2);
    assert.equal(api.polls[0]?.workerId, "sumBroker");
    assert.equal(broker.held, 2);
    assert.equal(broker.credits, 0);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(tasksOut().length, 2, "no third task without credit");
    // One slot frees: report, then credit one more.
    const [first] = tasksOut();
    broker.handle({ type: "result", taskId: first!, workerId: "sum0001", outcome: done });
    broker.handle({ type: "credit", n: 1 });
    await waitFor(() => tasksOut().length === 3, { what: "third task", timeoutMs: 2000 });
    assert.ok(broker.held <= 3);
    await waitFor(() => api.updates.some((u) => u.taskId === first && u.status === "COMPLETED"), {
      what: "result delivered",
      timeoutMs: 2000,
    });
    const update = api.updates.find((u) => u.taskId === first && u.status === "COMPLETED")!;
    assert.equal(update.workerId, "sum0001", "reports the executor's worker id");
    assert.deepEqual(update.outputData, { result: 3 });
  } finally {
    broker.shutdown();
    await running;
  }
});

Deno.test("broker: drain stops polling and waits for held results to be delivered", async () => {
  const { api, broker, emitted, tasksOut } = setup();
  api.enqueue("sum");
  api.failUpdates = 2; // the result needs retries
  const running = broker.run();
  broker.handle({ type: "credit", n: 3 });
  await waitFor(() => tasksOut().length === 1, { what: "task out", timeoutMs: 2000 });
  broker.handle({ type: "drain" });
  assert.equal(broker.state, "draining");
  let finished = false;
  void running.then(() => finished = true);
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(finished, false, "drain waits for the held task");
  const pollsAtDrain = api.polls.length;
  api.enqueue("sum");
  broker.handle({
    type: "result",
    taskId: tasksOut()[0]!,
    workerId: "sum0000",
    outcome: { status: "FAILED", reasonForIncompletion: "boom", stale: false, durationMs: 1 },
  });
  await running;
  assert.ok(api.polls.length <= pollsAtDrain + 1, "at most the in-flight poll");
  assert.equal(broker.state, "stopped");
  assert.equal(emitted.at(-1)?.type, "drained");
  const final = api.updates.filter((u) => u.status === "FAILED");
  assert.equal(final.length, 1);
  assert.equal(final[0]?.reasonForIncompletion, "boom");
});

Deno.test("broker: extends the lease at a third of responseTimeoutSeconds", async () => {
  const { api, broker, tasksOut } = setup();
  api.enqueue("sum", { responseTimeoutSeconds: 1 });
  const running = broker.run();
  try {
    broker.handle({ type: "credit", n: 1 });
    await waitFor(() => tasksOut().length === 1, { what: "task out", timeoutMs: 2000 });
    broker.handle({ type: "assigned", taskId: tasksOut()[0]!, workerId: "sum0003" });
    await waitFor(() => api.updates.filter((u) => u.status === "IN_PROGRESS").length >= 2, {
      what: "two lease extensions",
      timeoutMs: 3000,
    });
    const beats = api.updates.filter((u) => u.status === "IN_PROGRESS");
    assert.ok(beats.every((u) => u.extendLease === true));
    assert.equal(beats[0]?.workerId, "sum0003");
    broker.handle({ type: "result", taskId: tasksOut()[0]!, workerId: "sum0003", outcome: done });
    await waitFor(() => api.updates.some((u) => u.status === "COMPLETED"), {
      what: "completed",
      timeoutMs: 2000,
    });
    const count = api.updates.filter((u) => u.status === "IN_PROGRESS").length;
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(
      api.updates.filter((u) => u.status === "IN_PROGRESS").length,
      count,
      "no heartbeat after the result",
    );
  } finally {
    broker.shutdown();
    await running;
  }
});

Deno.test("broker: a tick while a lease extension is under way sends none (one call per task at a time)", async () => {
  /** Holds every lease extension until `release()`. */
  class SlowLeases extends MemoryConductor {
    extensions = 0;
    #gate = Promise.withResolvers<void>();
    release(): void {
      this.#gate.resolve();
      this.#gate = Promise.withResolvers<void>();
    }
    override async updateTask(result: TaskResult, signal?: AbortSignal): Promise<string> {
      if (result.status === "IN_PROGRESS") {
        this.extensions++;
        const gate = this.#gate.promise;
        await new Promise<void>((resolve, reject) => {
          void gate.then(resolve);
          signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
        });
      }
      return await super.updateTask(result);
    }
  }
  const api = new SlowLeases();
  const { broker, tasksOut } = setup({ api });
  // A lease tick every 333 ms.
  api.enqueue("sum", { responseTimeoutSeconds: 1 });
  const running = broker.run();
  try {
    broker.handle({ type: "credit", n: 1 });
    await waitFor(() => tasksOut().length === 1 || undefined, { what: "the task out" });
    await waitFor(() => api.extensions === 1 || undefined, { what: "the first lease extension" });
    // Four more ticks while it hangs: none sends another.
    await sleep(4 * 333);
    assert.equal(api.extensions, 1);
    api.release();
    await waitFor(() => api.extensions === 2 || undefined, { what: "the next tick's extension" });
    api.release();
  } finally {
    broker.shutdown();
    await running;
  }
});

Deno.test("broker: stale outcomes are not reported; abandon reports FAILED", async () => {
  const { api, broker, emitted, tasksOut } = setup();
  api.enqueue("sum");
  api.enqueue("sum");
  const running = broker.run();
  try {
    broker.handle({ type: "credit", n: 2 });
    await waitFor(() => tasksOut().length === 2, { what: "tasks out", timeoutMs: 2000 });
    const [a, b] = tasksOut();
    broker.handle({
      type: "result",
      taskId: a!,
      workerId: "w",
      outcome: { ...done, stale: true },
    });
    broker.handle({ type: "abandon", taskId: b!, workerId: "w1", reason: "executor died" });
    await waitFor(() => emitted.filter((m) => m.type === "delivered").length === 2, {
      what: "both settled",
      timeoutMs: 2000,
    });
    assert.equal(api.updates.filter((u) => u.taskId === a).length, 0);
    const failed = api.updates.find((u) => u.taskId === b);
    assert.equal(failed?.status, "FAILED");
    assert.equal(failed?.reasonForIncompletion, "executor died");
    assert.equal(broker.held, 0);
  } finally {
    broker.shutdown();
    await running;
  }
});

Deno.test("broker: fence look-ups answer state or notFound", async () => {
  const { api, broker, emitted } = setup();
  const task = api.enqueue("sum");
  broker.handle({ type: "fence", requestId: 1, taskId: task.taskId });
  broker.handle({ type: "fence", requestId: 2, taskId: "missing" });
  await waitFor(() => emitted.filter((m) => m.type === "fence-result").length === 2, {
    what: "fence answers",
    timeoutMs: 2000,
  });
  const one = emitted.find((m) => m.type === "fence-result" && m.requestId === 1);
  assert.ok(one?.type === "fence-result");
  assert.deepEqual(one.state, {
    status: "SCHEDULED",
    workflowInstanceId: task.workflowInstanceId,
    taskId: task.taskId,
    retryCount: 0,
  });
  const two = emitted.find((m) => m.type === "fence-result" && m.requestId === 2);
  assert.ok(two?.type === "fence-result" && two.notFound === true && two.state === undefined);
});

/** Answers `getTask` with a ConductorError of each status in `failures` first, in order. */
class FlakyTaskLookups extends MemoryConductor {
  failures: (number | undefined)[] = [];
  lookups = 0;
  override getTask(taskId: string): Promise<Task> {
    this.lookups++;
    if (this.failures.length > 0) {
      const status = this.failures.shift();
      return Promise.reject(new ConductorError({ operation: "getTask", status }));
    }
    return super.getTask(taskId);
  }
}

Deno.test("broker: a fence look-up Conductor cannot answer is made again until it answers; another error, or the lease's end, is the answer", async () => {
  const api = new FlakyTaskLookups();
  const { broker, emitted, tasksOut } = setup({ api });
  const answer = (requestId: number) =>
    emitted.find((m) => m.type === "fence-result" && m.requestId === requestId);
  const task = api.enqueue("sum");
  // Unreachable (503, no answer, 502): asked again until the state comes.
  api.failures = [503, undefined, 502];
  broker.handle({ type: "fence", requestId: 1, taskId: task.taskId });
  await waitFor(() => answer(1), { what: "the first fence answered" });
  assert.equal(api.lookups, 4);
  const one = answer(1);
  assert.ok(one?.type === "fence-result" && one.state?.taskId === task.taskId, JSON.stringify(one));
  // A server error is an answer: the look-up fails at once.
  api.failures = [500];
  broker.handle({ type: "fence", requestId: 2, taskId: task.taskId });
  await waitFor(() => answer(2), { what: "the second fence answered" });
  const two = answer(2);
  assert.ok(two?.type === "fence-result" && two.state === undefined && /500/.test(two.error!));
  // A held task whose lease (1 s) ends while Conductor is still unreachable: the error.
  const short = api.enqueue("sum", { responseTimeoutSeconds: 1 });
  const running = broker.run();
  try {
    broker.handle({ type: "credit", n: 2 });
    await waitFor(() => tasksOut().includes(short.taskId) || undefined, { what: "held" });
    api.failures = Array(1_000).fill(503);
    const asked = Date.now();
    broker.handle({ type: "fence", requestId: 3, taskId: short.taskId });
    await waitFor(() => answer(3), { what: "the third fence answered" });
    const three = answer(3);
    assert.ok(three?.type === "fence-result" && /503/.test(three.error ?? ""));
    assert.ok(api.lookups > 6, `asked ${api.lookups} times`);
    assert.ok(Date.now() - asked < 3_000, `answered after ${Date.now() - asked} ms`);
  } finally {
    broker.shutdown();
    await running;
  }
});

Deno.test("broker: poll errors back off and recover; task types round-robin", async () => {
  const { api, broker, tasksOut } = setup({ taskTypes: ["a", "b"] });
  api.failNextPolls = 3;
  api.enqueue("b");
  const running = broker.run();
  try {
    broker.handle({ type: "credit", n: 1 });
    await waitFor(() => tasksOut().length === 1, { what: "task after errors", timeoutMs: 3000 });
    assert.ok(api.polls.some((p) => p.taskType === "a"));
    assert.ok(api.polls.some((p) => p.taskType === "b"));
  } finally {
    broker.shutdown();
    await running;
  }
});

Deno.test("broker: the first poll that succeeds after failed ones tells the delivery the server answers again", async () => {
  const answered = { count: 0 };
  const { api, broker } = setup({ answered, pollTimeoutMs: 20 });
  api.failNextPolls = 3;
  const running = broker.run();
  try {
    broker.handle({ type: "credit", n: 1 });
    await waitFor(() => answered.count > 0 || undefined, { what: "a poll to succeed" });
    const polls = api.polls.length;
    await waitFor(() => api.polls.length >= polls + 3 || undefined, { what: "more polls" });
    assert.equal(answered.count, 1, "once, at the first poll that succeeded, not at every poll");
    api.failNextPolls = 1;
    await waitFor(() => answered.count > 1 || undefined, { what: "a poll to succeed again" });
  } finally {
    broker.shutdown();
    await running;
  }
});

Deno.test("broker: a lease extension that succeeds tells the delivery the server answers (a busy worker may not poll)", async () => {
  const answered = { count: 0 };
  const { api, broker } = setup({ answered, pollTimeoutMs: 20 });
  // A lease tick every 333 ms; one credit, so no poll once the task is held.
  api.enqueue("sum", { responseTimeoutSeconds: 1 });
  const running = broker.run();
  try {
    broker.handle({ type: "credit", n: 1 });
    await waitFor(() => api.updates.some((u) => u.status === "IN_PROGRESS") || undefined, {
      what: "a lease extension",
    });
    await waitFor(() => answered.count > 0 || undefined, { what: "the delivery told" });
  } finally {
    broker.shutdown();
    await running;
  }
});

Deno.test("broker: when polls succeed again after failing, every held task's lease is extended at once", async () => {
  const { api, broker, tasksOut } = setup();
  // A response timeout of 600 s: the lease's own tick is 200 s away.
  api.enqueue("sum", { responseTimeoutSeconds: 600 });
  const running = broker.run();
  try {
    broker.handle({ type: "credit", n: 2 });
    await waitFor(() => tasksOut().length === 1 || undefined, { what: "the task out" });
    broker.handle({ type: "assigned", taskId: tasksOut()[0]!, workerId: "sum0001" });
    const polls = api.polls.length;
    api.failNextPolls = 2;
    await waitFor(() => api.polls.length >= polls + 3 || undefined, {
      what: "a poll after the failed ones",
    });
    await waitFor(() => api.updates.find((u) => u.status === "IN_PROGRESS"), {
      what: "the lease extended",
    });
    const beats = api.updates.filter((u) => u.status === "IN_PROGRESS");
    assert.deepEqual(beats.map((u) => [u.taskId, u.extendLease, u.workerId]), [
      [tasksOut()[0], true, "sum0001"],
    ]);
  } finally {
    broker.shutdown();
    await running;
  }
});

Deno.test("broker: a server that holds batch polls hands over a lone task at once", async () => {
  const api = new FillingConductor();
  const { broker, tasksOut } = setup({ api, pollTimeoutMs: 3000 });
  const running = broker.run();
  try {
    broker.handle({ type: "credit", n: 4 });
    // The first (short) poll finds nothing: the broker goes to a long poll for one task.
    await waitFor(() => api.started >= 2, { what: "a long poll", timeoutMs: 2000 });
    let started = Date.now();
    api.enqueue("sum");
    await waitFor(() => tasksOut().length === 1, { what: "lone task", timeoutMs: 2000 });
    assert.ok(Date.now() - started < 1000, `lone task took ${Date.now() - started} ms`);
    // Two more while three slots are free: neither waits for the poll timeout.
    started = Date.now();
    api.enqueue("sum");
    api.enqueue("sum");
    await waitFor(() => tasksOut().length === 3, { what: "two more", timeoutMs: 2000 });
    assert.ok(Date.now() - started < 1000, `two more took ${Date.now() - started} ms`);
    assert.equal(broker.held, 3);
    assert.equal(broker.credits, 1);
    for (let i = 0; i < 5; i++) api.enqueue("sum");
    await waitFor(() => tasksOut().length === 4, { what: "last slot", timeoutMs: 2000 });
    await sleep(50);
    assert.equal(tasksOut().length, 4, "never more tasks than credits");
    assert.ok(api.polls.every((poll) => poll.count >= 1 && poll.count <= 4));
  } finally {
    broker.shutdown();
    await running;
  }
});

Deno.test("broker: an idle broker long-polls instead of spinning", async () => {
  const { api, broker } = setup({ pollTimeoutMs: 100 });
  const running = broker.run();
  try {
    broker.handle({ type: "credit", n: 3 });
    await sleep(500);
    // 500 ms of 100 ms long polls (plus the first short one): about 6, never hundreds.
    assert.ok(api.polls.length >= 2 && api.polls.length <= 12, `${api.polls.length} polls`);
    assert.ok(api.polls.slice(1).every((p) => p.count === 1), "idle long polls ask for one");
  } finally {
    broker.shutdown();
    await running;
  }
});

/** Every poll waits until the test opens the gate. */
class GatedConductor extends MemoryConductor {
  started = 0;
  #gate = Promise.withResolvers<void>();
  open(): void {
    this.#gate.resolve();
  }
  override async pollBatch(taskType: string, options: PollOptions): Promise<Task[]> {
    this.started++;
    await this.#gate.promise;
    return await super.pollBatch(taskType, options);
  }
}

Deno.test("broker: a credit that arrives during a poll starts its own poll", async () => {
  const api = new GatedConductor();
  const { broker, tasksOut } = setup({ api });
  for (let i = 0; i < 5; i++) api.enqueue("sum");
  const running = broker.run();
  try {
    broker.handle({ type: "credit", n: 1 });
    await waitFor(() => api.started === 1, { what: "first poll", timeoutMs: 2000 });
    broker.handle({ type: "credit", n: 1 });
    await waitFor(() => api.started === 2, { what: "second poll in flight", timeoutMs: 2000 });
    broker.handle({ type: "credit", n: 1 });
    await sleep(30);
    assert.equal(api.started, 2, "at most two short polls at once");
    api.open();
    await waitFor(() => tasksOut().length === 3, { what: "three tasks", timeoutMs: 2000 });
    await sleep(30);
    assert.equal(tasksOut().length, 3, "never more tasks than credits");
    assert.equal(api.polls.reduce((sum, p) => sum + p.count, 0), 3, "counts add up to credits");
  } finally {
    broker.shutdown();
    await running;
  }
});

Deno.test("broker: each type polls its own domain; a domain's tasks are found only there", async () => {
  const { api, broker, tasksOut } = setup({
    taskTypes: ["a", "b"],
    taskPolling: { a: { domain: "blue" } },
  });
  const blue = api.enqueue("a", { domain: "blue" });
  api.enqueue("a"); // the default queue: not this broker's
  const plainB = api.enqueue("b");
  api.enqueue("b", { domain: "blue" }); // b polls the default queue
  const running = broker.run();
  try {
    broker.handle({ type: "credit", n: 4 });
    await waitFor(() => tasksOut().length === 2, { what: "two tasks", timeoutMs: 2000 });
    await sleep(100);
    assert.deepEqual(tasksOut().sort(), [blue.taskId, plainB.taskId].sort());
    assert.ok(api.polls.filter((p) => p.taskType === "a").every((p) => p.domain === "blue"));
    assert.ok(api.polls.filter((p) => p.taskType === "b").every((p) => p.domain === undefined));
    assert.deepEqual(broker.taskTypeStates().map((t) => [t.taskType, t.state, t.domain]), [
      ["a", "polling", "blue"],
      ["b", "polling", undefined],
    ]);
  } finally {
    broker.shutdown();
    await running;
  }
});

/** Holds final (non-IN_PROGRESS) updates until the test lets them through. */
class SlowResults extends MemoryConductor {
  #gate = Promise.withResolvers<void>();
  held = 0;
  release(): void {
    this.#gate.resolve();
  }
  override async updateTask(result: TaskResult): Promise<string> {
    if (result.status !== "IN_PROGRESS") {
      this.held++;
      await this.#gate.promise;
    }
    return await super.updateTask(result);
  }
}

Deno.test("broker: a type's concurrency caps its tasks until each result reached the server", async () => {
  const api = new SlowResults();
  const { broker, tasksOut } = setup({
    api,
    taskTypes: ["heavy", "light"],
    taskPolling: { heavy: { concurrency: 1 } },
  });
  for (let i = 0; i < 3; i++) api.enqueue("heavy");
  for (let i = 0; i < 2; i++) api.enqueue("light");
  const running = broker.run();
  const typeOf = (taskId: string) => api.tasks.get(taskId)!.taskType;
  try {
    broker.handle({ type: "credit", n: 3 });
    await waitFor(() => tasksOut().length === 3, { what: "three tasks", timeoutMs: 2000 });
    await sleep(50);
    const first = tasksOut().map(typeOf);
    assert.equal(first.filter((t) => t === "heavy").length, 1, first.join());
    assert.ok(api.polls.filter((p) => p.taskType === "heavy").every((p) => p.count <= 1));
    assert.equal(broker.taskTypeStates()[0]?.inFlight, 1);
    // The heavy task ends; its result waits on the server: the cap still holds.
    const heavy = tasksOut().find((id) => typeOf(id) === "heavy")!;
    broker.handle({ type: "result", taskId: heavy, workerId: "w0", outcome: done });
    broker.handle({ type: "credit", n: 1 });
    await waitFor(() => api.held === 1, { what: "result in delivery", timeoutMs: 2000 });
    await sleep(100);
    assert.equal(tasksOut().map(typeOf).filter((t) => t === "heavy").length, 1);
    // Taken by the server: the next heavy task may come.
    api.release();
    await waitFor(() => tasksOut().map(typeOf).filter((t) => t === "heavy").length === 2, {
      what: "second heavy task",
      timeoutMs: 2000,
    });
    assert.equal(broker.taskTypeStates()[0]?.inFlight, 1);
  } finally {
    api.release();
    broker.shutdown();
    await running;
  }
});

Deno.test("broker: fixed-interval polling never waits on the server and rests after an empty poll", async () => {
  const { api, broker, tasksOut } = setup({
    pollTimeoutMs: 1000,
    taskPolling: { sum: { pollIntervalMs: 150, batchSize: 2 } },
  });
  const running = broker.run();
  try {
    broker.handle({ type: "credit", n: 5 });
    await sleep(500);
    const idle = api.polls.length;
    assert.ok(idle >= 2 && idle <= 5, `${idle} polls in 500 ms at 150 ms intervals`);
    assert.ok(api.polls.every((p) => p.timeoutMs === 0), "never a long poll");
    for (let i = 1; i < api.polls.length; i++) {
      const gap = api.polls[i]!.at - api.polls[i - 1]!.at;
      assert.ok(gap >= 140, `gap of ${gap} ms between idle polls`);
    }
    for (let i = 0; i < 5; i++) api.enqueue("sum");
    await waitFor(() => tasksOut().length === 5, { what: "five tasks", timeoutMs: 2000 });
    assert.ok(api.polls.every((p) => p.count <= 2), "batchSize caps each poll");
  } finally {
    broker.shutdown();
    await running;
  }
});

Deno.test("broker: paused types are never polled; with every type paused it polls nothing", async () => {
  const { api, broker } = setup({ taskTypes: [], pausedTaskTypes: ["resize"] });
  api.enqueue("resize");
  const running = broker.run();
  broker.handle({ type: "credit", n: 2 });
  await sleep(100);
  assert.equal(api.polls.length, 0);
  assert.deepEqual(broker.taskTypeStates(), [{
    taskType: "resize",
    state: "paused",
    domain: undefined,
    inFlight: 0,
    concurrency: undefined,
  }]);
  broker.handle({ type: "drain" });
  await running;
  assert.equal(broker.state, "stopped");
});

Deno.test("broker: out-of-range options are RangeErrors, never clamped", () => {
  const api = new MemoryConductor();
  const base = {
    api,
    delivery: new ResultDelivery({ api }),
    taskTypes: ["sum"],
    workerId: "sumBroker",
    emit: () => {},
  };
  assert.throws(() => new Broker({ ...base, pollTimeoutMs: 6000 }), RangeError);
  assert.throws(
    () => new Broker({ ...base, pollTimeoutMs: 100, shortPollTimeoutMs: 200 }),
    /shortPollTimeoutMs must be within 0\.\.pollTimeoutMs \(100\), got 200/,
  );
  assert.throws(() => new Broker({ ...base, maxConcurrentPolls: 0 }), RangeError);
  assert.throws(() => new Broker({ ...base, maxConcurrentPolls: 1.5 }), RangeError);
  assert.doesNotThrow(() => new Broker({ ...base, shortPollTimeoutMs: 5000 }));
});

/** A Conductor with `update-v2`: the update, then the next task of the type (and domain). */
class UpdateV2Conductor extends MemoryConductor {
  v2Calls = 0;
  async updateTaskV2(result: TaskResult): Promise<Task | undefined> {
    this.v2Calls++;
    await this.updateTask(result);
    const task = this.tasks.get(result.taskId)!;
    const [next] = await this.pollBatch(task.taskType, {
      count: 1,
      timeoutMs: 0,
      workerId: result.workerId ?? "",
      ...(task.domain ? { domain: task.domain } : {}),
    });
    return next;
  }
}

Deno.test("broker: a result with its slot's credit takes the next task in the same call (update-v2)", async () => {
  const api = new UpdateV2Conductor();
  const { broker, tasksOut } = setup({ api });
  for (let i = 0; i < 4; i++) api.enqueue("sum");
  const running = broker.run();
  try {
    broker.handle({ type: "credit", n: 1 });
    await waitFor(() => tasksOut().length === 1, { what: "first task", timeoutMs: 2000 });
    const polls = api.polls.length;
    for (let i = 1; i < 4; i++) {
      broker.handle({
        type: "result",
        taskId: tasksOut()[i - 1]!,
        workerId: "sum0000",
        outcome: done,
        credit: 1,
      });
      await waitFor(() => tasksOut().length === i + 1, { what: `task ${i + 1}`, timeoutMs: 2000 });
      assert.equal(broker.held, 1, "never more tasks than credits");
      assert.equal(broker.credits, 0);
    }
    // Polled in the updates (which the pollBatch of the fake records too: one per update).
    assert.equal(api.v2Calls, 3);
    assert.equal(api.polls.length, polls + 3, "no poll besides the updates' own");
    // The queue is empty: the last result's update brings nothing, the credit goes back to
    // the poll loop, which polls for it.
    broker.handle({
      type: "result",
      taskId: tasksOut()[3]!,
      workerId: "sum0000",
      outcome: done,
      credit: 1,
    });
    await waitFor(() => api.polls.length > polls + 4 || undefined, {
      what: "a poll for the free credit",
      timeoutMs: 2000,
    });
    assert.equal(api.v2Calls, 4);
    assert.equal(api.updates.filter((u) => u.status === "COMPLETED").length, 4);
    api.enqueue("sum");
    await waitFor(() => tasksOut().length === 5, {
      what: "a task found by polling",
      timeoutMs: 2000,
    });
  } finally {
    broker.shutdown();
    await running;
  }
});

Deno.test("broker: without a free credit, or draining, a result is a plain update", async () => {
  const api = new UpdateV2Conductor();
  const { broker, tasksOut, emitted } = setup({ api });
  for (let i = 0; i < 4; i++) api.enqueue("sum");
  const running = broker.run();
  broker.handle({ type: "credit", n: 2 });
  await waitFor(() => tasksOut().length === 2, { what: "two tasks", timeoutMs: 2000 });
  // No credit with the result (its slot is not free): nothing more is taken.
  broker.handle({ type: "result", taskId: tasksOut()[0]!, workerId: "w0", outcome: done });
  await waitFor(() => api.updates.length === 1 || undefined, { what: "update", timeoutMs: 2000 });
  assert.equal(api.v2Calls, 0);
  await sleep(50);
  assert.equal(tasksOut().length, 2);
  // Draining: the credit that comes with a result takes nothing either.
  broker.handle({ type: "drain" });
  broker.handle({
    type: "result",
    taskId: tasksOut()[1]!,
    workerId: "w1",
    outcome: done,
    credit: 1,
  });
  await running;
  assert.equal(api.v2Calls, 0);
  assert.equal(tasksOut().length, 2);
  assert.equal(api.updates.length, 2);
  assert.equal(emitted.at(-1)?.type, "drained");
});

Deno.test("broker: a next task that arrives while draining is still held until its result", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  const api = new (class extends UpdateV2Conductor {
    override async updateTaskV2(result: TaskResult): Promise<Task | undefined> {
      await gate; // the drain arrives while this update is on its way
      return await super.updateTaskV2(result);
    }
  })();
  const { broker, tasksOut, emitted } = setup({ api });
  for (let i = 0; i < 2; i++) api.enqueue("sum");
  const running = broker.run();
  broker.handle({ type: "credit", n: 1 });
  await waitFor(() => tasksOut().length === 1, { what: "first task", timeoutMs: 2000 });
  broker.handle({
    type: "result",
    taskId: tasksOut()[0]!,
    workerId: "w0",
    outcome: done,
    credit: 1,
  });
  broker.handle({ type: "drain" });
  release();
  await waitFor(() => tasksOut().length === 2, { what: "the next task", timeoutMs: 2000 });
  let finished = false;
  void running.then(() => finished = true);
  await sleep(100);
  assert.equal(finished, false, "the drain waits for the task the update brought");
  assert.equal(broker.held, 1);
  broker.handle({ type: "result", taskId: tasksOut()[1]!, workerId: "w0", outcome: done });
  await running;
  assert.equal(api.updates.filter((u) => u.status === "COMPLETED").length, 2);
  assert.equal(emitted.at(-1)?.type, "drained");
});

Deno.test("broker: tasks a server hands over beyond a poll's count are held but spend no credit", async () => {
  /** Answers every poll with one task more than it asked for (a misbehaving server). */
  class GreedyConductor extends MemoryConductor {
    override pollBatch(taskType: string, options: PollOptions): Promise<Task[]> {
      return super.pollBatch(taskType, { ...options, count: options.count + 1 });
    }
  }
  const api = new GreedyConductor();
  const { broker, tasksOut } = setup({ api });
  for (let i = 0; i < 6; i++) api.enqueue("sum");
  const running = broker.run();
  try {
    broker.handle({ type: "credit", n: 2 });
    await waitFor(() => tasksOut().length === 3, { what: "three tasks out", timeoutMs: 2000 });
    assert.equal(broker.held, 3, "the extra task is held (dropping it would leave it to time out)");
    assert.equal(broker.credits, 0, "two credits spent, never below zero");
    broker.handle({ type: "credit", n: 1 });
    await waitFor(() => tasksOut().length === 5, { what: "the next poll", timeoutMs: 2000 });
    assert.equal(api.polls.at(-1)?.count, 2, "the poll asked for the one free credit (+1)");
    assert.equal(broker.credits, 0);
  } finally {
    broker.shutdown();
    await running;
  }
});
