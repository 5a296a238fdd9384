import assert from "node:assert/strict";
import { assertQuickAgrees, assertQuickAnswers } from "../_quick_agreement.ts";
import {
  checkMessage,
  decodeLine,
  encodeMessage,
  ExecutorInitSchema,
  FromBrokerSchema,
  FromExecutorSchema,
  FromLaneSchema,
  MessageBatcher,
  MessageWriter,
  quickAttempt,
  quickFromBroker,
  quickLaneOutcome,
  readMessages,
  type ToBroker,
  ToBrokerSchema,
  ToExecutorSchema,
} from "../../src/runtime/protocol.ts";

Deno.test("protocol: encode then decode round-trips a message", () => {
  const message: ToBroker = {
    type: "result",
    taskId: "t1",
    workerId: "w0000",
    outcome: { status: "COMPLETED", outputData: { result: 1 }, stale: false, durationMs: 5 },
  };
  const line = new TextDecoder().decode(encodeMessage(message));
  assert.ok(line.endsWith("\n"));
  assert.deepEqual(decodeLine(ToBrokerSchema, line.trim()), message);
});

Deno.test("protocol: invalid lines are rejected with a clear error", () => {
  assert.throws(() => decodeLine(ToBrokerSchema, "not json"), /not JSON/);
  assert.throws(() => decodeLine(ToBrokerSchema, '{"type":"credit","n":0}'), /invalid message/);
  assert.throws(() => decodeLine(ToBrokerSchema, '{"type":"nope"}'), /invalid message/);
});

Deno.test("protocol: reader splits chunks into lines and skips garbage", async () => {
  const text = '{"type":"ready","pid":1}\nhello from a task\n{"type":"fen' +
    'ce","requestId":2,"taskId":"x"}\n\n{"type":"fatal","message":"m"}';
  const bytes = new TextEncoder().encode(text);
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      // deliver in awkward pieces
      for (let i = 0; i < bytes.length; i += 7) controller.enqueue(bytes.slice(i, i + 7));
      controller.close();
    },
  });
  const invalid: string[] = [];
  const got = await Array.fromAsync(
    readMessages(stream, FromExecutorSchema, (_e, line) => invalid.push(line)),
  );
  assert.deepEqual(got.map((m) => m.type), ["ready", "fence", "fatal"]);
  assert.deepEqual(invalid, ["hello from a task"]);
});

Deno.test("protocol: writer keeps order and reports a broken peer as false", async () => {
  const chunks: string[] = [];
  const sink = new WritableStream<Uint8Array>({
    write(chunk) {
      chunks.push(new TextDecoder().decode(chunk));
    },
  });
  const writer = new MessageWriter<ToBroker>(sink);
  await Promise.all([
    writer.send({ type: "credit", n: 1 }),
    writer.send({ type: "drain" }),
  ]);
  // Messages sent in the same turn share one write.
  assert.deepEqual(chunks, ['{"type":"credit","n":1}\n{"type":"drain"}\n']);
  // A message sent while a write is in flight goes out in the next write, in order.
  const third = writer.send({ type: "shutdown" });
  await writer.send({ type: "drain" });
  await third;
  assert.equal(
    chunks.join(""),
    '{"type":"credit","n":1}\n{"type":"drain"}\n' +
      '{"type":"shutdown"}\n{"type":"drain"}\n',
  );
  await writer.close();

  const broken = new WritableStream<Uint8Array>({
    write() {
      throw new Error("EPIPE");
    },
  });
  const w2 = new MessageWriter<ToBroker>(broken);
  assert.equal(await w2.send({ type: "drain" }), false);
  assert.equal(w2.broken, true);
  assert.equal(await w2.send({ type: "drain" }), false);
});

