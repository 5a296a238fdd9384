/**
 * ResultDelivery: results survive a Conductor outage (503s, a paused server) and are
 * delivered once when it returns; 404 drops, other 4xx fail, deadlines and aborts end the
 * wait; per-task order with stale heartbeats superseded.
 */
import assert from "node:assert/strict";
import { ConductorClient } from "../../src/conductor/client.ts";
import {
  type DeliveryOutcome,
  ResultDelivery,
  ResultDeliveryError,
} from "../../src/conductor/delivery.ts";
import { ConductorError, ConductorNotFoundError } from "../../src/conductor/errors.ts";
import type { TaskResult } from "../../src/conductor/api.ts";
import {
  type ConductorServerHandle,
  startConductorServer,
} from "../../src/devstack/conductor/server.ts";
import { sleep, waitFor } from "../../src/util/sleep.ts";

async function withPolledTask(
  fn: (server: ConductorServerHandle, client: ConductorClient, task: TaskResult) => Promise<void>,
): Promise<void> {
  const server = await startConductorServer();
  try {
    const client = new ConductorClient({
      serverUrl: server.url,
      requestTimeoutMs: 300,
      retry: { attempts: 1 },
    });
    const name = `deliv_${crypto.randomUUID().slice(0, 8)}`;
    await client.registerTaskDefs([{ name, retryCount: 0 }]);
    await client.upsertWorkflowDefs([{
      name: `${name}_wf`,
      version: 1,
      tasks: [
        { name, taskReferenceName: "one", type: "SIMPLE" },
        { name, taskReferenceName: "two", type: "SIMPLE" },
      ],
    }]);
    const workflowInstanceId = await client.startWorkflow(`${name}_wf`, {});
    const [task] = await client.pollBatch(name, { count: 1, timeoutMs: 1000, workerId: "w" });
    assert.ok(task);
    await fn(server, client, { workflowInstanceId, taskId: task.taskId, status: "COMPLETED" });
  } finally {
    await server.close();
  }
}

Deno.test("delivery: a result posted during a 503 outage is delivered once it ends", async () => {
  await withPolledTask(async (server, client, result) => {
    const delivery = new ResultDelivery({ api: client, baseDelayMs: 5, maxDelayMs: 20 });
    server.faults.set({ errorRate: 1, pathFilter: "/api/tasks" });
    server.stats.reset();
    const outcome = delivery.deliver({ ...result, outputData: { n: 1 } });
    assert.equal(delivery.pending, 1);
    await waitFor(() => server.faults.injected.errors >= 3, { what: "a few failed posts" });
    assert.equal(server.stats.count("updateTask"), 0);
    server.faults.reset();
    const done = await outcome;
    assert.equal(done.kind, "delivered");
    assert.ok(done.attempts >= 4);
    assert.equal(delivery.pending, 0);
    await delivery.drain(AbortSignal.timeout(1000));
    assert.equal(server.stats.count("updateTask"), 1, "delivered exactly once");
    const task = await client.getTask(result.taskId);
    assert.equal(task.status, "COMPLETED");
    assert.deepEqual(task.outputData, { n: 1 });
  });
});

Deno.test("delivery: a paused server (requests hang) does not lose or double the result", async () => {
  await withPolledTask(async (server, client, result) => {
    let calls = 0;
    const counted = {
      updateTask: (r: TaskResult, signal?: AbortSignal) => {
        calls++;
        return client.updateTask(r, signal);
      },
    };
    const delivery = new ResultDelivery({ api: counted, baseDelayMs: 10, maxDelayMs: 50 });
    server.faults.set({ paused: true, pathFilter: "/api/tasks" });
    const outcome = delivery.deliver(result);
    // The client times out (300 ms) and tries again while the server hangs.
    await waitFor(() => calls >= 3, { what: "posts to time out and be retried" });
    assert.equal(delivery.pending, 1);
    server.faults.set({ paused: false });
    assert.equal((await outcome).kind, "delivered");
    await waitFor(async () => (await client.getWorkflow(result.workflowInstanceId)).tasks.length, {
      what: "the workflow to advance",
    });
    // Late duplicates of the hung posts were no-ops: the next task was scheduled once.
    const workflow = await client.getWorkflow(result.workflowInstanceId);
    assert.deepEqual(workflow.tasks.map((t) => t.referenceTaskName), ["one", "two"]);
    assert.equal(workflow.tasks[0]?.status, "COMPLETED");
  });
});

