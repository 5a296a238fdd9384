/**
 * ConductorClient: URL forms, calls against the demo server, malformed answers from a tiny
 * junk server, timeouts, aborts, retry policy per call, and token auth against a fake token
 * endpoint.
 */
import assert from "node:assert/strict";
import { ConductorClient, normaliseConductorUrl } from "../../src/conductor/client.ts";
import { ConductorError, ConductorNotFoundError } from "../../src/conductor/errors.ts";
import { startConductorServer } from "../../src/devstack/conductor/server.ts";

interface Seen {
  url: string;
  method: string;
  headers: Headers;
}

/** A tiny server whose answers the test scripts; records what it was asked. */
async function withJunkServer(
  handler: (request: Request, n: number) => Response | Promise<Response>,
  fn: (url: string, seen: Seen[]) => Promise<void>,
): Promise<void> {
  const seen: Seen[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    seen.push({ url: request.url, method: request.method, headers: request.headers });
    return handler(request, seen.length);
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`, seen);
  } finally {
    await server.shutdown();
  }
}

Deno.test("client: server URL with or without /api and trailing slashes", () => {
  for (const url of ["http://h:1", "http://h:1/", "http://h:1/api", "http://h:1/api/"]) {
    assert.deepEqual(normaliseConductorUrl(url), { apiBase: "http://h:1/api", root: "http://h:1" });
  }
  assert.deepEqual(normaliseConductorUrl("https://h/conductor/api"), {
    apiBase: "https://h/conductor/api",
    root: "https://h/conductor",
  });
  assert.throws(() => normaliseConductorUrl("not a url"), TypeError);
  assert.throws(() => normaliseConductorUrl("ftp://h"), TypeError);
  assert.throws(() => new ConductorClient({ serverUrl: "http://h", authKey: "k" }), TypeError);
});

Deno.test("client: full round trip against the demo server", async () => {
  const server = await startConductorServer();
  try {
    for (const serverUrl of [server.url, `${server.url}/api/`]) {
      const client = new ConductorClient({ serverUrl });
      const name = `client_rt_${crypto.randomUUID().slice(0, 8)}`;
      assert.equal(await client.health(), true);
      assert.equal(await client.getTaskDef(name), undefined);
      await client.registerTaskDefs([{ name, retryCount: 0, responseTimeoutSeconds: 60 }]);
      assert.equal((await client.getTaskDef(name))?.responseTimeoutSeconds, 60);
      await client.upsertWorkflowDefs([{
        name: `${name}_wf`,
        version: 1,
        schemaVersion: 2,
        tasks: [{
          name,
          taskReferenceName: "t",
          type: "SIMPLE",
          inputParameters: { p: "${workflow.input.p}" },
        }],
      }]);
      const workflowId = await client.startWorkflow(`${name}_wf`, { p: 42 }, { version: 1 });
      const [task] = await client.pollBatch(name, { count: 1, timeoutMs: 1000, workerId: "w" });
      assert.ok(task);
      assert.deepEqual(task.inputData, { p: 42 });
      await client.addTaskLog(task.taskId, "a line");
      assert.equal(
        await client.updateTask({
          workflowInstanceId: workflowId,
          taskId: task.taskId,
          status: "COMPLETED",
          outputData: { r: 1 },
        }),
        task.taskId,
      );
      const workflow = await client.getWorkflow(workflowId);
      assert.equal(workflow.status, "COMPLETED");
      assert.deepEqual(workflow.output, { r: 1 });
      assert.deepEqual(await client.pollBatch(name, { count: 1, timeoutMs: 0, workerId: "w" }), []);
    }
    assert.ok(server.stats.count("pollBatch") >= 4);
    await assert.rejects(
      new ConductorClient({ serverUrl: server.url }).pollBatch("x", {
        count: 0,
        timeoutMs: 0,
        workerId: "w",
      }),
      RangeError,
    );
  } finally {
    await server.close();
  }
});

Deno.test("client: malformed answers become ConductorError naming the call", async () => {
  const answers: Record<string, Response | (() => Response)> = {
    "/api/tasks/poll/batch/junk": () => new Response("<html>oops</html>", { status: 200 }),
    "/api/tasks/poll/batch/shape": () => Response.json([{ taskId: 1 }]),
    "/api/tasks/poll/batch/notlist": () => Response.json({ taskId: "x" }),
    "/api/tasks/poll/batch/empty200": () => new Response("", { status: 200 }),
    "/api/tasks/poll/batch/nocontent": () => new Response(null, { status: 204 }),
    "/api/tasks/gone204": () => new Response(null, { status: 204 }),
    "/api/tasks/badstatus": () =>
      Response.json({ taskId: "t", workflowInstanceId: "w", status: "WEIRD", taskType: "x" }),
    "/api/workflow/w1": () => Response.json({ workflowId: "w1", status: "RUNNING", tasks: "no" }),
    "/api/metadata/taskdefs/html": () => new Response("{", { status: 200 }),
  };
  await withJunkServer((request) => {
    const answer = answers[new URL(request.url).pathname];
    if (!answer) return Response.json({ message: "no" }, { status: 418 });
    return typeof answer === "function" ? answer() : answer;
  }, async (url) => {
    const client = new ConductorClient({ serverUrl: url, retry: { attempts: 1 } });
    const poll = (type: string) =>
      client.pollBatch(type, { count: 1, timeoutMs: 0, workerId: "w" });
    for (const type of ["junk", "shape", "notlist"]) {
      const error = await poll(type).then(() => undefined, (e) => e);
      assert.ok(error instanceof ConductorError, `${type}: ${error}`);
      assert.equal(error.operation, "pollBatch");
      assert.match(error.message, /^Conductor pollBatch failed: 200 /);
      assert.equal(error.transient, false);
    }
    assert.deepEqual(await poll("empty200"), []);
    assert.deepEqual(await poll("nocontent"), []);
    await assert.rejects(client.getTask("gone204"), ConductorNotFoundError);
    await assert.rejects(client.getTask("badstatus"), /Conductor getTask failed: 200 .*status/);
    await assert.rejects(client.getWorkflow("w1"), /Conductor getWorkflow failed: 200 .*tasks/);
    await assert.rejects(
      client.getTaskDef("html"),
      /Conductor getTaskDef failed: 200 malformed JSON/,
    );
    const teapot = await client.health();
    assert.equal(teapot, false);
    await assert.rejects(
      client.updateTask({ workflowInstanceId: "w", taskId: "t", status: "COMPLETED" }),
      (error: unknown) =>
        error instanceof ConductorError && error.status === 418 && error.serverMessage === "no" &&
        error.message === "Conductor updateTask failed: 418 no",
    );
  });
});

Deno.test("client: retries safe calls on 5xx, never retries polls, honours Retry-After", async () => {
  let failuresLeft = 0;
  await withJunkServer((request) => {
    const path = new URL(request.url).pathname;
    if (failuresLeft > 0) {
      failuresLeft--;
      return path.includes("ratelimited")
        ? Response.json({ message: "slow down" }, { status: 429, headers: { "retry-after": "0" } })
        : Response.json({ message: "down" }, { status: 503 });
    }
    if (path.startsWith("/api/tasks/poll")) return Response.json([]);
    if (path === "/api/tasks") return new Response("t1");
    return Response.json({
      taskId: "t1",
      workflowInstanceId: "w",
      status: "COMPLETED",
      taskType: "x",
    });
  }, async (url, seen) => {
    const client = new ConductorClient({
      serverUrl: url,
      retry: { attempts: 4, baseDelayMs: 1, maxDelayMs: 5 },
    });
    failuresLeft = 2;
    assert.equal((await client.getTask("t1")).status, "COMPLETED");
    assert.equal(seen.length, 3);
    failuresLeft = 2;
    assert.equal(
      await client.updateTask({ workflowInstanceId: "w", taskId: "t1", status: "COMPLETED" }),
      "t1",
    );
    assert.equal(seen.length, 6);
    failuresLeft = 1;
    const pollError = await client.pollBatch("x", { count: 1, timeoutMs: 0, workerId: "w" })
      .then(() => undefined, (e) => e);
    assert.ok(pollError instanceof ConductorError && pollError.status === 503);
    assert.equal(pollError.transient, true);
    assert.equal(seen.length, 7, "a poll is not retried");
    failuresLeft = 10;
    await assert.rejects(client.getTask("t1"), /503 down/);
    assert.equal(seen.length, 11, "gives up after the attempts");
    failuresLeft = 1;
    assert.equal((await client.getTask("ratelimited")).taskId, "t1");
  });
});

Deno.test("client: network errors, timeouts and aborts", async () => {
  // A port with nothing listening.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const dead = new ConductorClient({
    serverUrl: `http://127.0.0.1:${deadPort}`,
    retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 },
  });
  const error = await dead.getTask("x").then(() => undefined, (e) => e);
  assert.ok(error instanceof ConductorError);
  assert.equal(error.status, undefined);
  assert.equal(error.transient, true);
  assert.match(error.message, /^Conductor getTask failed: network error/);
  assert.equal(await dead.health(), false);

  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  await withJunkServer(async () => {
    await released;
    return Response.json([]);
  }, async (url) => {
    try {
      const slow = new ConductorClient({ serverUrl: url, requestTimeoutMs: 100 });
      const started = Date.now();
      await assert.rejects(slow.getTaskDef("x"), /no answer within 100 ms/);
      assert.ok(Date.now() - started < 5_000);
      // A long poll gets its poll time on top of the request timeout.
      const polling = slow.pollBatch("x", { count: 1, timeoutMs: 300, workerId: "w" });
      const reason = new Error("stop now");
      const controller = new AbortController();
      const aborted = slow.getTask("y", controller.signal);
      controller.abort(reason);
      await assert.rejects(aborted, (e) => e === reason);
      await assert.rejects(polling, /no answer within 400 ms/);
    } finally {
      release();
    }
  });
});

