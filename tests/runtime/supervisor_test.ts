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
  const executors: FakeExecutor[] = [];
  const spawner = {
    broker: () => broker,
    executor: () => {
      const executor = fakeExecutor(executors.length === 0); // the first one hangs
      executors.push(executor);
      return executor;
    },
  };
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
