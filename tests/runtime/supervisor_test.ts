/**
 * The supervisor on its own: its children are in-memory fakes behind the ChildSpawner seam,
 * so the tests see every message it sends and decide every answer (no process, no server).
 */
import assert from "node:assert/strict";
import type { ChildExit, ChildHandle } from "../../src/runtime/_child.ts";
import type {
  BrokerInit,
  ExecutorInit,
  FromBroker,
  FromExecutor,
  ToBroker,
  ToExecutor,
} from "../../src/runtime/protocol.ts";
import {
  compileSupervisorOptions,
  Supervisor,
  type SupervisorOptions,
} from "../../src/runtime/supervisor.ts";
import { waitFor } from "../../src/util/sleep.ts";

/** Pids no live process has: the sweeps after an executor's death must match nothing. */
let nextPid = 3_999_000;

/** A child in memory: what the supervisor sends is recorded and answered by `answer`. */
class FakeChild<In, Out> implements ChildHandle<In, Out> {
  readonly pid = nextPid++;
  readonly received: Out[] = [];
  readonly #inbox: In[] = [];
  #wake: (() => void) | undefined;
  #ended = false;
  readonly #exit = Promise.withResolvers<ChildExit>();
  readonly exit: Promise<ChildExit> = this.#exit.promise;

  constructor(readonly answer: (message: Out, child: FakeChild<In, Out>) => void) {}

  get messages(): AsyncIterable<In> {
    return this.#drainInbox();
  }

