/**
 * The dispatch book both task routers keep (the supervisor for relayed executors, the broker's
 * lane router for lanes): the credit rule, the dispatch of queued tasks to idle executors,
 * the result with the freed slot's credit, and the fence routes.
 */
import assert from "node:assert/strict";
import { DispatchBook, type DispatchedAttempt } from "../../src/runtime/dispatch_book.ts";
import type { WireTask } from "../../src/runtime/protocol.ts";

interface FakeExecutor {
  name: string;
  attempt: DispatchedAttempt | undefined;
}

function task(taskId: string, taskDefName?: string): WireTask {
  return {
    taskId,
    taskType: "SIMPLE",
    workflowInstanceId: `wf-${taskId}`,
    ...(taskDefName === undefined ? {} : { taskDefName }),
  } as WireTask;
}

function setup(names: string[], mayGrant: () => boolean = () => true) {
  const executors: FakeExecutor[] = names.map((name) => ({ name, attempt: undefined }));
  const assigned: { executor: string; attempt: DispatchedAttempt; taskId: string }[] = [];
  const book = new DispatchBook<FakeExecutor>({
    idle: () => executors.filter((executor) => executor.attempt === undefined),
    mayGrant,
    assign: (executor, attempt, given) => {
      executor.attempt = attempt;
      assigned.push({ executor: executor.name, attempt, taskId: given.taskId });
    },
  });
  return { executors, assigned, book };
}

const OUTCOME = { status: "COMPLETED", outputData: {}, stale: false, durationMs: 1 } as const;

Deno.test("dispatch book: one credit per idle executor not covered, each arriving task spends one", () => {
  const { book, executors } = setup(["w0", "w1", "w2"]);
  assert.equal(book.claimFreeCredits(), 3);
  assert.equal(book.claimFreeCredits(), 0, "outstanding credits cover every idle executor");
  book.tasksArrived([task("t1")]);
  assert.equal(book.outstandingCredits, 2);
  assert.equal(executors[0]!.attempt?.taskId, "t1");
  assert.equal(book.claimFreeCredits(), 0, "two idle executors, two credits outstanding");
});

Deno.test("dispatch book: tasks beyond the credits spend nothing and wait, counted by later grants", () => {
  const { book, assigned, executors } = setup(["w0", "w1"]);
  assert.equal(book.claimFreeCredits(), 2);
  book.tasksArrived([task("t1"), task("t2"), task("t3")]);
  assert.equal(book.outstandingCredits, 0, "only the two granted credits are spent");
  assert.equal(book.queued, 1);
  assert.deepEqual(assigned.map((a) => a.taskId), ["t1", "t2"]);
  // Both executors free up: the queued task covers one of them, so one credit is granted.
  executors[0]!.attempt = undefined;
  executors[1]!.attempt = undefined;
  assert.equal(book.claimFreeCredits(), 1);
});

Deno.test("dispatch book: queued tasks go to idle executors oldest first, with fresh attempt ids", () => {
  const { book, assigned, executors } = setup(["w0", "w1"]);
  book.tasksArrived([task("t1", "sum"), task("t2"), task("t3")]);
  assert.deepEqual(assigned, [
    { executor: "w0", attempt: { attemptId: "a1", taskId: "t1", taskType: "sum" }, taskId: "t1" },
    {
      executor: "w1",
      attempt: { attemptId: "a2", taskId: "t2", taskType: "SIMPLE" },
      taskId: "t2",
    },
  ]);
  assert.equal(book.queued, 1);
  executors[1]!.attempt = undefined;
  book.dispatch();
  assert.equal(assigned[2]?.attempt.attemptId, "a3");
  assert.equal(assigned[2]?.executor, "w1");
  assert.equal(book.queued, 0);
});

Deno.test("dispatch book: the result carries the freed slot's credit and the trace", () => {
  const { book, assigned, executors } = setup(["w0"]);
  assert.equal(book.claimFreeCredits(), 1);
  book.tasksArrived([task("t1")]);
  executors[0]!.attempt = undefined;
  const result = book.settle(assigned[0]!.attempt, "w0", {
    type: "outcome",
    attemptId: "a1",
    outcome: OUTCOME,
    traceparent: "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01",
  });
  assert.deepEqual(result, {
    type: "result",
    taskId: "t1",
    workerId: "w0",
    outcome: OUTCOME,
    traceparent: "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01",
    credit: 1,
  });
  assert.equal(book.outstandingCredits, 1);
});

Deno.test("dispatch book: no credits while granting is off", () => {
  let granting = false;
  const { book } = setup(["w0", "w1"], () => granting);
  assert.equal(book.claimFreeCredits(), 0);
  assert.equal(book.outstandingCredits, 0);
  granting = true;
  assert.equal(book.claimFreeCredits(), 2);
});

Deno.test("dispatch book: taking the queue empties it", () => {
  const { book } = setup([]);
  book.tasksArrived([task("t1"), task("t2")]);
  assert.deepEqual(book.takeQueued().map((t) => t.taskId), ["t1", "t2"]);
  assert.equal(book.queued, 0);
});

Deno.test("dispatch book: a fence answer goes back once to the executor that asked, under its id", () => {
  const { book, executors } = setup(["w0", "w1"]);
  const [w0, w1] = [executors[0]!, executors[1]!];
  const first = book.routeFence(w0, { type: "fence", requestId: 7, taskId: "t1" });
  const second = book.routeFence(w1, {
    type: "fence",
    requestId: 7,
    taskId: "t2",
    traceparent: "tp",
  });
  assert.deepEqual(first, { type: "fence", requestId: 1, taskId: "t1" });
  assert.deepEqual(second, { type: "fence", requestId: 2, taskId: "t2", traceparent: "tp" });
  const answer = { type: "fence-result", requestId: 2, error: "gone" } as const;
  const routed = book.fenceAnswer(answer);
  assert.equal(routed?.executor, w1);
  assert.deepEqual(routed?.answer, { type: "fence-result", requestId: 7, error: "gone" });
  assert.equal(book.fenceAnswer(answer), undefined, "answered once");
  book.dropFenceRoutes(w0);
  assert.equal(
    book.fenceAnswer({ type: "fence-result", requestId: 1, error: "x" }),
    undefined,
    "the routes of an executor that went away are dropped",
  );
});
