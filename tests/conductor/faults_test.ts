/**
 * Every fault switch of the demo Conductor, seen through the client: latency, 5xx, 429 with
 * Retry-After, dropped connections, pause, the path filter, and the HTTP admin endpoint.
 */
import assert from "node:assert/strict";
import { ConductorClient } from "../../src/conductor/client.ts";
import { ConductorError } from "../../src/conductor/errors.ts";
import { FaultInjector, FAULTS_PATH } from "../../src/devstack/faults.ts";
import {
  type ConductorServerHandle,
  startConductorServer,
} from "../../src/devstack/conductor/server.ts";
import { waitFor } from "../../src/util/sleep.ts";

async function withServer(
  fn: (server: ConductorServerHandle, client: ConductorClient) => Promise<void>,
): Promise<void> {
  const server = await startConductorServer();
  try {
    const client = new ConductorClient({
      serverUrl: server.url,
      requestTimeoutMs: 2_000,
      retry: { attempts: 1 },
    });
    await client.registerTaskDefs([{ name: "faulty" }]);
    await fn(server, client);
  } finally {
    await server.close();
  }
}

Deno.test("faults: latency delays answers; more than the request timeout is a timeout", async () => {
  await withServer(async (server, client) => {
    server.faults.set({ latencyMs: 150 });
    const started = Date.now();
    assert.equal((await client.getTaskDef("faulty"))?.name, "faulty");
    assert.ok(Date.now() - started >= 140);
    assert.ok(server.faults.injected.delayed >= 1);
    const impatient = new ConductorClient({
      serverUrl: server.url,
      requestTimeoutMs: 50,
      retry: { attempts: 1 },
    });
    await assert.rejects(impatient.getTaskDef("faulty"), /no answer within 50 ms/);
  });
});

Deno.test("faults: injected 5xx are transient errors, retried by safe calls", async () => {
  await withServer(async (server, client) => {
    server.faults.set({ errorRate: 1, errorStatus: 502 });
    const error = await client.getTaskDef("faulty").then(() => undefined, (e) => e);
    assert.ok(error instanceof ConductorError);
    assert.equal(error.status, 502);
    assert.equal(error.transient, true);
    assert.equal(error.message, "Conductor getTaskDef failed: 502 injected fault");
    // Half the requests fail: a retrying client gets through.
    let flip = false;
    const alternating = new FaultInjector(() => {
      flip = !flip;
      return flip ? 0 : 1;
    });
    alternating.set({ errorRate: 0.5 });
    const flaky = await startConductorServer({ faults: alternating });
    try {
      const retrying = new ConductorClient({
        serverUrl: flaky.url,
        retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 },
      });
      assert.equal(await retrying.getTaskDef("missing"), undefined);
      assert.equal(alternating.injected.errors, 1);
    } finally {
      await flaky.close();
    }
  });
});

Deno.test("faults: 429 with Retry-After is retried after the requested delay", async () => {
  await withServer(async (server) => {
    server.faults.set({ tooManyRate: 1, retryAfterSeconds: 0 });
    const client = new ConductorClient({
      serverUrl: server.url,
      retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 },
    });
    const error = await client.getTaskDef("faulty").then(() => undefined, (e) => e);
    assert.ok(error instanceof ConductorError);
    assert.equal(error.status, 429);
    assert.equal(server.faults.injected.tooMany, 3);
    server.faults.set({ tooManyRate: 0 });
    assert.equal((await client.getTaskDef("faulty"))?.name, "faulty");
  });
});

Deno.test("faults: a dropped connection is a transient network error", async () => {
  await withServer(async (server, client) => {
    server.faults.set({ dropRate: 1 });
    const error = await client.getTask("x").then(() => undefined, (e) => e);
    assert.ok(error instanceof ConductorError, String(error));
    assert.equal(error.status, undefined);
    assert.equal(error.transient, true);
    assert.equal(server.faults.injected.dropped, 1);
  });
});

Deno.test("faults: pause holds requests until resumed; the path filter limits faults", async () => {
  await withServer(async (server, client) => {
    server.faults.set({ errorRate: 1, pathFilter: "/tasks/poll" });
    assert.equal((await client.getTaskDef("faulty"))?.name, "faulty");
    await assert.rejects(
      client.pollBatch("faulty", { count: 1, timeoutMs: 0, workerId: "w" }),
      /503 injected fault/,
    );
    server.faults.reset();
    server.stats.reset();
    server.faults.set({ paused: true });
    let settled = false;
    const held = client.getTaskDef("faulty").finally(() => (settled = true));
    // Another request on a fresh connection shows the server alive but holding.
    const admin = await fetch(`${server.url}${FAULTS_PATH}`).then((r) => r.json());
    assert.equal(admin.paused, true);
    assert.equal(settled, false);
    assert.equal(server.stats.count("getTaskDef"), 0);
    server.faults.set({ paused: false });
    assert.equal((await held)?.name, "faulty");
    await waitFor(() => server.stats.count("getTaskDef") === 1, { what: "the held request" });
  });
});

Deno.test("faults: switches over HTTP at /_perago/faults", async () => {
  await withServer(async (server, client) => {
    const put = await fetch(`${server.url}${FAULTS_PATH}`, {
      method: "PUT",
      body: JSON.stringify({ errorRate: 1 }),
    });
    assert.equal(put.status, 200);
    assert.equal((await put.json()).errorRate, 1);
    await assert.rejects(client.getTaskDef("faulty"), /503/);
    const bad = await fetch(`${server.url}${FAULTS_PATH}`, {
      method: "PUT",
      body: JSON.stringify({ nonsense: true }),
    });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
    const reset = await fetch(`${server.url}${FAULTS_PATH}`, { method: "DELETE" });
    assert.equal((await reset.json()).errorRate, 0);
    assert.equal((await client.getTaskDef("faulty"))?.name, "faulty");
  });
});