Deno.test("protocol: writer holds lazy messages for the next write, in order", async () => {
  const chunks: string[] = [];
  const sink = new WritableStream<Uint8Array>({
    write(chunk) {
      chunks.push(new TextDecoder().decode(chunk));
    },
  });
  const writer = new MessageWriter<ToBroker>(sink, { lazyDelayMs: 10_000 });
  const lazy = writer.send({ type: "assigned", taskId: "t1", workerId: "w1" });
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(chunks.length, 0, "a lazy message waits");
  await writer.send({ type: "credit", n: 1 });
  assert.equal(await lazy, true);
  assert.deepEqual(chunks, [
    '{"type":"assigned","taskId":"t1","workerId":"w1"}\n{"type":"credit","n":1}\n',
  ]);
  // Alone, a lazy message goes out after the delay; close flushes what is held.
  const collect = () =>
    new WritableStream<Uint8Array>({
      write(chunk) {
        chunks.push(new TextDecoder().decode(chunk));
      },
    });
  const quick = new MessageWriter<ToBroker>(collect(), { lazyDelayMs: 5 });
  chunks.length = 0;
  assert.equal(await quick.send({ type: "assigned", taskId: "t2", workerId: "w1" }), true);
  assert.equal(chunks.length, 1);
  await quick.close();
  const slow = new MessageWriter<ToBroker>(collect(), { lazyDelayMs: 10_000 });
  void slow.send({ type: "assigned", taskId: "t3", workerId: "w1" });
  await slow.close();
  assert.equal(chunks.length, 2);
  await writer.close();
});

Deno.test("protocol: writer over a synchronous sink (Deno.stdout) writes whole batches", async () => {
  const chunks: string[] = [];
  const sink = {
    writeSync(bytes: Uint8Array): number {
      // Short writes happen on pipes: take at most 10 bytes at a time.
      chunks.push(new TextDecoder().decode(bytes.subarray(0, 10)));
      return Math.min(10, bytes.length);
    },
  };
  const writer = new MessageWriter<ToBroker>(sink);
  assert.equal(await writer.send({ type: "credit", n: 1 }), true);
  assert.equal(chunks.join(""), '{"type":"credit","n":1}\n');
  await writer.close();
  const broken = new MessageWriter<ToBroker>({
    writeSync(): number {
      throw new Error("EPIPE");
    },
  });
  assert.equal(await broken.send({ type: "drain" }), false);
  assert.equal(broken.broken, true);
});

Deno.test("protocol: batcher posts one batch per turn, lazy messages held for the next, in order", async () => {
  const posted: ToBroker[][] = [];
  const out = new MessageBatcher<ToBroker>((batch) => posted.push(batch), { lazyDelayMs: 10_000 });
  out.send({ type: "assigned", taskId: "t1", workerId: "w1" });
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(posted.length, 0, "a lazy message waits");
  out.send({ type: "credit", n: 1 });
  out.send({ type: "drain" });
  assert.equal(posted.length, 0, "nothing is posted before the turn ends");
  await Promise.resolve();
  assert.deepEqual(posted, [[
    { type: "assigned", taskId: "t1", workerId: "w1" },
    { type: "credit", n: 1 },
    { type: "drain" },
  ]]);
  // A lazy message sent in a turn that already posts goes with it; alone, after the delay.
  posted.length = 0;
  out.send({ type: "drain" });
  out.send({ type: "assigned", taskId: "t2", workerId: "w1" });
  await Promise.resolve();
  assert.equal(posted.length, 1);
  assert.equal(posted[0]!.length, 2);
  const quick = new MessageBatcher<ToBroker>((batch) => posted.push(batch), { lazyDelayMs: 5 });
  posted.length = 0;
  quick.send({ type: "assigned", taskId: "t3", workerId: "w1" });
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.deepEqual(posted, [[{ type: "assigned", taskId: "t3", workerId: "w1" }]]);
  // flush() posts what is held at once (a worker's exit does).
  posted.length = 0;
  out.send({ type: "assigned", taskId: "t4", workerId: "w1" });
  out.flush();
  assert.equal(posted.length, 1);
  out.flush();
  assert.equal(posted.length, 1, "nothing pending: nothing posted");
});

Deno.test("protocol: reader over a ByteReader (Deno.stdin) reuses its buffer safely", async () => {
  const chunks = ['{"type":"drain"}\n{"type":"shut', 'down"}\n', 'nope\n{"type":"drain"}'];
  const source = {
    read(buffer: Uint8Array): Promise<number | null> {
      const next = chunks.shift();
      if (next === undefined) return Promise.resolve(null);
      const bytes = new TextEncoder().encode(next);
      buffer.set(bytes);
      return Promise.resolve(bytes.length);
    },
  };
  const invalid: string[] = [];
  const got: string[] = [];
  for await (const msg of readMessages(source, ToBrokerSchema, (_e, line) => invalid.push(line))) {
    got.push(msg.type);
  }
  assert.deepEqual(got, ["drain", "shutdown", "drain"]);
  assert.deepEqual(invalid, ["nope"]);
});

