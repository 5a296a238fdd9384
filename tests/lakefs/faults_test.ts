import assert from "node:assert/strict";
import { FaultInjector } from "../../src/devstack/faults.ts";
import { LakeFsClient } from "../../src/lakefs/client.ts";
import { LakeFsError } from "../../src/lakefs/errors.ts";
import { waitFor } from "../../src/util/sleep.ts";
import { ACCESS_KEY_ID, body, readText, SECRET, sequence, withLakeFs } from "./_helpers.ts";

Deno.test("faults: added latency slows calls; a short request timeout fails them", async () => {
  const faults = new FaultInjector();
  await withLakeFs(async ({ client, server }) => {
    faults.set({ latencyMs: 150 });
    const started = performance.now();
    await client.getBranch("repo", "main");
    assert.ok(performance.now() - started >= 140, "latency was applied");

    const impatient = new LakeFsClient({
      endpointUrl: server.url,
      accessKeyId: ACCESS_KEY_ID,
      secretAccessKey: SECRET,
      requestTimeoutMs: 40,
      retry: { attempts: 2, baseDelayMs: 1 },
    });
    const error = await impatient.getBranch("repo", "main").then(() => undefined, (e) => e);
    assert.ok(error instanceof LakeFsError, String(error));
    assert.equal(error.status, 0);
    assert.match(error.message, /timed out after 40 ms/);
    faults.reset();
  }, { faults });
});

Deno.test("faults: requestTimeoutMs of one merge or hard reset replaces the client's timeout", async () => {
  const faults = new FaultInjector();
  await withLakeFs(async ({ server }) => {
    const patient = new LakeFsClient({
      endpointUrl: server.url,
      accessKeyId: ACCESS_KEY_ID,
      secretAccessKey: SECRET,
      requestTimeoutMs: 30_000,
      retry: { attempts: 1 },
    });
    const main = await patient.getBranch("repo", "main");
    faults.set({ latencyMs: 400, pathFilter: "/hard_reset" });
    const error = await patient.hardReset("repo", "main", main.commit_id, undefined, {
      requestTimeoutMs: 100,
    }).then(() => undefined, (e) => e);
    assert.ok(error instanceof LakeFsError, String(error));
    assert.match(error.message, /timed out after 100 ms/);
    faults.set({ pathFilter: "/merge/" });
    await patient.createBranch("repo", "side", "main");
    await patient.uploadObject("repo", "side", "x.txt", body("x"));
    await patient.commit("repo", "side", "x");
    const slowMerge = await patient.merge("repo", "side", "main", { requestTimeoutMs: 100 })
      .then(() => undefined, (e) => e);
    assert.match(String(slowMerge), /timed out after 100 ms/);
    faults.reset();
    // A generous one still lets the call through.
    await patient.hardReset("repo", "main", main.commit_id, undefined, { requestTimeoutMs: 5_000 });
  }, { faults });
});

Deno.test("faults: 5xx is retried to success", async () => {
  const faults = new FaultInjector(sequence(0, 0));
  await withLakeFs(async ({ client, server }) => {
    faults.set({ errorRate: 0.5, errorStatus: 503 });
    const ref = await client.getBranch("repo", "main");
    assert.equal(ref.id, "main");
    assert.equal(faults.injected.errors, 2);
    assert.equal(server.stats.count("getBranch"), 3);
  }, { faults });
});

Deno.test("faults: 5xx on an upload reopens the body and succeeds", async () => {
  const faults = new FaultInjector(sequence(0));
  await withLakeFs(async ({ client }) => {
    faults.set({ errorRate: 0.5, pathFilter: "/objects" });
    let opened = 0;
    const stats = await client.uploadObject("repo", "main", "f", () => {
      opened++;
      return Promise.resolve(new Blob(["payload"]).stream());
    }, { size: 7 });
    assert.equal(opened, 2);
    assert.equal(stats.size_bytes, 7);
    faults.reset();
    assert.equal(await readText(await client.getObject("repo", "main", "f")), "payload");
  }, { faults });
});