Deno.test("client: token auth fetches once, sends X-Authorization, refreshes on 401", async () => {
  let issued = 0;
  let valid = "";
  await withJunkServer(async (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/api/token") {
      const body = await request.json();
      if (body.keyId !== "key-1" || body.keySecret !== "s3cret-value") {
        return Response.json({ message: "bad credentials s3cret-value" }, { status: 401 });
      }
      valid = `token-${++issued}`;
      return Response.json({ token: valid });
    }
    if (request.headers.get("x-authorization") !== valid) {
      return Response.json({ message: "EXPIRED_TOKEN" }, { status: 401 });
    }
    return Response.json({ name: "def" });
  }, async (url, seen) => {
    const client = new ConductorClient({
      serverUrl: url,
      authKey: "key-1",
      authSecret: { reveal: () => "s3cret-value" },
    });
    assert.equal((await client.getTaskDef("def"))?.name, "def");
    assert.equal((await client.getTaskDef("def"))?.name, "def");
    assert.equal(issued, 1, "the token is cached");
    valid = "rotated-by-server";
    assert.equal((await client.getTaskDef("def"))?.name, "def");
    assert.equal(issued, 2, "a 401 fetches a fresh token once");
    const authed = seen.filter((r) => r.headers.get("x-authorization") !== null);
    assert.ok(authed.length >= 3);

    const wrong = new ConductorClient({
      serverUrl: url,
      authKey: "key-1",
      authSecret: "wrong-secret",
    });
    const error = await wrong.getTaskDef("def").then(() => undefined, (e) => e);
    assert.ok(error instanceof ConductorError);
    assert.equal(error.operation, "token");
    assert.equal(error.status, 401);
    assert.ok(!error.message.includes("wrong-secret"), "the secret never shows in errors");
  });
});

