/**
 * The demo lakeFS server spoken to with raw fetch (not perago's client), checking the status
 * codes and bodies the real lakeFS API answers with.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { startLakeFsServer } from "../../src/devstack/lakefs/server.ts";
import { ACCESS_KEY_ID, basicAuth, SECRET } from "../lakefs/_helpers.ts";

async function withRaw(
  fn: (
    api: (path: string, init?: RequestInit) => Promise<Response>,
    base: string,
  ) => Promise<void>,
  dataDir?: string,
): Promise<void> {
  const server = await startLakeFsServer({
    accessKeyId: ACCESS_KEY_ID,
    secretAccessKey: SECRET,
    ...(dataDir ? { dataDir } : {}),
  });
  const base = `${server.url}/api/v1`;
  const api = (path: string, init: RequestInit = {}) => {
    const headers = new Headers(init.headers);
    if (!headers.has("authorization")) headers.set("authorization", basicAuth());
    return fetch(base + path, { ...init, headers });
  };
  try {
    await fn(api, base);
  } finally {
    await server.close();
  }
}

const postJson = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

async function createRepo(api: (p: string, i?: RequestInit) => Promise<Response>) {
  const res = await api(
    "/repositories",
    postJson({ name: "repo", storage_namespace: "local://b/repo", default_branch: "main" }),
  );
  assert.equal(res.status, 201);
  return await res.json();
}

Deno.test("http: healthcheck needs no auth; everything else answers 401 with the lakeFS body", async () => {
  await withRaw(async (api, base) => {
    const health = await fetch(`${base}/healthcheck`);
    assert.equal(health.status, 204);
    await health.body?.cancel();
    for (const auth of [undefined, basicAuth(ACCESS_KEY_ID, "wrong"), "Bearer x"]) {
      const res = await fetch(
        `${base}/repositories`,
        auth ? { headers: { authorization: auth } } : {},
      );
      assert.equal(res.status, 401);
      assert.deepEqual(await res.json(), { message: "error authenticating request" });
    }
    const user = await api("/user");
    assert.equal(user.status, 200);
    assert.equal(typeof (await user.json()).user.id, "string");
    const version = await api("/config/version");
    assert.equal(typeof (await version.json()).version, "string");
    const config = await (await api("/config")).json();
    assert.equal(config.storage_config.pre_sign_support, false);
  });
});

Deno.test("http: repository creation 201 / 409 / 400 on schema violations", async () => {
  await withRaw(async (api) => {
    const repo = await createRepo(api);
    assert.equal(repo.id, "repo");
    assert.equal(repo.default_branch, "main");
    assert.equal(typeof repo.creation_date, "number");
    const again = await api(
      "/repositories",
      postJson({ name: "repo", storage_namespace: "local://b/repo" }),
    );
    assert.equal(again.status, 409);
    assert.equal(typeof (await again.json()).message, "string");
    for (
      const bad of [
        { name: "UPPER", storage_namespace: "local://x" },
        { name: "ok-name", storage_namespace: "not-a-uri" },
        { storage_namespace: "local://x" },
      ]
    ) {
      const res = await api("/repositories", postJson(bad));
      assert.equal(res.status, 400, JSON.stringify(bad));
      assert.equal(typeof (await res.json()).message, "string");
    }
    const broken = await api("/repositories", { method: "POST", body: "{not json" });
    assert.equal(broken.status, 400);
    await broken.body?.cancel();
    const missing = await api("/repositories/nope-repo");
    assert.equal(missing.status, 404);
    assert.equal(typeof (await missing.json()).message, "string");
  });
});

Deno.test("http: object paths are not sanitised: '..', leading '/', backslashes, '//'", async () => {
  await withRaw(async (api) => {
    await createRepo(api);
    for (const path of ["../../etc/passwd", "/abs/path", "a\\b", "a//b", "a/./b"]) {
      const url = `/repositories/repo/branches/main/objects?path=${encodeURIComponent(path)}`;
      const up = await api(url, { method: "POST", body: path });
      assert.equal(up.status, 201, path);
      const stats = await up.json();
      assert.equal(stats.path, path);
      assert.equal(stats.checksum, createHash("md5").update(path).digest("hex"));
      const down = await api(
        `/repositories/repo/refs/main/objects?path=${encodeURIComponent(path)}`,
      );
      assert.equal(down.status, 200);
      assert.equal(await down.text(), path);
    }
    const tooLong = "k".repeat(1025);
    const res = await api(`/repositories/repo/branches/main/objects?path=${tooLong}`, {
      method: "POST",
      body: "x",
    });
    assert.equal(res.status, 400);
    await res.body?.cancel();
    const empty = await api(`/repositories/repo/branches/main/objects?path=`, {
      method: "POST",
      body: "x",
    });
    assert.equal(empty.status, 400);
    await empty.body?.cancel();
  });
});

Deno.test("http: listing: amount 1001 -> 400, default 100, flat by default, after exclusive", async () => {
  await withRaw(async (api) => {
    await createRepo(api);
    for (let i = 0; i < 105; i++) {
      const path = `d/${String(i).padStart(3, "0")}`;
      const res = await api(`/repositories/repo/branches/main/objects?path=${path}`, {
        method: "POST",
        body: String(i),
      });
      assert.equal(res.status, 201);
      await res.body?.cancel();
    }
    const tooMany = await api("/repositories/repo/refs/main/objects/ls?amount=1001");
    assert.equal(tooMany.status, 400);
    assert.match((await tooMany.json()).message, /amount/);
    const first = await (await api("/repositories/repo/refs/main/objects/ls")).json();
    assert.equal(first.results.length, 100);
    assert.deepEqual(first.pagination, {
      has_more: true,
      next_offset: "d/099",
      results: 100,
      max_per_page: 1000,
    });
    assert.equal(first.results[0].path, "d/000");
    assert.equal(first.results[0].path_type, "object");
    const next = await (await api("/repositories/repo/refs/main/objects/ls?after=d/099")).json();
    assert.deepEqual(next.results.map((r: { path: string }) => r.path), [
      "d/100",
      "d/101",
      "d/102",
      "d/103",
      "d/104",
    ]);
    assert.equal(next.pagination.has_more, false);
    assert.equal(next.pagination.next_offset, "");
    const grouped = await (await api("/repositories/repo/refs/main/objects/ls?delimiter=/")).json();
    assert.deepEqual(
      grouped.results.map((r: { path: string; path_type: string }) => [r.path, r.path_type]),
      [[
        "d/",
        "common_prefix",
      ]],
    );
  });
});

Deno.test("http: listing pages by prefix, after and delimiter match the sorted paths; a commit listed twice and a branch changed between its pages answer what they hold", async () => {
  await withRaw(async (api) => {
    await createRepo(api);
    const put = async (path: string) => {
      const res = await api(`/repositories/repo/branches/main/objects?path=${path}`, {
        method: "POST",
        body: path,
      });
      assert.equal(res.status, 201);
      await res.body?.cancel();
    };
    const paths = ["a", "a.b", "a/x", "a/y/z", "a0", "b/1", "b/2", "b/3", "c"];
    for (const path of paths) await put(path);
    const commit = await (await api(
      "/repositories/repo/branches/main/commits",
      postJson({ message: "seed" }),
    )).json();
    const list = async (ref: string, query: Record<string, string>) => {
      const keys: string[] = [];
      let after = query.after ?? "";
      while (true) {
        const params = new URLSearchParams({ ...query, after, amount: "2" });
        const page = await (await api(`/repositories/repo/refs/${ref}/objects/ls?${params}`))
          .json();
        keys.push(...page.results.map((r: { path: string }) => r.path));
        if (!page.pagination.has_more) return keys;
        after = page.pagination.next_offset;
      }
    };
    const expected = (prefix: string, after: string, source = paths) =>
      [...source].sort().filter((path) => path.startsWith(prefix) && path > after);
    for (const prefix of ["", "a", "a/", "b/", "b/2", "z"]) {
      for (const after of ["", "a", "a/x", "a0", "b/", "b/1", "c", "d"]) {
        assert.deepEqual(
          await list(commit.id, { prefix, after }),
          expected(prefix, after),
          `${prefix} ${after}`,
        );
      }
    }
    assert.deepEqual(await list(commit.id, { delimiter: "/" }), [
      "a",
      "a.b",
      "a/",
      "a0",
      "b/",
      "c",
    ]);
    assert.deepEqual(await list(commit.id, { delimiter: "/", after: "a/" }), ["a0", "b/", "c"]);
    assert.deepEqual(await list(commit.id, { prefix: "a/", delimiter: "/" }), ["a/x", "a/y/"]);
    // Staged on the branch after its first listing: listed; the commit still lists what it had.
    assert.deepEqual(await list("main", { prefix: "b/" }), ["b/1", "b/2", "b/3"]);
    await put("b/15");
    assert.deepEqual(await list("main", { prefix: "b/" }), ["b/1", "b/15", "b/2", "b/3"]);
    assert.deepEqual(await list(commit.id, { prefix: "b/" }), ["b/1", "b/2", "b/3"]);
  });
});

Deno.test("http: upload statuses: raw 201, multipart content part, If-None-Match 412, delete 204", async () => {
  await withRaw(async (api) => {
    await createRepo(api);
    const raw = await api("/repositories/repo/branches/main/objects?path=f", {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "raw body",
    });
    assert.equal(raw.status, 201);
    const rawStats = await raw.json();
    assert.equal(rawStats.size_bytes, 8);
    assert.equal(rawStats.content_type, "text/plain");
    assert.equal(typeof rawStats.physical_address, "string");
    assert.equal(typeof rawStats.mtime, "number");

    const form = new FormData();
    form.append("other", "ignored");
    form.append("content", new Blob(["from multipart"], { type: "text/csv" }), "x.csv");
    const multi = await api("/repositories/repo/branches/main/objects?path=m", {
      method: "POST",
      body: form,
    });
    assert.equal(multi.status, 201);
    const multiStats = await multi.json();
    assert.equal(multiStats.checksum, createHash("md5").update("from multipart").digest("hex"));
    assert.equal(
      await (await api("/repositories/repo/refs/main/objects?path=m")).text(),
      "from multipart",
    );

    const exists = await api("/repositories/repo/branches/main/objects?path=f", {
      method: "POST",
      headers: { "if-none-match": "*" },
      body: "again",
    });
    assert.equal(exists.status, 412);
    assert.equal(typeof (await exists.json()).message, "string");

    const stat = await api("/repositories/repo/refs/main/objects/stat?path=f");
    assert.equal((await stat.json()).checksum, rawStats.checksum);
    const head = await api("/repositories/repo/refs/main/objects?path=f", { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), "8");
    const headMissing = await api("/repositories/repo/refs/main/objects?path=zz", {
      method: "HEAD",
    });
    assert.equal(headMissing.status, 404);

    for (const path of ["f", "never-there"]) {
      const del = await api(`/repositories/repo/branches/main/objects?path=${path}`, {
        method: "DELETE",
      });
      assert.equal(del.status, 204);
      await del.body?.cancel();
    }
    const gone = await api("/repositories/repo/refs/main/objects?path=f");
    assert.equal(gone.status, 404);
    assert.equal(typeof (await gone.json()).message, "string");

    const bulk = await api(
      "/repositories/repo/branches/main/objects/delete",
      postJson({ paths: ["m", "x"] }),
    );
    assert.equal(bulk.status, 200);
    assert.deepEqual(await bulk.json(), { errors: [] });
    const tooMany = await api(
      "/repositories/repo/branches/main/objects/delete",
      postJson({ paths: Array.from({ length: 1001 }, (_, i) => `p${i}`) }),
    );
    assert.equal(tooMany.status, 400);
    await tooMany.body?.cancel();
  });
});

Deno.test("http: branches, commits, merge and hard reset answer as lakeFS does", async () => {
  await withRaw(async (api) => {
    await createRepo(api);
    const create = await api(
      "/repositories/repo/branches",
      postJson({ name: "dev", source: "main" }),
    );
    assert.equal(create.status, 201);
    assert.match(create.headers.get("content-type") ?? "", /^text\/plain/);
    const sourceId = await create.text();
    const mainRef = await (await api("/repositories/repo/branches/main")).json();
    assert.deepEqual(mainRef, { id: "main", commit_id: sourceId });
    const dup = await api("/repositories/repo/branches", postJson({ name: "dev", source: "main" }));
    assert.equal(dup.status, 409);
    await dup.body?.cancel();
    const badName = await api(
      "/repositories/repo/branches",
      postJson({ name: "bad/name", source: "main" }),
    );
    assert.equal(badName.status, 400);
    await badName.body?.cancel();

    const noChanges = await api(
      "/repositories/repo/branches/dev/commits",
      postJson({ message: "m" }),
    );
    assert.equal(noChanges.status, 400);
    assert.deepEqual(await noChanges.json(), { message: "commit: no changes" });

    const up = await api("/repositories/repo/branches/dev/objects?path=x", {
      method: "POST",
      body: "x",
    });
    await up.body?.cancel();
    const commitRes = await api(
      "/repositories/repo/branches/dev/commits",
      postJson({ message: "add x", metadata: { a: "b" } }),
    );
    assert.equal(commitRes.status, 201);
    const commit = await commitRes.json();
    for (const key of ["id", "parents", "committer", "message", "creation_date", "meta_range_id"]) {
      assert.ok(key in commit, key);
    }
    assert.deepEqual(commit.parents, [sourceId]);

    const first = await (await api(`/repositories/repo/commits/${sourceId}`)).json();
    assert.deepEqual(first.parents, []);

    const log = await (await api("/repositories/repo/refs/dev/commits")).json();
    assert.deepEqual(log.results.map((c: { id: string }) => c.id), [commit.id, sourceId]);

    const merge = await api(
      "/repositories/repo/refs/dev/merge/main",
      postJson({ squash_merge: true, message: "squash" }),
    );
    assert.equal(merge.status, 200);
    const { reference } = await merge.json();
    const merged = await (await api(`/repositories/repo/commits/${reference}`)).json();
    assert.deepEqual(merged.parents, [sourceId]);
    // No changes: the source (main's parent) is the merge base.
    const empty = await api(`/repositories/repo/refs/${sourceId}/merge/main`, { method: "POST" });
    assert.equal(empty.status, 400);
    assert.match((await empty.json()).message, /no changes/);

    const reset = await api(`/repositories/repo/branches/main/hard_reset?ref=${sourceId}`, {
      method: "PUT",
    });
    assert.equal(reset.status, 204);
    await reset.body?.cancel();
    const noRef = await api("/repositories/repo/branches/main/hard_reset", { method: "PUT" });
    assert.equal(noRef.status, 400);
    await noRef.body?.cancel();

    const delDefault = await api("/repositories/repo/branches/main", { method: "DELETE" });
    assert.equal(delDefault.status, 403);
    await delDefault.body?.cancel();
    const delDev = await api("/repositories/repo/branches/dev", { method: "DELETE" });
    assert.equal(delDev.status, 204);
    await delDev.body?.cancel();
    const delMissing = await api("/repositories/repo/branches/dev", { method: "DELETE" });
    assert.equal(delMissing.status, 404);
    await delMissing.body?.cancel();

    const unknown = await api("/no/such/route");
    assert.equal(unknown.status, 404);
    assert.equal(typeof (await unknown.json()).message, "string");
  });
});

Deno.test("http: Range requests answer 206 / 416 as lakeFS does", async () => {
  await withRaw(async (api) => {
    await createRepo(api);
    const up = await api("/repositories/repo/branches/main/objects?path=r", {
      method: "POST",
      body: "0123456789",
    });
    await up.body?.cancel();
    const part = await api("/repositories/repo/refs/main/objects?path=r", {
      headers: { range: "bytes=2-4" },
    });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get("content-range"), "bytes 2-4/10");
    assert.equal(await part.text(), "234");
    const tail = await api("/repositories/repo/refs/main/objects?path=r", {
      headers: { range: "bytes=7-" },
    });
    assert.equal(await tail.text(), "789");
    const beyond = await api("/repositories/repo/refs/main/objects?path=r", {
      headers: { range: "bytes=10-" },
    });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers.get("content-range"), "bytes */10");
    await beyond.body?.cancel();
  });
});