Deno.test("faults: persistent 5xx gives up after the configured attempts", async () => {
  const faults = new FaultInjector();
  await withLakeFs(async ({ client, server }) => {
    faults.set({ errorRate: 1, errorStatus: 500 });
    const error = await client.getBranch("repo", "main").then(() => undefined, (e) => e);
    assert.ok(error instanceof LakeFsError);
    assert.equal(error.status, 500);
    assert.equal(error.message, "lakeFS getBranch failed: 500 injected fault");
    assert.equal(server.stats.count("getBranch"), 3);
  }, { faults, client: { retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 } } });
});

Deno.test("faults: 429 with Retry-After is honoured", async () => {
  const faults = new FaultInjector(sequence(0));
  await withLakeFs(async ({ client, server }) => {
    faults.set({ tooManyRate: 0.5, retryAfterSeconds: 1 });
    const started = performance.now();
    await client.uploadObject("repo", "main", "f", body("x"));
    const elapsed = performance.now() - started;
    assert.equal(faults.injected.tooMany, 1);
    assert.equal(server.stats.count("uploadObject"), 2);
    assert.ok(elapsed >= 950, `waited ${elapsed} ms, Retry-After asked for 1000`);
  }, { faults, client: { retry: { baseDelayMs: 1, maxDelayMs: 5_000 } } });
});

Deno.test("faults: a dropped connection is retried", async () => {
  const faults = new FaultInjector(sequence(0, 1, 0));
  await withLakeFs(async ({ client, server }) => {
    await client.uploadObject("repo", "main", "f", body("dropped?"));
    faults.set({ dropRate: 0.5 });
    // First getBranch dropped, second fine; then the object download is dropped once.
    assert.equal((await client.getBranch("repo", "main")).id, "main");
    assert.equal(await readText(await client.getObject("repo", "main", "f")), "dropped?");
    assert.equal(faults.injected.dropped, 2);
    assert.equal(server.stats.count("getBranch"), 2);
    assert.equal(server.stats.count("getObject"), 2);
  }, { faults });
});

Deno.test("faults: a dropped connection on an upload (201) and a delete (204) is retried", async () => {
  const faults = new FaultInjector(sequence(0, 1, 0));
  await withLakeFs(async ({ client, server }) => {
    faults.set({ dropRate: 0.5 });
    let opened = 0;
    await client.uploadObject("repo", "main", "f", () => {
      opened++;
      return Promise.resolve(new Blob(["again"]).stream());
    });
    assert.equal(opened, 2);
    await client.deleteObject("repo", "main", "f");
    assert.equal(faults.injected.dropped, 2);
    assert.equal(server.stats.count("uploadObject"), 2);
    assert.equal(server.stats.count("deleteObject"), 2);
  }, { faults });
});

Deno.test("faults: pause holds requests until resumed; the call then completes", async () => {
  const faults = new FaultInjector();
  await withLakeFs(async ({ client, server }) => {
    faults.set({ paused: true });
    let done = false;
    const pending = client.getBranch("repo", "main").finally(() => done = true);
    await waitFor(() => server.stats.count("getBranch") >= 1, { what: "request arrived" });
    // Give the paused request a moment to prove it is held, then resume.
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(done, false);
    faults.set({ paused: false });
    assert.equal((await pending).id, "main");
  }, { faults });
});

Deno.test("faults: a paused server makes a call time out, then retry after resume", async () => {
  const faults = new FaultInjector();
  await withLakeFs(async ({ client, server }) => {
    faults.set({ paused: true });
    const pending = client.getBranch("repo", "main");
    await waitFor(() => server.stats.count("getBranch") >= 2, { what: "a retry after timeout" });
    faults.set({ paused: false });
    assert.equal((await pending).id, "main");
  }, { faults, client: { requestTimeoutMs: 100, retry: { attempts: 10, baseDelayMs: 1 } } });
});

