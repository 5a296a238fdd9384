/**
 * Executor lanes, the broker's side: real Unix sockets, the router between a recorded broker
 * and a recorded supervisor, and executors played by the test (one of them hostile).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { sweepAttemptDirs } from "../../src/runtime/gc.ts";
import { makeLaneDir } from "../../src/runtime/lane_dir.ts";
import { LaneRouter } from "../../src/runtime/lane_router.ts";
import {
  type FromBroker,
  type FromLane,
  MessageWriter,
  readMessages,
  type ToBroker,
  type ToExecutor,
  ToExecutorSchema,
} from "../../src/runtime/protocol.ts";
import { waitFor } from "../../src/util/sleep.ts";

const SECRETS = ["a".repeat(64), "b".repeat(64), "c".repeat(64)];

const task = (taskId: string) => ({
  taskId,
  taskType: "sum",
  workflowInstanceId: `wf-${taskId}`,
  status: "IN_PROGRESS",
  retryCount: 0,
});

/** The supervisor's `lane-open` of `slot` (worker id `w<slot>`) as lane `id`. */
const laneOpen = (slot: number, id: number, secret: string) => ({
  type: "lane-open" as const,
  slot,
  id,
  workerId: `w${slot}`,
  secret,
});

const OUTCOME = { status: "COMPLETED" as const, stale: false, durationMs: 1 };