  async *#drainInbox(): AsyncGenerator<In> {
    while (true) {
      const next = this.#inbox.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  /** The child says `message` to the supervisor. */
  say(message: In): void {
    if (this.#ended) return;
    this.#inbox.push(message);
    this.#wake?.();
  }

  send(message: Out): Promise<boolean> {
    if (this.#ended) return Promise.resolve(false);
    this.received.push(message);
    queueMicrotask(() => this.answer(message, this));
    return Promise.resolve(true);
  }

  kill(signal: Deno.Signal): void {
    this.end({ code: 128 + 9, signal });
  }

  end(exit: ChildExit): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#wake?.();
    this.#exit.resolve(exit);
  }
}

type FakeBroker = FakeChild<FromBroker, ToBroker>;
type FakeExecutor = FakeChild<FromExecutor, ToExecutor>;

const TASK = {
  taskId: "t1",
  taskType: "sum",
  workflowInstanceId: "wf1",
  status: "IN_PROGRESS",
  retryCount: 0,
};

/**
 * A broker that hands out `tasks` on its first credits (a credit message, or the credit a
 * result carries) and delivers every result.
 */
function fakeBroker(tasks: (typeof TASK)[]): FakeBroker {
  const queue = [...tasks];
  return new FakeChild<FromBroker, ToBroker>((message, child) => {
    switch (message.type) {
      case "init":
        return child.say({ type: "ready", pid: child.pid });
      case "credit": {
        const given = queue.splice(0, message.n);
        if (given.length > 0) child.say({ type: "tasks", tasks: given });
        return;
      }
      case "result": {
        child.say({ type: "delivered", taskId: message.taskId, how: "delivered" });
        const given = queue.splice(0, message.credit ?? 0);
        if (given.length > 0) child.say({ type: "tasks", tasks: given });
        return;
      }
      case "abandon":
        return child.say({ type: "delivered", taskId: message.taskId, how: "delivered" });
      case "drain":
        return child.say({ type: "drained" });
      case "shutdown":
        return child.end({ code: 0, signal: null });
    }
  });
}

/** An executor that completes every attempt at once, unless `hang` says to keep it. */
function fakeExecutor(hang = false): FakeExecutor {
  return new FakeChild<FromExecutor, ToExecutor>((message, child) => {
    switch (message.type) {
      case "init":
        return child.say({ type: "ready", pid: child.pid });
      case "attempt":
        if (hang) return;
        return child.say({
          type: "outcome",
          attemptId: message.attemptId,
          outcome: { status: "COMPLETED", outputData: { result: 5 }, stale: false, durationMs: 1 },
        });
      case "shutdown":
        return child.end({ code: 0, signal: null });
    }
  });
}

async function withOptions(
  spawner: SupervisorOptions["spawner"],
  fn: (options: SupervisorOptions) => Promise<void>,
  extra: Partial<SupervisorOptions> = {},
): Promise<void> {
  const workspaceRoot = await Deno.makeTempDir({ prefix: "perago-sup-" });
  try {
    await fn({
      concurrency: 1,
      workspaceRoot,
      workspaceGcTtlMs: 86_400_000,
      workspaceGcIntervalMs: 3_600_000,
      shutdownForceKillAfterMs: undefined,
      brokerInit: { workerId: "sumBroker" } as BrokerInit,
      executorInit: (slot) => ({ slot, workerId: `sum000${slot}` }) as ExecutorInit,
      spawner,
      ...extra,
    });
  } finally {
    await Deno.remove(workspaceRoot, { recursive: true });
  }
}

/**
 * A spawner of `broker` and of executors made by `make` (told how many came before), each
 * kept in `executors` in spawn order.
 */
function recordingSpawner(broker: FakeBroker, make: (nth: number) => FakeExecutor) {
  const executors: FakeExecutor[] = [];
  const spawner = {
    broker: () => broker,
    executor: () => {
      const executor = make(executors.length);
      executors.push(executor);
      return executor;
    },
  };
  return { spawner, executors };
}

Deno.test("supervisor: a polled task goes to an idle executor and its result to the broker; a drain stops every child, exit 0", async () => {
  const broker = fakeBroker([TASK]);
  const executor = fakeExecutor();
  await withOptions({ broker: () => broker, executor: () => executor }, async (options) => {
    const supervisor = new Supervisor(options);
    const run = supervisor.run();
    const result = await waitFor(
      () => broker.received.find((m) => m.type === "result"),
      { timeoutMs: 5_000, what: "the result reached the broker" },
    );
    assert.deepEqual(result, {
      type: "result",
      taskId: "t1",
      workerId: "sum0000",
      outcome: { status: "COMPLETED", outputData: { result: 5 }, stale: false, durationMs: 1 },
      // The slot the result freed: its credit rides with the result (the broker may take the
      // next task in the call that delivers this one).
      credit: 1,
    });
    const attempt = executor.received.find((m) => m.type === "attempt");
    assert.equal(attempt?.type === "attempt" && attempt.task.taskId, "t1");
    assert.deepEqual(
      broker.received.find((m) => m.type === "assigned"),
      { type: "assigned", taskId: "t1", workerId: "sum0000" },
    );
    assert.equal(supervisor.state, "running");
    supervisor.shutdown();
    assert.equal(await run, 0);
    assert.equal(supervisor.state, "stopped");
    assert.deepEqual(await broker.exit, { code: 0, signal: null });
    assert.deepEqual(await executor.exit, { code: 0, signal: null });
  });
});

Deno.test("supervisor: an executor that dies in an attempt is reported to the broker and restarted after its backoff", async () => {
  const broker = fakeBroker([TASK]);
  const { spawner, executors } = recordingSpawner(broker, (nth) => fakeExecutor(nth === 0)); // the first one hangs
  await withOptions(spawner, async (options) => {
    const supervisor = new Supervisor(options);
    const run = supervisor.run();
    await waitFor(() => executors[0]?.received.some((m) => m.type === "attempt") || undefined, {
      timeoutMs: 5_000,
      what: "the first executor got the attempt",
    });
    executors[0]!.kill("SIGKILL");
    const abandon = await waitFor(() => broker.received.find((m) => m.type === "abandon"), {
      timeoutMs: 5_000,
      what: "the attempt abandoned",
    });
    assert.equal(abandon.type === "abandon" && abandon.taskId, "t1");
    await waitFor(() => executors.length === 2 || undefined, {
      timeoutMs: 5_000,
      what: "the executor restarted",
    });
    supervisor.shutdown();
    assert.equal(await run, 0);
  }, { restartBackoffMs: [10] });
});

/**
 * An executor whose attempt's directory went to the warm pool: its outcome says `recycle`,
 * and it exits (code 0) when the test calls `end` on it.
 */
function recyclingExecutor(): FakeExecutor {
  return new FakeChild<FromExecutor, ToExecutor>((message, child) => {
    switch (message.type) {
      case "init":
        return child.say({ type: "ready", pid: child.pid });
      case "attempt":
        return child.say({
          type: "outcome",
          attemptId: message.attemptId,
          outcome: { status: "COMPLETED", stale: false, durationMs: 1 },
          recycle: true,
        });
      case "shutdown":
        return child.end({ code: 0, signal: null });
    }
  });
}

/** Counts what the supervisor tells its telemetry about executors. */
function executorCounts() {
  const counts = { restarted: 0, recycled: 0 };
  const telemetry: SupervisorOptions["telemetry"] = {
    childReport: () => {},
    attemptStarted: () => {},
    attemptEnded: () => {},
    resultSent: () => {},
    resultLeft: () => {},
    executorRestarted: () => void counts.restarted++,
    executorRecycled: () => void counts.recycled++,
    slotsChanged: () => {},
  };
  return { counts, telemetry };
}

Deno.test("supervisor: an executor whose exit comes in the turn of its last outcome (a Worker's exit event) has that outcome counted first: a recycle, not a death in the attempt", async () => {
  const broker = fakeBroker([TASK]);
  const { spawner, executors } = recordingSpawner(
    broker,
    (nth) =>
      nth > 0 ? fakeExecutor() : new FakeChild<FromExecutor, ToExecutor>((message, child) => {
        if (message.type === "init") return child.say({ type: "ready", pid: child.pid });
        if (message.type !== "attempt") return;
        child.say({
          type: "outcome",
          attemptId: message.attemptId,
          outcome: { status: "COMPLETED", stale: false, durationMs: 1 },
          recycle: true,
        });
        child.end({ code: 0, signal: null });
      }),
  );
  const { counts, telemetry } = executorCounts();
  await withOptions(spawner, async (options) => {
    const supervisor = new Supervisor(options);
    const run = supervisor.run();
    await waitFor(() => executors.length === 2 || undefined, {
      timeoutMs: 5_000,
      what: "the recycled executor's replacement",
    });
    assert.deepEqual(counts, { restarted: 0, recycled: 1 });
    assert.ok(broker.received.some((m) => m.type === "result" && m.taskId === "t1"));
    assert.ok(!broker.received.some((m) => m.type === "abandon"));
    supervisor.shutdown();
    assert.equal(await run, 0);
  }, { telemetry });
});

Deno.test("supervisor: a recycling executor's slot takes no task; it is replaced at once (no backoff, not a restart) and the replacement gets the next task", async () => {
  const broker = fakeBroker([TASK, { ...TASK, taskId: "t2" }]);
  const { spawner, executors } = recordingSpawner(
    broker,
    (nth) => nth === 0 ? recyclingExecutor() : slowStarter(),
  );
  // The replacement says `ready` only when the test lets it.
  const replacementReady = Promise.withResolvers<void>();
  const slowStarter = () => {
    const ready = fakeExecutor();
    return new FakeChild<FromExecutor, ToExecutor>((message, child) => {
      if (message.type !== "init") return ready.answer(message, child);
      void replacementReady.promise.then(() => child.say({ type: "ready", pid: child.pid }));
    });
  };
  const { counts, telemetry } = executorCounts();
  await withOptions(spawner, async (options) => {
    const supervisor = new Supervisor(options);
    const run = supervisor.run();
    const result = await waitFor(() => broker.received.find((m) => m.type === "result"), {
      timeoutMs: 5_000,
      what: "the first result reached the broker",
    });
    // The slot is not free: no credit rides with the result, none is granted while the
    // executor ends.
    assert.equal(result.type === "result" && result.credit, undefined);
    assert.equal(broker.received.filter((m) => m.type === "credit").length, 1);
    assert.equal(supervisor.status.executorsUp, 1);
    executors[0]!.end({ code: 0, signal: null });
    // A backoff of a minute would outlast this wait: the replacement starts at once.
    await waitFor(() => executors.length === 2 || undefined, {
      timeoutMs: 5_000,
      what: "the replacement spawned",
    });
    // Until it is ready: no credit for its slot, and it counts as up (no /readyz flap).
    assert.equal(broker.received.filter((m) => m.type === "credit").length, 1);
    assert.equal(supervisor.status.executorsUp, 1);
    replacementReady.resolve();
    const second = await waitFor(
      () => broker.received.filter((m) => m.type === "result")[1],
      { timeoutMs: 5_000, what: "the replacement ran the second task" },
    );
    assert.equal(second.type === "result" && second.taskId, "t2");
    assert.equal(executors.length, 2);
    assert.ok(executors[1]!.received.some((m) => m.type === "attempt"));
    assert.deepEqual(counts, { restarted: 0, recycled: 1 });
    assert.ok(!broker.received.some((m) => m.type === "abandon"));
    supervisor.shutdown();
    assert.equal(await run, 0);
  }, { restartBackoffMs: [60_000], telemetry });
});

Deno.test("supervisor: an executor recycling during a drain is not replaced; the drain ends with exit 0", async () => {
  const broker = fakeBroker([TASK]);
  const { spawner, executors } = recordingSpawner(broker, () => recyclingExecutor());
  const { counts, telemetry } = executorCounts();
  await withOptions(spawner, async (options) => {
    const supervisor = new Supervisor(options);
    const run = supervisor.run();
    await waitFor(() => broker.received.find((m) => m.type === "result"), {
      timeoutMs: 5_000,
      what: "the result reached the broker",
    });
    supervisor.shutdown();
    await waitFor(() => broker.received.find((m) => m.type === "drain"), {
      timeoutMs: 5_000,
      what: "the drain began",
    });
    executors[0]!.end({ code: 0, signal: null });
    assert.equal(await run, 0);
    assert.equal(executors.length, 1);
    assert.deepEqual(counts, { restarted: 0, recycled: 1 });
  }, { telemetry });
});

Deno.test("supervisor: the broker's death stops the runtime: state failed, exit 1, executors killed", async () => {
  const broker = fakeBroker([]);
  const executor = fakeExecutor();
  await withOptions({ broker: () => broker, executor: () => executor }, async (options) => {
    const supervisor = new Supervisor(options);
    const run = supervisor.run();
    await waitFor(() => supervisor.state === "running" || undefined, {
      timeoutMs: 5_000,
      what: "running",
    });
    broker.kill("SIGKILL");
    assert.equal(await run, 1);
    assert.equal(supervisor.state, "failed");
    assert.equal((await executor.exit).signal, "SIGKILL");
  });
});

Deno.test("supervisor (lanes): each executor's lane is opened at the broker with a fresh secret before it starts; no credits; a death closes the lane with the reason, a lost lane kills the executor, a clean exit is a recycle", async () => {
  // The broker of lanes: it answers only init and drain; attempts go over the lanes.
  const broker = new FakeChild<FromBroker, ToBroker>((message, child) => {
    if (message.type === "init") child.say({ type: "ready", pid: child.pid });
    if (message.type === "drain") child.say({ type: "drained" });
    if (message.type === "shutdown") child.end({ code: 0, signal: null });
  });
  const { spawner, executors } = recordingSpawner(broker, () => fakeExecutor(true));
  const { counts, telemetry } = executorCounts();
  await withOptions(spawner, async (options) => {
    const supervisor = new Supervisor(options);
    const run = supervisor.run();
    const initOf = (executor: FakeExecutor) => {
      const init = executor.received.find((m) => m.type === "init");
      return init?.type === "init" ? init.init.lane : undefined;
    };
    const opened = () =>
      broker.received.filter((m): m is Extract<ToBroker, { type: "lane-open" }> =>
        m.type === "lane-open"
      );
    await waitFor(() => executors[0] && initOf(executors[0]), {
      timeoutMs: 5_000,
      what: "the first executor's init",
    });
    const first = initOf(executors[0]!)!;
    assert.equal(first.path, "/tmp/lanes/0.sock");
    assert.deepEqual(opened(), [
      { type: "lane-open", slot: 0, id: first.id, workerId: "sum0000", secret: first.secret },
    ]);
    assert.match(first.secret, /^[0-9a-f]{64}$/);
    await waitFor(() => supervisor.status.executorsUp === 1 || undefined, {
      timeoutMs: 5_000,
      what: "the executor ready",
    });
    assert.ok(!broker.received.some((m) => m.type === "credit"), "no credit over lanes");

    // An attempt the broker reports, then the executor dies in it.
    broker.say({
      type: "lane-attempt",
      id: first.id,
      attemptId: "a1",
      taskId: "t1",
      taskType: "sum",
    });
    await waitFor(() => executors[0]!.received.length > 0 || undefined, {
      timeoutMs: 1_000,
      what: "a turn",
    });
    // Task code writing protocol lines to stdout: over lanes, fences and outcomes go to the
    // broker only, so these are ignored.
    executors[0]!.say({ type: "fence", requestId: 1, taskId: "t1" });
    executors[0]!.say({
      type: "outcome",
      attemptId: "a1",
      outcome: { status: "COMPLETED", stale: false, durationMs: 1 },
    });
    executors[0]!.say({ type: "metrics", records: [] }); // read after the two above
    await waitFor(() => supervisor.status.executorsUp === 1 || undefined, {
      timeoutMs: 1_000,
      what: "a turn",
    });
    executors[0]!.kill("SIGKILL");
    const closed = await waitFor(() => broker.received.find((m) => m.type === "lane-closed"), {
      timeoutMs: 5_000,
      what: "the lane closed",
    });
    assert.equal(closed.type === "lane-closed" && closed.id, first.id);
    assert.match(
      closed.type === "lane-closed" ? closed.reason : "",
      /exited during the attempt \(signal SIGKILL\)/,
    );
    assert.ok(!broker.received.some((m) => m.type === "abandon"), "the broker reports it");
    assert.ok(
      !broker.received.some((m) => m.type === "fence" || m.type === "result"),
      "stdout fences and outcomes are not relayed",
    );

    // The restarted executor: a new lane, a new secret; its lane lost: it is killed.
    await waitFor(() => executors[1] && initOf(executors[1]), {
      timeoutMs: 5_000,
      what: "the restarted executor's init",
    });
    const second = initOf(executors[1]!)!;
    assert.notEqual(second.id, first.id);
    assert.notEqual(second.secret, first.secret);
    broker.say({ type: "lane-lost", id: second.id, reason: "its executor closed its lane" });
    assert.deepEqual(await executors[1]!.exit, { code: 137, signal: "SIGKILL" });

    // The third exits 0 on its own: a recycle, replaced at once.
    await waitFor(() => executors[2] && initOf(executors[2]), {
      timeoutMs: 5_000,
      what: "the third executor's init",
    });
    executors[2]!.end({ code: 0, signal: null });
    await waitFor(() => executors[3] || undefined, { timeoutMs: 1_000, what: "replaced at once" });
    assert.equal(counts.recycled, 1);
    assert.equal(counts.restarted, 2);
    supervisor.shutdown();
    assert.equal(await run, 0);
  }, { restartBackoffMs: [10], lanePaths: ["/tmp/lanes/0.sock"], telemetry });
});

Deno.test("compileSupervisorOptions: defaults filled and frozen; bad values are RangeErrors, not clamped", async () => {
  const unused = () => {
    throw new Error("not spawned");
  };
  await withOptions({ broker: unused, executor: unused }, (options) => {
    const compiled = compileSupervisorOptions(options);
    assert.ok(Object.isFrozen(compiled));
    assert.deepEqual(compiled.restartBackoffMs, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000]);
    assert.equal(compiled.stableAfterMs, 60_000);
    assert.equal(compiled.startTimeoutMs, 60_000);
    assert.equal(compiled.forcedBrokerGraceMs, 10_000);
    assert.equal(compiled.childrenInProcess, false);
    assert.throws(() => compileSupervisorOptions({ ...options, concurrency: 0 }), RangeError);
    assert.throws(() => compileSupervisorOptions({ ...options, restartBackoffMs: [] }), RangeError);
    assert.throws(() => compileSupervisorOptions({ ...options, stableAfterMs: -1 }), RangeError);
    return Promise.resolve();
  });
});