Deno.test("protocol: the executor's lakeFS settings keep noProxy (the supervisor read the environment for it)", () => {
  const init = ExecutorInitSchema.parse({
    slot: 0,
    workerId: "w-0",
    modules: ["/tasks/t.ts"],
    workspaceRoot: "/ws",
    failureReasonMaxLength: 500,
    lakefs: {
      endpointUrl: "http://lakefs:8000",
      accessKeyId: "AKIA",
      secretAccessKey: "s",
      noProxy: true,
    },
    log: {
      logRoot: "/logs",
      moduleName: "t",
      workerId: "w-0",
      maxFileBytes: 1,
      retentionMs: 1,
      debug: false,
    },
  });
  assert.equal(init.lakefs?.noProxy, true);
});

/** The fields an attempt's task must have. */
const WIRE_TASK = {
  taskId: "t1",
  taskType: "sum",
  workflowInstanceId: "wf1",
  status: "IN_PROGRESS",
  retryCount: 0,
};

Deno.test("checkMessage: the executor's quick check of attempts agrees with ToExecutorSchema, and takes the valid ones", () => {
  const task = WIRE_TASK;
  const full = {
    ...task,
    taskDefName: "sum",
    referenceTaskName: "sum_ref",
    seq: 3,
    iteration: 0,
    responseTimeoutSeconds: 600,
    inputData: { params: { a: 1 }, list: [1, 2] },
    workflowTask: { name: "sum" }, // not the runtime's: dropped, as the schema drops it
  };
  const valid = [
    { type: "attempt", attemptId: "a1", task },
    { type: "attempt", attemptId: "a2", task: full, extra: true },
    { type: "attempt", attemptId: "", task: { ...task, retryCount: 7, taskType: "" } },
  ];
  const invalid = [
    { type: "attempt", task },
    { type: "attempt", attemptId: 1, task },
    { type: "attempt", attemptId: "a", task: null },
    { type: "attempt", attemptId: "a", task: [] },
    { type: "attempt", attemptId: "a", task: { ...task, taskId: "" } },
    { type: "attempt", attemptId: "a", task: { ...task, taskId: undefined } },
    { type: "attempt", attemptId: "a", task: { ...task, workflowInstanceId: "" } },
    { type: "attempt", attemptId: "a", task: { ...task, status: 1 } },
    { type: "attempt", attemptId: "a", task: { ...task, retryCount: -1 } },
    { type: "attempt", attemptId: "a", task: { ...task, retryCount: 1.5 } },
    { type: "attempt", attemptId: "a", task: { ...task, retryCount: "1" } },
    { type: "attempt", attemptId: "a", task: { ...task, seq: "3" } },
    { type: "attempt", attemptId: "a", task: { ...task, seq: Number.NaN } },
    { type: "attempt", attemptId: "a", task: { ...task, responseTimeoutSeconds: Infinity } },
    { type: "attempt", attemptId: "a", task: { ...task, taskDefName: 5 } },
    { type: "attempt", attemptId: "a", task: { ...task, inputData: [] } },
    { type: "attempt", attemptId: "a", task: { ...task, inputData: null } },
    { type: "attempt", attemptId: "a", task: { ...task, inputData: "x" } },
  ];
  assertQuickAnswers(ToExecutorSchema, quickAttempt, valid, invalid);
  // Other messages are the schema's alone.
  assert.equal(quickAttempt({ type: "shutdown" }), undefined);
  assert.deepEqual(checkMessage(ToExecutorSchema, { type: "shutdown" }), {
    success: true,
    data: { type: "shutdown" },
  });
});

Deno.test("checkMessage: the supervisor's quick check of the broker's per-task messages agrees with FromBrokerSchema", () => {
  const valid = [
    { type: "lane-attempt", id: 3, attemptId: "a1", taskId: "t1", taskType: "sum" },
    { type: "lane-attempt", id: 1, attemptId: "", taskId: "", taskType: "", extra: 1 },
    { type: "lane-ended", id: 3, attemptId: "a1", taskType: "sum" },
    { type: "lane-ended", id: 3, attemptId: "a1", taskType: "sum", recycle: true },
    { type: "delivered", taskId: "t1", how: "delivered" },
    { type: "delivered", taskId: "t1", how: "skipped" },
  ];
  const invalid = [
    { type: "lane-attempt", id: 0, attemptId: "a1", taskId: "t1", taskType: "sum" },
    { type: "lane-attempt", id: 1.5, attemptId: "a1", taskId: "t1", taskType: "sum" },
    { type: "lane-attempt", id: "3", attemptId: "a1", taskId: "t1", taskType: "sum" },
    { type: "lane-attempt", id: 3, attemptId: "a1", taskType: "sum" },
    { type: "lane-ended", id: 3, attemptId: "a1", taskType: "sum", recycle: false },
    { type: "lane-ended", id: 3, attemptId: 1, taskType: "sum" },
    { type: "delivered", taskId: "t1", how: "lost" },
    { type: "delivered", how: "delivered" },
  ];
  assertQuickAnswers(FromBrokerSchema, quickFromBroker, valid, invalid);
  // The other messages are the schema's alone.
  assert.equal(quickFromBroker({ type: "drained" }), undefined);
  assert.equal(checkMessage(FromBrokerSchema, { type: "drained" }).success, true);
});

