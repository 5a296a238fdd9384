import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  LakeFsAuthError,
  LakeFsConflictError,
  LakeFsError,
  lakeFsErrorFor,
  LakeFsNoChangesError,
  LakeFsNotFoundError,
  LakeFsProtectedBranchError,
} from "../../src/lakefs/errors.ts";
import { LakeFsClient, normalizeEndpoint } from "../../src/lakefs/client.ts";
import { body, bytes, readText, SECRET, withLakeFs } from "./_helpers.ts";

Deno.test("normalizeEndpoint adds /api/v1 once and rejects non-http URLs", () => {
  assert.equal(normalizeEndpoint("http://h:8000"), "http://h:8000/api/v1");
  assert.equal(normalizeEndpoint("http://h:8000/"), "http://h:8000/api/v1");
  assert.equal(normalizeEndpoint("http://h:8000/api/v1/"), "http://h:8000/api/v1");
  assert.equal(normalizeEndpoint("https://h/lakefs"), "https://h/lakefs/api/v1");
  assert.throws(() => normalizeEndpoint("ftp://h"), TypeError);
  assert.throws(() => normalizeEndpoint("not a url"), TypeError);
});

Deno.test("createRepository / getRepository: 201, 409 on duplicate, 404 when missing", async () => {
  await withLakeFs(async ({ client }) => {
    const repo = await client.createRepository("other-repo", "local://bucket/o", "trunk");
    assert.equal(repo.id, "other-repo");
    assert.equal(repo.default_branch, "trunk");
    assert.equal((await client.getRepository("other-repo")).storage_namespace, "local://bucket/o");
    await assert.rejects(
      client.createRepository("other-repo", "local://bucket/other"),
      LakeFsConflictError,
    );
    await assert.rejects(client.getRepository("nope-repo"), LakeFsNotFoundError);
    // The initial commit, as on the real server.
    const head = await client.getCommit("other-repo", "trunk");
    assert.equal(head.message, "Repository created");
    assert.deepEqual(head.parents, []);
  });
});

Deno.test("uploadObject returns hex MD5; getObject streams it back; 404 when missing", async () => {
  await withLakeFs(async ({ client }) => {
    const stats = await client.uploadObject("repo", "main", "a/hello.txt", body("hello"));
    assert.equal(stats.checksum, createHash("md5").update("hello").digest("hex"));
    assert.equal(stats.size_bytes, 5);
    assert.equal(stats.path, "a/hello.txt");
    assert.equal(await readText(await client.getObject("repo", "main", "a/hello.txt")), "hello");
    await assert.rejects(client.getObject("repo", "main", "missing"), LakeFsNotFoundError);
  });
});

Deno.test("a multi-MB object streams up and down without corruption", async () => {
  await withLakeFs(async ({ client }) => {
    const size = 6 * 1024 * 1024 + 17;
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = (i * 31 + 7) & 0xff;
    let opened = 0;
    const stats = await client.uploadObject("repo", "main", "big.bin", () => {
      opened++;
      return Promise.resolve(new Blob([data]).stream());
    }, { size });
    assert.equal(opened, 1);
    assert.equal(stats.size_bytes, size);
    assert.equal(stats.checksum, createHash("md5").update(data).digest("hex"));
    const stream = await client.getObject("repo", "main", "big.bin");
    const hash = createHash("md5");
    let received = 0;
    let chunks = 0;
    for await (const chunk of stream) {
      hash.update(chunk);
      received += chunk.byteLength;
      chunks++;
    }
    assert.equal(received, size);
    assert.ok(chunks > 1, "the body arrived in more than one chunk");
    assert.equal(hash.digest("hex"), stats.checksum);
  });
});

Deno.test("listObjects pages through more than one page, honours prefix and delimiter", async () => {
  await withLakeFs(async ({ client, server }) => {
    const paths = Array.from({ length: 25 }, (_, i) => `data/f${String(i).padStart(2, "0")}`);
    for (const p of paths) await client.uploadObject("repo", "main", p, body(p));
    await client.uploadObject("repo", "main", "data/sub/x", body("x"));
    await client.uploadObject("repo", "main", "top", body("t"));
    server.stats.reset();
    const listed = await Array.fromAsync(
      client.listObjects("repo", "main", { prefix: "data/f", amount: 10 }),
    );
    assert.deepEqual(listed.map((o) => o.path), paths);
    assert.equal(server.stats.count("listObjects"), 3);
    const flat = await Array.fromAsync(client.listObjects("repo", "main"));
    assert.equal(flat.length, 27);
    const grouped = await Array.fromAsync(client.listObjects("repo", "main", { delimiter: "/" }));
    assert.deepEqual(grouped.map((o) => [o.path, o.path_type]), [
      ["data/", "common_prefix"],
      ["top", "object"],
    ]);
    const after = await Array.fromAsync(
      client.listObjects("repo", "main", { prefix: "data/", after: "data/f23" }),
    );
    assert.deepEqual(after.map((o) => o.path), ["data/f24", "data/sub/x"]);
  });
});