Deno.test("client: update-v2 falls back to plain updates on a server without it, for good", async () => {
  const result = {
    workflowInstanceId: "wf",
    taskId: "t1",
    status: "COMPLETED" as const,
    workerId: "w",
  };
  // Conductor 3.21 answers an unmapped POST with a 500 "Request method 'POST' is not supported".
  await withJunkServer((request) => {
    const path = new URL(request.url).pathname;
    if (path === "/api/tasks/update-v2") {
      return Response.json({ status: 500, message: "Request method 'POST' is not supported" }, {
        status: 500,
      });
    }
    return new Response("t1");
  }, async (url, seen) => {
    const client = new ConductorClient({ serverUrl: url, retry: { baseDelayMs: 1 } });
    assert.equal(await client.updateTaskV2(result), undefined);
    assert.equal(await client.updateTaskV2(result), undefined);
    assert.deepEqual(seen.map((s) => new URL(s.url).pathname), [
      "/api/tasks/update-v2",
      "/api/tasks",
      "/api/tasks",
    ]);
  });
  // A 404 about the task is the task being gone, not a missing endpoint.
  await withJunkServer(
    () =>
      Response.json({ status: 404, message: "No such workflow found by id: wf" }, { status: 404 }),
    async (url, seen) => {
      const client = new ConductorClient({ serverUrl: url });
      await assert.rejects(client.updateTaskV2(result), ConductorNotFoundError);
      assert.equal(seen.length, 1);
    },
  );
});