Deno.test("a malformed answer becomes a clear LakeFsError naming the call", async () => {
  const answers: Record<string, () => Response> = {
    "/api/v1/repositories/r/refs/main/objects/ls": () => Response.json({ results: "nope" }),
    "/api/v1/repositories/r/branches/main": () => new Response("<html>proxy</html>"),
    "/api/v1/repositories/r/commits/c": () => Response.json({ id: 1 }),
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const answer = answers[new URL(req.url).pathname];
    return answer ? answer() : new Response("no", { status: 404 });
  });
  try {
    const client = new LakeFsClient({
      endpointUrl: `http://127.0.0.1:${server.addr.port}`,
      accessKeyId: "id",
      secretAccessKey: "secret",
      retry: { attempts: 1 },
    });
    const list = async () => {
      for await (const _ of client.listObjects("r", "main")) { /* drain */ }
    };
    await assert.rejects(list(), (e) => {
      assert.ok(e instanceof LakeFsError);
      assert.match(e.message, /^lakeFS listObjects returned an unexpected body: /);
      return true;
    });
    await assert.rejects(client.getBranch("r", "main"), (e) => {
      assert.ok(e instanceof LakeFsError);
      assert.match(e.message, /^lakeFS getBranch returned an unexpected body: not JSON/);
      return true;
    });
    await assert.rejects(
      client.getCommit("r", "c"),
      /lakeFS getCommit returned an unexpected body: id/,
    );
  } finally {
    await server.shutdown();
  }
});

Deno.test("a listing page is checked entry by entry: what zod refuses stays refused, with its message", async () => {
  const entry = (extra: Record<string, unknown>) => ({
    path: "a.txt",
    path_type: "object",
    physical_address: "local://x/a",
    checksum: "0cc175b9c0f1b6a831c399e269772661",
    size_bytes: 1,
    mtime: 1,
    metadata: { k: "v" },
    newer_field: true,
    ...extra,
  });
  const pages: Record<string, unknown> = {
    good: { pagination: PAGE_END, results: [entry({}), entry({ path: "b.txt" })] },
    negative: { pagination: PAGE_END, results: [entry({}), entry({ size_bytes: -1 })] },
    kind: { pagination: PAGE_END, results: [entry({ path_type: "folder" })] },
    metadata: { pagination: PAGE_END, results: [entry({ metadata: { k: 1 } })] },
    nulled: { pagination: PAGE_END, results: [entry({ content_type: null })] },
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const ref = new URL(req.url).pathname.split("/")[6]!;
    return Response.json(pages[ref]);
  });
  try {
    const client = new LakeFsClient({
      endpointUrl: `http://127.0.0.1:${server.addr.port}`,
      accessKeyId: "id",
      secretAccessKey: "secret",
      retry: { attempts: 1 },
    });
    const list = async (ref: string) => {
      const found = [];
      for await (const stats of client.listObjects("r", ref)) found.push(stats);
      return found;
    };
    const good = await list("good");
    assert.deepEqual(good.map((stats) => stats.path), ["a.txt", "b.txt"]);
    // Fields a newer server adds are kept.
    assert.equal((good[0] as Record<string, unknown>).newer_field, true);
    const refused = [
      ["negative", /results\.1\.size_bytes: Too small/],
      ["kind", /results\.0\.path_type: Invalid option/],
      ["metadata", /results\.0\.metadata\.k: Invalid input: expected string/],
      ["nulled", /results\.0\.content_type: Invalid input: expected string, received null/],
    ] as const;
    for (const [ref, message] of refused) {
      await assert.rejects(list(ref), (e) => {
        assert.ok(e instanceof LakeFsError);
        assert.match(e.message, /^lakeFS listObjects returned an unexpected body: /);
        assert.match(e.message, message);
        return true;
      });
    }
  } finally {
    await server.shutdown();
  }
});