Deno.test("deleteObject is 204 also when missing; deleteObjects chunks 1500 paths into 2 requests", async () => {
  await withLakeFs(async ({ client, server }) => {
    await client.uploadObject("repo", "main", "one", body("1"));
    await client.deleteObject("repo", "main", "one");
    await client.deleteObject("repo", "main", "never-existed");
    assert.deepEqual(await Array.fromAsync(client.listObjects("repo", "main")), []);

    const paths = Array.from({ length: 1500 }, (_, i) => `bulk/${i}`);
    for (const p of paths.slice(0, 3)) await client.uploadObject("repo", "main", p, body(p));
    await client.uploadObject("repo", "main", "bulk/1499", body("last"));
    await client.uploadObject("repo", "main", "keep", body("k"));
    server.stats.reset();
    await client.deleteObjects("repo", "main", paths);
    assert.equal(server.stats.count("deleteObjects"), 2);
    const left = await Array.fromAsync(client.listObjects("repo", "main"));
    assert.deepEqual(left.map((o) => o.path), ["keep"]);
  });
});

Deno.test("deleteObjects throws when the server lists per-path errors", async () => {
  await withLakeFs(async ({ client }) => {
    const error = await client.deleteObjects("repo", "main", ["ok", ""]).then(
      () => undefined,
      (e) => e,
    );
    assert.ok(error instanceof LakeFsError);
    assert.match(error.message, /1 path\(s\) not deleted/);
  });
});

Deno.test("createBranch / getBranch / listBranches (paginated) / deleteBranch", async () => {
  await withLakeFs(async ({ client }) => {
    const main = await client.getBranch("repo", "main");
    const source = await client.createBranch("repo", "feature-1", "main");
    assert.equal(source, main.commit_id);
    assert.deepEqual(await client.getBranch("repo", "feature-1"), {
      id: "feature-1",
      commit_id: main.commit_id,
    });
    await assert.rejects(client.createBranch("repo", "feature-1", "main"), LakeFsConflictError);
    await assert.rejects(client.createBranch("repo", "x", "no-such-ref"), LakeFsNotFoundError);
    // From a commit id, too.
    assert.equal(await client.createBranch("repo", "from-commit", main.commit_id), main.commit_id);
    for (let i = 0; i < 1005; i++) await client.createBranch("repo", `many-${i}`, "main");
    const all = await Array.fromAsync(client.listBranches("repo"));
    assert.equal(all.length, 1005 + 3);
    const some = await Array.fromAsync(client.listBranches("repo", { prefix: "feature" }));
    assert.deepEqual(some.map((b) => b.id), ["feature-1"]);
    await client.deleteBranch("repo", "feature-1");
    await assert.rejects(client.getBranch("repo", "feature-1"), LakeFsNotFoundError);
    await assert.rejects(client.deleteBranch("repo", "feature-1"), LakeFsNotFoundError);
  });
});

Deno.test("deleting the default branch is refused with 403", async () => {
  await withLakeFs(async ({ client }) => {
    const error = await client.deleteBranch("repo", "main").then(() => undefined, (e) => e);
    assert.ok(error instanceof LakeFsError);
    assert.equal(error.status, 403);
  });
});