Deno.test("delivery: 404 drops the result, other 4xx fail it, the deadline ends retrying", async () => {
  await withPolledTask(async (server, client, result) => {
    const delivery = new ResultDelivery({ api: client, baseDelayMs: 5, maxDelayMs: 10 });
    const gone = await delivery.deliver({ ...result, workflowInstanceId: crypto.randomUUID() });
    assert.equal(gone.kind, "gone");
    assert.ok(gone.kind === "gone" && gone.error instanceof ConductorNotFoundError);

    const bad = delivery.deliver({ ...result, workflowInstanceId: "" });
    await assert.rejects(bad, (error: unknown) => {
      assert.ok(error instanceof ResultDeliveryError);
      assert.ok(error.cause instanceof ConductorError && error.cause.status === 400);
      assert.match(error.message, /^delivering the result of task .* failed: Conductor updateTask/);
      return true;
    });

    server.faults.set({ errorRate: 1 });
    const started = Date.now();
    await assert.rejects(
      delivery.deliver(result, { deadlineMs: 200 }),
      /deadline passed after \d+ attempts/,
    );
    assert.ok(Date.now() - started < 2_000);
    assert.equal(delivery.pending, 0);
  });
});

Deno.test("delivery: abort ends pending deliveries and drain", async () => {
  const never = {
    updateTask: () => Promise.reject(new ConductorError({ operation: "updateTask", status: 503 })),
  };
  const controller = new AbortController();
  const delivery = new ResultDelivery({
    api: never,
    baseDelayMs: 5,
    maxDelayMs: 10,
    signal: controller.signal,
  });
  const pending = delivery.deliver({ workflowInstanceId: "w", taskId: "t", status: "FAILED" });
  const drainAbort = new AbortController();
  const draining = delivery.drain(drainAbort.signal);
  drainAbort.abort(new Error("drain stopped"));
  await assert.rejects(draining, /drain stopped/);
  controller.abort(new Error("shutdown"));
  await assert.rejects(pending, /delivery aborted/);
  assert.equal(delivery.pending, 0);
  await delivery.drain();
});

/**
 * A delivery whose backoff is up to ten minutes, so that within a test only an answer from the
 * server (or its Retry-After) ends one, posting with `updateTask`. `post(taskId)` delivers a
 * COMPLETED result and returns what it settled with so far; disposing aborts what is pending.
 */
function patientDelivery(updateTask: (result: TaskResult) => Promise<string>) {
  const stop = new AbortController();
  const delivery = new ResultDelivery({
    api: { updateTask },
    baseDelayMs: 600_000,
    maxDelayMs: 600_000,
    signal: stop.signal,
  });
  const pending: Promise<void>[] = [];
  return {
    delivery,
    post(taskId: string): () => DeliveryOutcome | Error | undefined {
      let settled: DeliveryOutcome | Error | undefined;
      pending.push(
        delivery.deliver({ workflowInstanceId: "w", taskId, status: "COMPLETED" }).then(
          (outcome) => void (settled = outcome),
          (error) => void (settled = error),
        ),
      );
      return () => settled;
    },
    async [Symbol.asyncDispose]() {
      stop.abort(new Error("test over"));
      await Promise.all(pending);
    },
  };
}

Deno.test("delivery: the server's first answer after an outage ends the backoff of every result it held back (not of a 429's or a 500's)", async () => {
  const failWith = new Map<string, number | undefined>([
    ["unavailable", 503],
    ["no-answer", undefined],
    ["gateway", 502],
    ["busy", 429],
    ["broken", 500],
  ]);
  let outage = true;
  const calls = new Map<string, number>();
  await using patient = patientDelivery((result) => {
    calls.set(result.taskId, (calls.get(result.taskId) ?? 0) + 1);
    if (outage && failWith.has(result.taskId)) {
      const status = failWith.get(result.taskId);
      return Promise.reject(new ConductorError({ operation: "updateTask", status }));
    }
    return Promise.resolve(result.taskId);
  });
  const outcomes = new Map([...failWith.keys()].map((taskId) => [taskId, patient.post(taskId)]));
  await waitFor(() => calls.size === failWith.size || undefined, { what: "every first post" });
  outage = false;
  // Another result delivered is the server answering: the unreachable ones go at once.
  const fresh = patient.post("fresh");
  await waitFor(fresh, { what: "a fresh result delivered" });
  const unreachable = ["unavailable", "no-answer", "gateway"];
  await waitFor(() => unreachable.every((id) => outcomes.get(id)!()) || undefined, {
    what: "the results held back by the outage posted",
  });
  for (const taskId of unreachable) {
    assert.deepEqual([taskId, outcomes.get(taskId)!()], [taskId, {
      kind: "delivered",
      attempts: 2,
    }]);
  }
  // A rate limit or a server error is an answer: those keep their backoff. (A woken post
  // would be made before the next timer runs: sleep(0) lets it happen.)
  patient.delivery.serverAnswered();
  await sleep(0);
  assert.equal(patient.delivery.pending, 2);
  assert.equal(calls.get("busy"), 1);
  assert.equal(calls.get("broken"), 1);
});