Deno.test("http: with a data dir, state and content survive a restart", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "perago-lakefs-test-" });
  try {
    let commitId = "";
    await withRaw(async (api) => {
      await createRepo(api);
      const up = await api("/repositories/repo/branches/main/objects?path=kept", {
        method: "POST",
        body: "kept content",
      });
      await up.body?.cancel();
      const c = await api(
        "/repositories/repo/branches/main/commits",
        postJson({ message: "keep" }),
      );
      commitId = (await c.json()).id;
      const staged = await api("/repositories/repo/branches/main/objects?path=staged", {
        method: "POST",
        body: "staged content",
      });
      await staged.body?.cancel();
    }, dataDir);
    await withRaw(async (api) => {
      const ref = await (await api("/repositories/repo/branches/main")).json();
      assert.equal(ref.commit_id, commitId);
      assert.equal(
        await (await api("/repositories/repo/refs/main/objects?path=kept")).text(),
        "kept content",
      );
      assert.equal(
        await (await api("/repositories/repo/refs/main/objects?path=staged")).text(),
        "staged content",
      );
      const commit = await (await api(`/repositories/repo/commits/${commitId}`)).json();
      assert.equal(commit.message, "keep");
    }, dataDir);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("http: copy an object and reset staged changes", async () => {
  await withRaw(async (api) => {
    await createRepo(api);
    const up = await api("/repositories/repo/branches/main/objects?path=a", {
      method: "POST",
      body: "A",
    });
    await up.body?.cancel();
    const copy = await api(
      "/repositories/repo/branches/main/objects/copy?dest_path=b",
      postJson({ src_path: "a" }),
    );
    assert.equal(copy.status, 201);
    assert.equal((await copy.json()).path, "b");
    assert.equal(await (await api("/repositories/repo/refs/main/objects?path=b")).text(), "A");
    const reset = await api("/repositories/repo/branches/main", {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ type: "reset" }),
    });
    assert.equal(reset.status, 204);
    await reset.body?.cancel();
    const listed = await (await api("/repositories/repo/refs/main/objects/ls")).json();
    assert.deepEqual(listed.results, []);
  });
});