Deno.test("checkMessage: the broker's quick check of lane outcomes agrees with FromLaneSchema", () => {
  const outcome = { status: "COMPLETED", stale: false, durationMs: 3 };
  const valid = [
    { type: "outcome", attemptId: "a1", outcome },
    {
      type: "outcome",
      attemptId: "a2",
      outcome: {
        status: "FAILED_WITH_TERMINAL_ERROR",
        stale: true,
        durationMs: 0,
        outputData: { result: { n: 1 } },
        reasonForIncompletion: "TaskError: no",
        publishedRef: "abc",
        extra: 1,
      },
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      recycle: true,
      extra: "dropped",
    },
  ];
  const invalid = [
    { type: "outcome", outcome },
    { type: "outcome", attemptId: "a", outcome: null },
    { type: "outcome", attemptId: "a", outcome: { ...outcome, status: "IN_PROGRESS" } },
    { type: "outcome", attemptId: "a", outcome: { ...outcome, stale: "false" } },
    { type: "outcome", attemptId: "a", outcome: { ...outcome, durationMs: -1 } },
    { type: "outcome", attemptId: "a", outcome: { ...outcome, durationMs: Infinity } },
    { type: "outcome", attemptId: "a", outcome: { ...outcome, durationMs: undefined } },
    { type: "outcome", attemptId: "a", outcome: { ...outcome, outputData: [] } },
    { type: "outcome", attemptId: "a", outcome: { ...outcome, outputData: null } },
    { type: "outcome", attemptId: "a", outcome: { ...outcome, reasonForIncompletion: 1 } },
    { type: "outcome", attemptId: "a", outcome: { ...outcome, publishedRef: null } },
    { type: "outcome", attemptId: "a", outcome, traceparent: "x".repeat(101) },
    { type: "outcome", attemptId: "a", outcome, recycle: false },
  ];
  assertQuickAnswers(FromLaneSchema, quickLaneOutcome, valid, invalid);
  // hello and fence are the schema's alone.
  assert.equal(quickLaneOutcome({ type: "hello", id: 1, secret: "s" }), undefined);
  assert.equal(checkMessage(FromLaneSchema, { type: "hello", id: 1, secret: "s" }).success, true);
});

Deno.test("checkMessage: every quick check agrees with its schema on every one-field change of valid messages", () => {
  const task = {
    ...WIRE_TASK,
    taskDefName: "sum",
    referenceTaskName: "sum_ref",
    seq: 3,
    iteration: 0,
    responseTimeoutSeconds: 600,
    inputData: { params: { a: 1 } },
  };
  const attempts = [{ type: "attempt", attemptId: "a1", task }];
  assert.ok(assertQuickAgrees(ToExecutorSchema, attempts, quickAttempt) > 10);
  const fromBroker = [
    { type: "lane-attempt", id: 3, attemptId: "a1", taskId: "t1", taskType: "sum" },
    { type: "lane-ended", id: 3, attemptId: "a1", taskType: "sum", recycle: true },
    { type: "delivered", taskId: "t1", how: "delivered" },
  ];
  assert.ok(assertQuickAgrees(FromBrokerSchema, fromBroker, quickFromBroker) > 10);
  const outcomes = [{
    type: "outcome",
    attemptId: "a1",
    outcome: {
      status: "COMPLETED",
      stale: false,
      durationMs: 3,
      outputData: { result: { n: 1 } },
      reasonForIncompletion: "TaskError: no",
      publishedRef: "abc",
    },
    traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    recycle: true,
  }];
  assert.ok(assertQuickAgrees(FromLaneSchema, outcomes, quickLaneOutcome) > 10);
});