Deno.test("delivery: serverAnswered ends the backoff of a result held back by an outage", async () => {
  let outage = true;
  let calls = 0;
  await using patient = patientDelivery((result) => {
    calls++;
    return outage
      ? Promise.reject(new ConductorError({ operation: "updateTask", status: 503 }))
      : Promise.resolve(result.taskId);
  });
  const outcome = patient.post("t");
  await waitFor(() => calls === 1 || undefined, { what: "the first post" });
  patient.delivery.serverAnswered(); // still down: the next try fails and backs off again
  await waitFor(() => calls === 2 || undefined, { what: "a post at once" });
  outage = false;
  patient.delivery.serverAnswered();
  await waitFor(outcome, { what: "the result delivered" });
  assert.deepEqual(outcome(), { kind: "delivered", attempts: 3 });
  assert.equal(calls, 3);
});

Deno.test("delivery: a 429's Retry-After is the wait before the next post, not the backoff", async () => {
  const posts: number[] = [];
  await using patient = patientDelivery((result) => {
    posts.push(Date.now());
    return posts.length === 1
      ? Promise.reject(
        new ConductorError({ operation: "updateTask", status: 429, retryAfterMs: 200 }),
      )
      : Promise.resolve(result.taskId);
  });
  const outcome = patient.post("t");
  await waitFor(outcome, { what: "the result delivered after the server's wait" });
  assert.deepEqual(outcome(), { kind: "delivered", attempts: 2 });
  assert.ok(posts[1]! - posts[0]! >= 190, `waited ${posts[1]! - posts[0]!} ms`);
});

Deno.test("delivery: per task in order; a waiting heartbeat is superseded by a newer result", async () => {
  const posted: string[] = [];
  let failFirst = 2;
  const api = {
    updateTask(result: TaskResult): Promise<string> {
      const label = `${result.taskId}:${result.status}${result.extendLease ? "+lease" : ""}:${
        String(result.outputData?.n ?? "")
      }`;
      if (failFirst > 0 && result.taskId === "a") {
        failFirst--;
        return Promise.reject(new ConductorError({ operation: "updateTask" }));
      }
      posted.push(label);
      return Promise.resolve(result.taskId);
    },
  };
  const delivery = new ResultDelivery({ api, baseDelayMs: 1, maxDelayMs: 5 });
  const base = { workflowInstanceId: "w" };
  const results = [
    delivery.deliver({
      ...base,
      taskId: "a",
      status: "IN_PROGRESS",
      extendLease: true,
      outputData: { n: 1 },
    }),
    delivery.deliver({
      ...base,
      taskId: "a",
      status: "IN_PROGRESS",
      extendLease: true,
      outputData: { n: 2 },
    }),
    delivery.deliver({ ...base, taskId: "b", status: "COMPLETED" }),
    delivery.deliver({ ...base, taskId: "a", status: "COMPLETED", outputData: { n: 3 } }),
  ];
  const outcomes = await Promise.all(results);
  assert.deepEqual(outcomes.map((o) => o.kind), [
    "delivered",
    "superseded",
    "delivered",
    "delivered",
  ]);
  assert.deepEqual(posted.filter((p) => p.startsWith("a")), [
    "a:IN_PROGRESS+lease:1",
    "a:COMPLETED:3",
  ]);
  assert.ok(posted.includes("b:COMPLETED:"));
  assert.equal(posted.indexOf("b:COMPLETED:"), 0, "task b does not wait behind task a's retries");
});

Deno.test("ResultDelivery: a result is copied when queued, unless the caller hands it over (owned)", async () => {
  const posted: TaskResult[] = [];
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => release = resolve);
  const delivery = new ResultDelivery({
    api: {
      updateTask: async (result) => {
        await gate;
        posted.push(result);
        return result.taskId;
      },
    },
  });
  const copied: TaskResult = { workflowInstanceId: "wf", taskId: "t1", status: "COMPLETED" };
  const owned: TaskResult = { workflowInstanceId: "wf", taskId: "t2", status: "COMPLETED" };
  const done = [delivery.deliver(copied), delivery.deliver(owned, { owned: true })];
  copied.status = "FAILED"; // a change after the call does not reach the queued copy
  release();
  await Promise.all(done);
  assert.equal(posted.find((r) => r.taskId === "t1")?.status, "COMPLETED");
  assert.notEqual(posted.find((r) => r.taskId === "t1"), copied);
  assert.equal(posted.find((r) => r.taskId === "t2"), owned, "the owned object itself, no copy");
});