Deno.test("http: diff of uncommitted changes and between refs (three_dot by default)", async () => {
  await withRaw(async (api) => {
    await createRepo(api);
    const put = async (branch: string, path: string, text: string) => {
      const res = await api(`/repositories/repo/branches/${branch}/objects?path=${path}`, {
        method: "POST",
        body: text,
      });
      await res.body?.cancel();
    };
    const commit = async (branch: string) => {
      const res = await api(
        `/repositories/repo/branches/${branch}/commits`,
        postJson({ message: "c" }),
      );
      assert.equal(res.status, 201);
      await res.body?.cancel();
    };
    const branch = await api(
      "/repositories/repo/branches",
      postJson({ name: "dev", source: "main" }),
    );
    await branch.body?.cancel();
    await put("dev", "d", "dev");
    const staged = await (await api("/repositories/repo/branches/dev/diff")).json();
    assert.deepEqual(staged.results.map((d: { type: string; path: string }) => [d.type, d.path]), [[
      "added",
      "d",
    ]]);
    await commit("dev");
    await put("main", "m", "main");
    await commit("main");
    const three = await (await api("/repositories/repo/refs/main/diff/dev")).json();
    assert.deepEqual(three.results.map((d: { path: string }) => d.path), ["d"]);
    const two = await (await api("/repositories/repo/refs/main/diff/dev?type=two_dot")).json();
    assert.deepEqual(
      two.results.map((d: { type: string; path: string }) => [d.type, d.path]),
      [["added", "d"], ["removed", "m"]],
    );
  });
});