const PAGE_END = { has_more: false, next_offset: "", results: 2, max_per_page: 1000 };

Deno.test("faults: small reads over kept-alive connections retry 5xx and drops, report 404 and time out", async () => {
  const faults = new FaultInjector(sequence(0, 1, 0, 1, 0));
  await withLakeFs(async ({ client, server }) => {
    await client.uploadObject("repo", "main", "f", body("kept alive"));
    const connections = client.openConnections();
    assert.ok(connections !== undefined, "a plain-http endpoint has kept-alive connections");
    try {
      const read = () => client.getObjectBytes("repo", "main", "f", { maxBytes: 100, connections });
      // The first read is answered 503 once, the second dropped once: both retried.
      faults.set({ errorRate: 0.5, errorStatus: 503, pathFilter: "/objects" });
      assert.equal(new TextDecoder().decode(await read()), "kept alive");
      faults.reset();
      faults.set({ dropRate: 0.5, pathFilter: "/objects" });
      assert.equal(new TextDecoder().decode(await read()), "kept alive");
      assert.equal(faults.injected.errors, 1);
      assert.equal(faults.injected.dropped, 1);
      assert.equal(server.stats.count("getObject"), 4);
      faults.reset();
      await assert.rejects(
        client.getObjectBytes("repo", "main", "missing", { maxBytes: 100, connections }),
        (error: unknown) => error instanceof LakeFsError && error.status === 404,
      );
      faults.set({ latencyMs: 500 });
      const impatient = new LakeFsClient({
        endpointUrl: server.url,
        accessKeyId: ACCESS_KEY_ID,
        secretAccessKey: SECRET,
        requestTimeoutMs: 40,
        retry: { attempts: 1 },
      });
      await assert.rejects(
        impatient.getObjectBytes("repo", "main", "f", { maxBytes: 100, connections }),
        /timed out after 40 ms/,
      );
      faults.reset();
    } finally {
      connections?.close();
    }
  }, { faults });
});

Deno.test("kept-alive reads find keys with any characters (spaces, quotes, ~, +, %, non-ASCII)", async () => {
  await withLakeFs(async ({ client }) => {
    const keys = ["dir/a b!'()~*-._.txt", "plus+and%25&=?#.txt", "é/ü 日本.txt", "x\ud800y"];
    for (const key of keys) await client.uploadObject("repo", "main", key, body(`<${key}>`));
    const connections = client.openConnections();
    try {
      for (const key of keys) {
        const data = await client.getObjectBytes("repo", "main", key, {
          maxBytes: 100,
          connections,
        });
        // A lone surrogate becomes U+FFFD on the way, as URLSearchParams sends it.
        const expected = `<${key}>`.replace("\ud800", "\ufffd");
        assert.equal(new TextDecoder().decode(data), expected);
      }
    } finally {
      connections?.close();
    }
  });
});

Deno.test("noProxy of the options replaces the client's own look at the environment for proxies", () => {
  const saved = Deno.env.get("HTTP_PROXY");
  const client = (noProxy?: boolean) =>
    new LakeFsClient({
      endpointUrl: "http://127.0.0.1:1",
      accessKeyId: ACCESS_KEY_ID,
      secretAccessKey: SECRET,
      ...(noProxy === undefined ? {} : { noProxy }),
    });
  try {
    Deno.env.set("HTTP_PROXY", "http://127.0.0.1:9");
    assert.equal(client().openConnections(), undefined, "a proxy in the environment: fetch");
    // An executor may not read its environment: the supervisor that could says none is set.
    assert.ok(client(true).openConnections() !== undefined);
    Deno.env.delete("HTTP_PROXY");
    assert.ok(client().openConnections() !== undefined);
    assert.equal(client(false).openConnections(), undefined);
  } finally {
    if (saved === undefined) Deno.env.delete("HTTP_PROXY");
    else Deno.env.set("HTTP_PROXY", saved);
  }
});