/** The router over two slots' sockets in a fresh directory, with what it told each side. */
async function setup() {
  const dir = await Deno.makeTempDir({ prefix: "lane-test-" });
  const paths = [join(dir, "0.sock"), join(dir, "1.sock")];
  const toBroker: ToBroker[] = [];
  const toSupervisor: FromBroker[] = [];
  const router = new LaneRouter({
    paths,
    toBroker: (message) => toBroker.push(message),
    toSupervisor: (message) => toSupervisor.push(message),
    helloTimeoutMs: 1_000,
    exitWordGraceMs: 200,
  });
  return {
    paths,
    toBroker,
    toSupervisor,
    router,
    async [Symbol.asyncDispose]() {
      router.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** An executor's end of a lane: what it reads, and a way to write lines. */
async function connect(path: string, hello?: FromLane) {
  const conn = await Deno.connect({ transport: "unix", path });
  const writer = new MessageWriter<FromLane>(conn);
  if (hello) await writer.send(hello);
  const received: ToExecutor[] = [];
  let ended = false;
  void (async () => {
    try {
      for await (const message of readMessages(conn, ToExecutorSchema)) received.push(message);
    } catch { /* closed */ }
    ended = true;
  })();
  return {
    received,
    get ended() {
      return ended;
    },
    send: (message: FromLane) => writer.send(message),
    close: () => conn.close(),
  };
}

const until = (what: string, check: () => boolean) =>
  waitFor(check, { timeoutMs: 5_000, intervalMs: 10, what });

Deno.test("lanes: a connection must prove its lane (wrong secret, another slot's lane, no hello, a second connection: closed); an executor can neither fence nor complete a task it was not given", async () => {
  await using t = await setup();
  t.router.fromSupervisor(laneOpen(0, 1, SECRETS[0]!));
  t.router.fromSupervisor(laneOpen(1, 2, SECRETS[1]!));

  const wrongSecret = await connect(t.paths[0]!, { type: "hello", id: 1, secret: SECRETS[1]! });
  const otherLane = await connect(t.paths[0]!, { type: "hello", id: 2, secret: SECRETS[1]! });
  const silent = await connect(t.paths[0]!);
  await until(
    "the three refused connections closed",
    () => wrongSecret.ended && otherLane.ended && silent.ended,
  );
  assert.equal(t.toBroker.length, 0, "no refused connection earns a credit");

  const executor = await connect(t.paths[0]!, { type: "hello", id: 1, secret: SECRETS[0]! });
  await until("the proven lane's credit", () => t.toBroker.length === 1);
  assert.deepEqual(t.toBroker[0], { type: "credit", n: 1 });
  const second = await connect(t.paths[0]!, { type: "hello", id: 1, secret: SECRETS[0]! });
  await until("a second connection to a taken lane closed", () => second.ended);

  t.router.fromBroker({ type: "tasks", tasks: [task("t1")] });
  await until("the attempt reached the executor", () => executor.received.length === 1);
  const attempt = executor.received[0]!;
  assert.equal(attempt.type, "attempt");
  const attemptId = attempt.type === "attempt" ? attempt.attemptId : "";
  assert.deepEqual(t.toBroker[1], { type: "assigned", taskId: "t1", workerId: "w0" });
  assert.deepEqual(t.toSupervisor, [
    { type: "lane-attempt", id: 1, attemptId, taskId: "t1", taskType: "sum" },
  ]);

  // Another executor's task: the fence is refused here, never asked of Conductor.
  await executor.send({ type: "fence", requestId: 7, taskId: "t-of-someone-else" });
  await until("the refused fence's answer", () => executor.received.length === 2);
  assert.equal(executor.received[1]!.type, "fence-result");
  assert.match(JSON.stringify(executor.received[1]), /not this executor's attempt/);
  // An outcome of an attempt it was not given is ignored.
  await executor.send({ type: "outcome", attemptId: "a999", outcome: OUTCOME });
  // Its own task's fence goes to the broker under a request id of the router's.
  await executor.send({ type: "fence", requestId: 8, taskId: "t1" });
  await until("the fence reached the broker", () => t.toBroker.length === 3);
  const fence = t.toBroker[2]!;
  assert.equal(fence.type, "fence");
  assert.equal(fence.type === "fence" && fence.taskId, "t1");
  const state = { status: "IN_PROGRESS", workflowInstanceId: "wf-t1", taskId: "t1", retryCount: 0 };
  t.router.fromBroker({
    type: "fence-result",
    requestId: fence.type === "fence" ? fence.requestId : -1,
    state,
  });
  await until("the fence answer", () => executor.received.length === 3);
  assert.deepEqual(executor.received[2], { type: "fence-result", requestId: 8, state });

  await executor.send({ type: "outcome", attemptId, outcome: OUTCOME });
  await until("the result reached the broker", () => t.toBroker.length === 4);
  assert.deepEqual(t.toBroker[3], {
    type: "result",
    taskId: "t1",
    workerId: "w0",
    outcome: OUTCOME,
    credit: 1,
  });
  assert.equal(t.toBroker.filter((m) => m.type === "result").length, 1, "a999 was ignored");
  assert.deepEqual(t.toSupervisor[1], {
    type: "lane-ended",
    id: 1,
    attemptId,
    taskType: "sum",
  });
  executor.close();
});

Deno.test("lanes: an exited executor's last outcome still counts; one whose lane closes while it lives is lost (the supervisor told) and its attempt abandoned; a forced stop abandons the queue", async () => {
  await using t = await setup();
  t.router.fromSupervisor(laneOpen(0, 1, SECRETS[0]!));
  const first = await connect(t.paths[0]!, { type: "hello", id: 1, secret: SECRETS[0]! });
  await until("credit", () => t.toBroker.length === 1);
  t.router.fromBroker({ type: "tasks", tasks: [task("t1")] });
  await until("attempt", () => first.received.length === 1);
  const a1 = first.received[0]!;
  // The executor reports and exits (a planned recycle); the supervisor's word may come first.
  t.router.fromSupervisor({ type: "lane-closed", id: 1, reason: "exited (code 0)" });
  await first.send({
    type: "outcome",
    attemptId: a1.type === "attempt" ? a1.attemptId : "",
    outcome: OUTCOME,
    recycle: true,
  });
  first.close();
  await until("the result", () => t.toBroker.some((m) => m.type === "result"));
  assert.ok(!t.toBroker.some((m) => m.type === "abandon"), "the outcome counted, no abandon");
  assert.ok(!t.toSupervisor.some((m) => m.type === "lane-lost"));

  // The executor had removed its own socket file: the replacement's lane is listened on
  // afresh, with a new id and a fresh secret.
  await Deno.remove(t.paths[0]!);
  t.router.fromSupervisor(laneOpen(0, 3, SECRETS[2]!));
  const stale = await connect(t.paths[0]!, { type: "hello", id: 1, secret: SECRETS[0]! });
  await until("the old lane's secret refused", () => stale.ended);
  const second = await connect(t.paths[0]!, { type: "hello", id: 3, secret: SECRETS[2]! });
  t.router.fromBroker({ type: "tasks", tasks: [task("t2")] });
  await until("attempt 2", () => second.received.length === 1);
  second.close(); // alive, but its lane is gone
  await until("the lane lost", () => t.toSupervisor.some((m) => m.type === "lane-lost"));
  const abandon = t.toBroker.find((m) => m.type === "abandon");
  assert.equal(abandon?.type === "abandon" && abandon.taskId, "t2");
  assert.equal(abandon?.type === "abandon" && abandon.workerId, "w0");

  t.router.fromBroker({ type: "tasks", tasks: [task("t3")] }); // no executor to take it
  t.router.fromSupervisor({ type: "abandon-queued", reason: "not started: forced" });
  const abandoned = t.toBroker.filter((m) => m.type === "abandon").map((m) =>
    m.type === "abandon" ? m.taskId : ""
  );
  assert.deepEqual(abandoned, ["t2", "t3"]);
});

Deno.test("lanes: the lanes' directory is private and named after the supervisor; one a dead supervisor left is removed at the next start, others are kept", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "lane-dir-test-" });
  try {
    const done = new Deno.Command("true").spawn();
    await done.status;
    const dead = join(tmp, `perago-lanes-${done.pid}-0a1b2c`);
    const live = join(tmp, `perago-lanes-${Deno.pid}-3d4e5f`);
    const other = join(tmp, "perago-lanes-notapid");
    const file = join(tmp, `perago-lanes-${done.pid}-ffff`);
    for (const dir of [dead, live, other]) await Deno.mkdir(dir);
    await Deno.writeTextFile(join(dead, "0.sock"), "");
    await Deno.writeTextFile(file, "");
    const made = await makeLaneDir({ tmpDir: tmp });
    assert.ok(made !== undefined);
    assert.match(made, new RegExp(`/perago-lanes-${Deno.pid}-[0-9a-f]+$`));
    assert.equal((await Deno.stat(made)).mode! & 0o777, 0o700);
    const left = new Set<string>();
    for await (const entry of Deno.readDir(tmp)) left.add(join(tmp, entry.name));
    assert.deepEqual(left, new Set([made, live, other, file]));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("lanes: a compiled binary's lanes are .perago-lanes of the workspace root (0700, made again after a kill); the workspace sweep keeps it; a root too long for socket paths turns lanes off", async () => {
  const root = await Deno.makeTempDir({ prefix: "lane-ws-test-" });
  try {
    const lanes = join(root, ".perago-lanes");
    // What a killed supervisor left: its directory (another mode) and a stale socket file.
    await Deno.mkdir(lanes, { mode: 0o755 });
    await Deno.chmod(lanes, 0o755);
    await Deno.writeTextFile(join(lanes, "0.sock"), "");
    const made = await makeLaneDir({ standalone: true, workspaceRoot: root, slots: 2 });
    assert.equal(made, lanes);
    assert.equal((await Deno.stat(lanes)).mode! & 0o777, 0o700);
    // The stale socket file is replaced when the broker listens there.
    const router = new LaneRouter({
      paths: [join(lanes, "0.sock"), join(lanes, "1.sock")],
      toBroker: () => {},
      toSupervisor: () => {},
    });
    try {
      router.fromSupervisor(laneOpen(0, 1, SECRETS[0]!));
      assert.ok((await Deno.lstat(join(lanes, "0.sock"))).isSocket);
      // No sweep of attempt directories takes the live lanes' directory for one.
      for (const ttlMs of [0, 60_000]) {
        const report = await sweepAttemptDirs(root, { ttlMs });
        assert.deepEqual(report.removed, []);
        assert.deepEqual(report.kept, [{ path: lanes, reason: "no marker" }]);
      }
      assert.ok((await Deno.lstat(join(lanes, "0.sock"))).isSocket);
    } finally {
      router.close();
    }
    const long = join(root, "x".repeat(100));
    assert.equal(await makeLaneDir({ standalone: true, workspaceRoot: long, slots: 1 }), undefined);
    await assert.rejects(Deno.lstat(long), Deno.errors.NotFound);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("lanes: under narrowed flags the workspace root's lanes are used only when every slot's socket is granted", async () => {
  const root = await Deno.makeTempDir({ prefix: "lane-ws-flags-test-" });
  try {
    const src = new URL("../../src/", import.meta.url).pathname;
    const script = join(root, "probe.ts");
    await Deno.writeTextFile(
      script,
      `import { makeLaneDir } from ${JSON.stringify(`${src}runtime/lane_dir.ts`)};
      const made = [];
      for (const slots of [1, 2]) made.push(await makeLaneDir({ workspaceRoot: ${
        JSON.stringify(root)
      }, slots }) ?? null);
      console.log(JSON.stringify(made));`,
    );
    const result = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--config",
        new URL("../../deno.json", import.meta.url).pathname,
        "--no-prompt",
        `--allow-read=${root},${src}`,
        `--allow-write=${root}`,
        `--allow-net=unix:${root}/.perago-lanes/0.sock`,
        script,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(result.stdout);
    assert.ok(result.success, new TextDecoder().decode(result.stderr));
    assert.deepEqual(JSON.parse(stdout.trim().split("\n").at(-1)!), [
      join(root, ".perago-lanes"),
      null,
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