Deno.test("commit: staged changes become a commit; no changes -> LakeFsNoChangesError", async () => {
  await withLakeFs(async ({ client }) => {
    const before = await client.getBranch("repo", "main");
    await client.uploadObject("repo", "main", "f", body("v1"));
    const commit = await client.commit("repo", "main", "add f", { metadata: { k: "v" } });
    assert.deepEqual(commit.parents, [before.commit_id]);
    assert.equal(commit.message, "add f");
    assert.deepEqual(commit.metadata, { k: "v" });
    assert.equal((await client.getCommit("repo", commit.id)).id, commit.id);
    const error = await client.commit("repo", "main", "again").then(() => undefined, (e) => e);
    assert.ok(error instanceof LakeFsNoChangesError, String(error));
    assert.equal(error.status, 400);
    const empty = await client.commit("repo", "main", "empty", { allowEmpty: true });
    assert.deepEqual(empty.parents, [commit.id]);
    // Re-uploading identical content is not a change either.
    await client.uploadObject("repo", "main", "f", body("v1"));
    await assert.rejects(client.commit("repo", "main", "same"), LakeFsNoChangesError);
    // A committed object is visible at the commit id, an uncommitted one only on the branch.
    await client.uploadObject("repo", "main", "g", body("staged"));
    assert.equal(await readText(await client.getObject("repo", "main", "g")), "staged");
    await assert.rejects(client.getObject("repo", commit.id, "g"), LakeFsNotFoundError);
    assert.equal(await readText(await client.getObject("repo", commit.id, "f")), "v1");
  });
});

Deno.test("getCommit: 404 for an unknown commit", async () => {
  await withLakeFs(async ({ client }) => {
    await assert.rejects(client.getCommit("repo", "a".repeat(64)), LakeFsNotFoundError);
  });
});

Deno.test("merge: squash merge has the destination head as its only parent", async () => {
  await withLakeFs(async ({ client }) => {
    const base = await client.getBranch("repo", "main");
    await client.createBranch("repo", "stage", "main");
    await client.uploadObject("repo", "stage", "out.txt", body("result"));
    const staged = await client.commit("repo", "stage", "staged");
    const ref = await client.merge("repo", "stage", "main", { squashMerge: true, message: "pub" });
    const merged = await client.getCommit("repo", ref);
    assert.deepEqual(merged.parents, [base.commit_id]);
    assert.equal(merged.message, "pub");
    assert.equal((await client.getBranch("repo", "main")).commit_id, ref);
    assert.equal(await readText(await client.getObject("repo", "main", "out.txt")), "result");
    // Nothing to merge: a source with no change since its merge base (main into itself).
    await assert.rejects(client.merge("repo", "main", "main"), LakeFsNoChangesError);
    // A plain merge has two parents.
    await client.uploadObject("repo", "stage", "more.txt", body("more"));
    const second = await client.commit("repo", "stage", "more");
    const ref2 = await client.merge("repo", "stage", "main");
    assert.deepEqual((await client.getCommit("repo", ref2)).parents, [ref, second.id]);
    assert.notEqual(staged.id, second.id);
  });
});

Deno.test("merge: conflicting changes -> 409 unless a strategy picks a side", async () => {
  await withLakeFs(async ({ client }) => {
    await client.uploadObject("repo", "main", "f", body("base"));
    await client.commit("repo", "main", "base");
    await client.createBranch("repo", "a", "main");
    await client.uploadObject("repo", "a", "f", body("from a"));
    await client.commit("repo", "a", "a");
    await client.uploadObject("repo", "main", "f", body("from main"));
    await client.commit("repo", "main", "main");
    await assert.rejects(client.merge("repo", "a", "main"), LakeFsConflictError);
    await client.merge("repo", "a", "main", { strategy: "source-wins" });
    assert.equal(await readText(await client.getObject("repo", "main", "f")), "from a");
  });
});

Deno.test("merge into a branch with uncommitted changes -> 400", async () => {
  await withLakeFs(async ({ client }) => {
    await client.createBranch("repo", "a", "main");
    await client.uploadObject("repo", "a", "x", body("x"));
    await client.commit("repo", "a", "a");
    await client.uploadObject("repo", "main", "dirty", body("d"));
    const error = await client.merge("repo", "a", "main").then(() => undefined, (e) => e);
    assert.ok(error instanceof LakeFsError);
    assert.equal(error.status, 400);
    assert.match(error.message, /dirty/);
  });
});

Deno.test("hardReset moves a branch to a ref", async () => {
  await withLakeFs(async ({ client }) => {
    const first = await client.getBranch("repo", "main");
    await client.uploadObject("repo", "main", "f", body("1"));
    const c1 = await client.commit("repo", "main", "c1");
    assert.equal((await client.getBranch("repo", "main")).commit_id, c1.id);
    await client.hardReset("repo", "main", first.commit_id);
    assert.equal((await client.getBranch("repo", "main")).commit_id, first.commit_id);
    await assert.rejects(client.getObject("repo", "main", "f"), LakeFsNotFoundError);
    await assert.rejects(client.hardReset("repo", "main", "no-such-ref"), LakeFsNotFoundError);
  });
});

Deno.test("a protected branch's 403 -> LakeFsProtectedBranchError; other 403s stay plain", () => {
  for (
    const message of [
      "protected branch",
      "cannot write to protected branch",
      "cannot commit to protected branch",
    ]
  ) {
    const error = lakeFsErrorFor({ operation: "x", status: 403, serverMessage: message });
    assert.ok(error instanceof LakeFsProtectedBranchError, message);
    assert.equal(error.transient, false);
  }
  const denied = lakeFsErrorFor({
    operation: "x",
    status: 403,
    serverMessage: "cannot delete repository default branch",
  });
  assert.ok(!(denied instanceof LakeFsProtectedBranchError));
});

Deno.test("bad credentials -> LakeFsAuthError (401) without any secret in the error", async () => {
  await withLakeFs(async ({ server }) => {
    const wrongSecret = "wrong-secret-do-not-print";
    const client = new LakeFsClient({
      endpointUrl: server.url,
      accessKeyId: "AKIAPERAGOTEST",
      secretAccessKey: { reveal: () => wrongSecret },
      retry: { attempts: 3, baseDelayMs: 1 },
    });
    const error = await client.getRepository("repo").then(() => undefined, (e) => e);
    assert.ok(error instanceof LakeFsAuthError, String(error));
    assert.equal(error.status, 401);
    assert.equal(error.message, "lakeFS getRepository failed: 401 error authenticating request");
    const text = `${error.message} ${error.stack} ${JSON.stringify(error)} ${String(error.cause)}`;
    assert.ok(!text.includes(wrongSecret));
    assert.ok(!text.includes(SECRET));
    assert.ok(!text.includes(btoa(`AKIAPERAGOTEST:${wrongSecret}`)));
    // 401 is not retried.
    assert.equal(server.stats.count("getRepository"), 1);
  }, { repo: false });
});

Deno.test("keys with '..', a leading '/' and backslashes round-trip unchanged", async () => {
  await withLakeFs(async ({ client }) => {
    const odd = ["../escape", "/abs", "a\\b", "a//b", "ünï cødé ?&=#"];
    for (const p of odd) await client.uploadObject("repo", "main", p, body(p));
    const listed = (await Array.fromAsync(client.listObjects("repo", "main"))).map((o) => o.path);
    assert.deepEqual(listed, [...odd].sort());
    for (const p of odd) assert.equal(await readText(await client.getObject("repo", "main", p)), p);
  });
});

Deno.test("an aborted caller signal stops the call with the abort reason", async () => {
  await withLakeFs(async ({ client }) => {
    const controller = new AbortController();
    controller.abort(new Error("stop now"));
    await assert.rejects(client.getBranch("repo", "main", controller.signal), /stop now/);
    void bytes;
  });
});

Deno.test("a streamed upload answered early (404) neither hangs nor succeeds", async () => {
  await withLakeFs(async ({ client }) => {
    const chunk = new Uint8Array(1 << 20);
    let sent = 0;
    const endless = () =>
      Promise.resolve(
        new ReadableStream<Uint8Array>({
          pull(c) {
            if (sent++ >= 64) c.close();
            else c.enqueue(chunk.slice());
          },
        }),
      );
    await assert.rejects(
      client.uploadObject("repo", "no-such-branch", "f", endless, { size: 64 << 20 }),
      LakeFsNotFoundError,
    );
  });
});

Deno.test("aborting a streamed upload rejects with the abort reason", async () => {
  await withLakeFs(async ({ client }) => {
    const controller = new AbortController();
    let pulls = 0;
    const slow = () =>
      Promise.resolve(
        new ReadableStream<Uint8Array>({
          pull(c) {
            pulls++;
            if (pulls === 3) controller.abort(new Error("caller gave up"));
            c.enqueue(new Uint8Array(1024));
          },
        }),
      );
    await assert.rejects(
      client.uploadObject("repo", "main", "f", slow, { signal: controller.signal }),
      /caller gave up/,
    );
    await assert.rejects(client.getObject("repo", "main", "f"), LakeFsNotFoundError);
  });
});
