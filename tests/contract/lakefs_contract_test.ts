/**
 * One contract suite of the lakeFS API perago uses, run against the demo lakeFS always and
 * against a real lakeFS when `PERAGO_TEST_LAKEFS_*` name one (`.ci/run` starts lakeFS 1.84.0
 * from `../shared/tools/lakefs`). Every status, body and rule asserted here holds on both:
 * where the demo differed, it was changed to the real server's behaviour. The few kept
 * differences (listed in the README) are asserted per target.
 *
 * Requests go through raw `fetch` (to see exact statuses and bodies) and through perago's own
 * client (to see it cope with the real answers). Every step works in its own repository with
 * a run-unique name: the real server keeps state between runs.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { startLakeFsServer } from "../../src/devstack/lakefs/server.ts";
import { LakeFsClient } from "../../src/lakefs/client.ts";
import { waitFor } from "../../src/util/sleep.ts";
import {
  LakeFsAuthError,
  LakeFsConflictError,
  LakeFsNoChangesError,
  LakeFsNotFoundError,
} from "../../src/lakefs/errors.ts";
import {
  createTestRepository,
  deleteTestRepository,
  type LakeFsTarget,
  realLakeFs,
  skipNote,
} from "../_real_servers.ts";

interface Target extends LakeFsTarget {
  real: boolean;
}

interface Answer {
  status: number;
  /** Parsed JSON, or the text when the body is not JSON. */
  // deno-lint-ignore no-explicit-any
  body: any;
  headers: Headers;
}

const md5 = (text: string) => createHash("md5").update(text).digest("hex");

async function lakeFsContract(t: Deno.TestContext, target: Target): Promise<void> {
  const auth = `Basic ${btoa(`${target.accessKeyId}:${target.secretAccessKey}`)}`;
  const client = new LakeFsClient({
    endpointUrl: target.url,
    accessKeyId: target.accessKeyId,
    secretAccessKey: target.secretAccessKey,
    retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 50 },
  });

  /** One raw request to `/api/v1{path}`. */
  async function api(
    method: string,
    path: string,
    init: { json?: unknown; body?: BodyInit; headers?: Record<string, string> } = {},
  ): Promise<Answer> {
    const headers = new Headers({ authorization: auth, ...init.headers });
    let body = init.body;
    if (init.json !== undefined) {
      body = JSON.stringify(init.json);
      headers.set("content-type", "application/json");
    }
    const response = await fetch(`${target.url}/api/v1${path}`, {
      method,
      headers,
      body: body ?? null,
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: response.status, body: parsed, headers: response.headers };
  }

  const repos: string[] = [];
  /** A fresh repository for one step (deleted at the end of the suite). */
  async function repository(label: string): Promise<string> {
    const name = await createTestRepository(target, `ct-${label}`);
    repos.push(name);
    return name;
  }
  const upload = (repo: string, branch: string, path: string, text: string, type?: string) =>
    client.uploadObject(repo, branch, path, () => Promise.resolve(new TextEncoder().encode(text)), {
      ...(type ? { contentType: type } : {}),
    });
  const commit = (repo: string, branch: string, message: string) =>
    client.commit(repo, branch, message);
  const branch = (repo: string, name: string, source: string) =>
    client.createBranch(repo, name, source);
  const head = async (repo: string, name: string) => (await client.getBranch(repo, name)).commit_id;
  const read = async (repo: string, ref: string, path: string) =>
    await new Response(await client.getObject(repo, ref, path)).text();
  const list = (repo: string, ref: string) =>
    Array.fromAsync(client.listObjects(repo, ref), (entry) => entry.path);
  const log = async (repo: string, ref: string, query = "") => {
    const answer = await api("GET", `/repositories/${repo}/refs/${ref}/commits${query}`);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body as {
      pagination: { has_more: boolean; next_offset: string; results: number; max_per_page: number };
      results: { id: string; parents: string[]; message: string; generation: number }[];
    };
  };
  const diff = async (repo: string, left: string, right: string, query = "") => {
    const answer = await api("GET", `/repositories/${repo}/refs/${left}/diff/${right}${query}`);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body as {
      pagination: { has_more: boolean; next_offset: string; results: number; max_per_page: number };
      results: { path: string; type: string; path_type: string; size_bytes?: number }[];
    };
  };
  const lines = (body: { results: { path: string; type: string }[] }) =>
    body.results.map((d) => `${d.type} ${d.path}`);

  try {
    await t.step("auth: wrong or missing credentials -> 401 with lakeFS's body", async () => {
      const health = await fetch(`${target.url}/api/v1/healthcheck`);
      assert.equal(health.status, 204);
      await health.body?.cancel();
      for (const header of [`Basic ${btoa(`${target.accessKeyId}:wrong-secret`)}`, ""]) {
        const answer = await api("GET", "/repositories", { headers: { authorization: header } });
        assert.equal(answer.status, 401);
        assert.deepEqual(answer.body, { message: "error authenticating request" });
      }
      const wrong = new LakeFsClient({
        endpointUrl: target.url,
        accessKeyId: target.accessKeyId,
        secretAccessKey: "not-the-secret-value",
        retry: { attempts: 1 },
      });
      const error = await wrong.getRepository("anything").catch((e) => e);
      assert.ok(error instanceof LakeFsAuthError, String(error));
      assert.doesNotMatch(String(error.message), /not-the-secret-value/);
      // Who the keys belong to (what lakectl's "config" and "doctor" ask).
      const user = await api("GET", "/user");
      assert.equal(user.status, 200);
      assert.deepEqual(Object.keys(user.body.user).sort(), [
        "creation_date",
        "email",
        "friendly_name",
        "id",
      ]);
    });

    await t.step("repositories: create 201, duplicate 409, bad name 400, missing 404", async () => {
      const repo = await repository("repos");
      const got = await api("GET", `/repositories/${repo}`);
      assert.equal(got.status, 200);
      assert.equal(got.body.id, repo);
      assert.equal(got.body.default_branch, "main");
      assert.equal(got.body.storage_namespace, `local://${repo}`);
      assert.equal(got.body.read_only, false);
      assert.equal(typeof got.body.creation_date, "number");
      const again = await api("POST", "/repositories", {
        json: { name: repo, storage_namespace: `local://${repo}-2`, default_branch: "main" },
      });
      assert.equal(again.status, 409);
      assert.deepEqual(again.body, { message: "error creating repository: not unique" });
      await assert.rejects(
        client.createRepository(repo, `local://${repo}-2`),
        LakeFsConflictError,
      );
      const badName = await api("POST", "/repositories", {
        json: { name: "Bad_Name", storage_namespace: "local://bad" },
      });
      assert.equal(badName.status, 400);
      assert.match(badName.body.message, /^request body has an error: doesn't match schema/);
      assert.match(badName.body.message, /string doesn't match the regular expression/);
      const missing = await api("GET", `/repositories/${repo}-missing`);
      assert.equal(missing.status, 404);
      assert.deepEqual(missing.body, { message: "repository not found" });
      await assert.rejects(client.getRepository(`${repo}-missing`), LakeFsNotFoundError);
      // The first commit: no parents, no committer, an empty meta range.
      const first = await log(repo, "main");
      assert.equal(first.results.length, 1);
      const created = first.results[0]! as Record<string, unknown>;
      assert.equal(created.message, "Repository created");
      assert.equal(created.committer, "");
      assert.deepEqual(created.parents, []);
      assert.equal(created.meta_range_id, "");
      assert.equal(created.generation, 1);
    });

    await t.step(
      "objects: uploads (raw and multipart) carry the MD5; If-None-Match; get and stat; 404s",
      async () => {
        const repo = await repository("objects");
        const raw = await upload(repo, "main", "a/raw.txt", "hello");
        assert.equal(raw.checksum, md5("hello"));
        assert.equal(raw.size_bytes, 5);
        assert.equal(raw.path, "a/raw.txt");
        assert.equal(raw.path_type, "object");
        assert.equal(raw.content_type, "application/octet-stream");
        const form = new FormData();
        form.append("content", new Blob(["world!"], { type: "text/plain" }), "content");
        const multi = await api(
          "POST",
          `/repositories/${repo}/branches/main/objects?path=a/multi.txt`,
          {
            body: form,
          },
        );
        assert.equal(multi.status, 201);
        assert.equal(multi.body.checksum, md5("world!"));
        assert.equal(multi.body.size_bytes, 6);
        assert.equal(multi.body.content_type, "text/plain");
        // An empty path is refused by the schema check, on every object route.
        for (
          const [method, path] of [
            ["POST", `/repositories/${repo}/branches/main/objects?path=`],
            ["GET", `/repositories/${repo}/refs/main/objects?path=`],
            ["GET", `/repositories/${repo}/refs/main/objects/stat?path=`],
            ["DELETE", `/repositories/${repo}/branches/main/objects?path=`],
          ] as const
        ) {
          const empty = await api(method, path, method === "POST" ? { body: "x" } : {});
          assert.equal(empty.status, 400, `${method} ${path}`);
          assert.deepEqual(empty.body, {
            message: 'parameter "path" in query has an error: empty value is not allowed',
          });
        }
        // Create-only uploads.
        const exists = await api(
          "POST",
          `/repositories/${repo}/branches/main/objects?path=a/raw.txt`,
          {
            body: "x",
            headers: { "if-none-match": "*" },
          },
        );
        assert.equal(exists.status, 412);
        assert.deepEqual(exists.body, { message: "path already exists" });
        const fresh = await api(
          "POST",
          `/repositories/${repo}/branches/main/objects?path=a/new.txt`,
          {
            body: "new",
            headers: { "if-none-match": "*" },
          },
        );
        assert.equal(fresh.status, 201);
        const etag = await api("POST", `/repositories/${repo}/branches/main/objects?path=a/e.txt`, {
          body: "e",
          headers: { "if-none-match": '"abc"' },
        });
        assert.equal(etag.status, 501);
        assert.deepEqual(etag.body, { message: "Not Implemented" });
        // Reads see staged objects.
        assert.equal(await read(repo, "main", "a/raw.txt"), "hello");
        const stat = await api(
          "GET",
          `/repositories/${repo}/refs/main/objects/stat?path=a/multi.txt`,
        );
        assert.equal(stat.status, 200);
        assert.equal(stat.body.checksum, md5("world!"));
        assert.equal(typeof stat.body.physical_address, "string");
        const get = await fetch(
          `${target.url}/api/v1/repositories/${repo}/refs/main/objects?path=a/raw.txt`,
          { headers: { authorization: auth } },
        );
        assert.equal(get.status, 200);
        assert.equal(await get.text(), "hello");
        for (
          const path of [
            `/repositories/${repo}/refs/main/objects?path=a/missing`,
            `/repositories/${repo}/refs/main/objects/stat?path=a/missing`,
            `/repositories/${repo}/refs/no-such-branch/objects?path=a/raw.txt`,
          ]
        ) {
          const missing = await api("GET", path);
          assert.equal(missing.status, 404, path);
          assert.deepEqual(missing.body, { message: "not found" }, path);
        }
        await assert.rejects(client.getObject(repo, "main", "a/missing"), LakeFsNotFoundError);
        const noPath = await api("POST", `/repositories/${repo}/branches/main/objects`, {
          body: "x",
        });
        assert.equal(noPath.status, 400);
        assert.deepEqual(noPath.body, {
          message: `parameter "path" in query has an error: value is required but missing`,
        });
        const noBranch = await api("POST", `/repositories/${repo}/branches/nob/objects?path=x`, {
          body: "x",
        });
        assert.equal(noBranch.status, 404);
        assert.deepEqual(noBranch.body, { message: "branch 'nob' not found" });
      },
    );

    await t.step(
      "listing: after is exclusive, amount 1..1000 (1001 -> 400, 0 and -1 -> 100), delimiter",
      async () => {
        const repo = await repository("listing");
        const paths = Array.from({ length: 105 }, (_, i) => `d/${String(i).padStart(3, "0")}`);
        for (const path of [...paths, "x/y/z", "x/w"]) await upload(repo, "main", path, path);
        const first = await api("GET", `/repositories/${repo}/refs/main/objects/ls`);
        assert.equal(first.status, 200);
        assert.equal(first.body.results.length, 100);
        assert.deepEqual(first.body.pagination, {
          has_more: true,
          next_offset: "d/099",
          results: 100,
          max_per_page: 1000,
        });
        const next = await api("GET", `/repositories/${repo}/refs/main/objects/ls?after=d/099`);
        assert.deepEqual(
          next.body.results.map((e: { path: string }) => e.path),
          ["d/100", "d/101", "d/102", "d/103", "d/104", "x/w", "x/y/z"],
        );
        assert.equal(next.body.pagination.has_more, false);
        assert.equal(next.body.pagination.next_offset, "");
        for (const amount of ["0", "-1"]) {
          const page = await api(
            "GET",
            `/repositories/${repo}/refs/main/objects/ls?amount=${amount}`,
          );
          assert.equal(page.status, 200);
          assert.equal(page.body.results.length, 100, `amount=${amount}`);
        }
        const tooMany = await api("GET", `/repositories/${repo}/refs/main/objects/ls?amount=1001`);
        assert.equal(tooMany.status, 400);
        assert.match(
          tooMany.body.message,
          /^parameter "amount" in query has an error: number must be at most 1000/,
        );
        const tooFew = await api("GET", `/repositories/${repo}/refs/main/objects/ls?amount=-2`);
        assert.equal(tooFew.status, 400);
        assert.match(
          tooFew.body.message,
          /^parameter "amount" in query has an error: number must be at least -1/,
        );
        const folded = await api("GET", `/repositories/${repo}/refs/main/objects/ls?delimiter=/`);
        assert.deepEqual(
          folded.body.results.map((e: { path: string; path_type: string }) =>
            `${e.path_type} ${e.path}`
          ),
          ["common_prefix d/", "common_prefix x/"],
        );
        const under = await api(
          "GET",
          `/repositories/${repo}/refs/main/objects/ls?delimiter=/&prefix=x/`,
        );
        assert.deepEqual(
          under.body.results.map((e: { path: string; path_type: string }) =>
            `${e.path_type} ${e.path}`
          ),
          ["object x/w", "common_prefix x/y/"],
        );
        // User metadata: in listings only when an object has some (and user_metadata is not
        // false); stat always has it.
        const tagged = await api("POST", `/repositories/${repo}/branches/main/objects?path=x/w`, {
          body: "x/w",
          headers: { "x-lakefs-meta-owner": "contract" },
        });
        assert.equal(tagged.status, 201);
        assert.deepEqual(tagged.body.metadata, { owner: "contract" });
        const withMeta = await api("GET", `/repositories/${repo}/refs/main/objects/ls?prefix=x/`);
        assert.deepEqual(
          withMeta.body.results.map((
            e: { path: string; metadata?: unknown },
          ) => [e.path, e.metadata]),
          [["x/w", { owner: "contract" }], ["x/y/z", undefined]],
        );
        const noMeta = await api(
          "GET",
          `/repositories/${repo}/refs/main/objects/ls?prefix=x/&user_metadata=false`,
        );
        assert.equal(noMeta.body.results[0].metadata, undefined);
        const plainStat = await api(
          "GET",
          `/repositories/${repo}/refs/main/objects/stat?path=x/y/z`,
        );
        assert.deepEqual(plainStat.body.metadata, {});
        // perago's client pages through everything, and from an exclusive start.
        const all: string[] = [];
        for await (const entry of client.listObjects(repo, "main", { amount: 7 })) {
          all.push(entry.path);
        }
        assert.deepEqual(all, [...paths, "x/w", "x/y/z"]);
        const tail: string[] = [];
        for await (const entry of client.listObjects(repo, "main", { after: "d/103", amount: 2 })) {
          tail.push(entry.path);
        }
        assert.deepEqual(tail, ["d/104", "x/w", "x/y/z"]);
      },
    );

    await t.step(
      "deletes: single (a missing path too) 204, bulk {errors: []}, over 1000 paths -> 400",
      async () => {
        const repo = await repository("deletes");
        for (const path of ["k/1", "k/2", "k/3"]) await upload(repo, "main", path, path);
        await commit(repo, "main", "three");
        const one = await api("DELETE", `/repositories/${repo}/branches/main/objects?path=k/1`);
        assert.equal(one.status, 204);
        const missing = await api("DELETE", `/repositories/${repo}/branches/main/objects?path=k/9`);
        assert.equal(missing.status, 204);
        const bulk = await api("POST", `/repositories/${repo}/branches/main/objects/delete`, {
          json: { paths: ["k/2", "k/nope"] },
        });
        assert.equal(bulk.status, 200);
        assert.deepEqual(bulk.body, { errors: [] });
        assert.deepEqual(await list(repo, "main"), ["k/3"]);
        const tooMany = await api("POST", `/repositories/${repo}/branches/main/objects/delete`, {
          json: { paths: Array.from({ length: 1001 }, (_, i) => `p/${i}`) },
        });
        assert.equal(tooMany.status, 400);
        assert.deepEqual(tooMany.body, {
          message: "request size exceeded, max paths is set to 1000",
        });
        // The client splits large deletes into requests of at most 1000 paths.
        const many = Array.from({ length: 1203 }, (_, i) => `m/${String(i).padStart(4, "0")}`);
        await client.deleteObjects(repo, "main", [...many, "k/3"]);
        await client.deleteObject(repo, "main", "k/never-there");
        assert.deepEqual(await list(repo, "main"), []);
      },
    );

    await t.step(
      "branches: create (text commit id), 409, bad source 404, list pages, delete; default 403",
      async () => {
        const repo = await repository("branches");
        const mainHead = await head(repo, "main");
        const created = await api("POST", `/repositories/${repo}/branches`, {
          json: { name: "b1", source: "main" },
        });
        assert.equal(created.status, 201);
        assert.equal(String(created.body).trim(), mainHead);
        assert.equal(await branch(repo, "b2", mainHead), mainHead);
        const dup = await api("POST", `/repositories/${repo}/branches`, {
          json: { name: "b1", source: "main" },
        });
        assert.equal(dup.status, 409);
        assert.equal(typeof dup.body.message, "string");
        await assert.rejects(branch(repo, "b1", "main"), LakeFsConflictError);
        const badSource = await api("POST", `/repositories/${repo}/branches`, {
          json: { name: "b3", source: "nosuch" },
        });
        assert.equal(badSource.status, 404);
        assert.deepEqual(badSource.body, { message: "source reference 'nosuch': not found" });
        const badName = await api("POST", `/repositories/${repo}/branches`, {
          json: { name: "bad name", source: "main" },
        });
        assert.equal(badName.status, 400);
        assert.match(badName.body.message, /branch id must consist of letters, digits/);
        const got = await api("GET", `/repositories/${repo}/branches/b1`);
        assert.deepEqual(got.body, { id: "b1", commit_id: mainHead });
        const missing = await api("GET", `/repositories/${repo}/branches/nob`);
        assert.equal(missing.status, 404);
        assert.deepEqual(missing.body, { message: "branch not found" });
        const page = await api("GET", `/repositories/${repo}/branches?amount=1`);
        assert.deepEqual(page.body.pagination, {
          has_more: true,
          next_offset: "b1",
          results: 1,
          max_per_page: 1000,
        });
        const rest = await api("GET", `/repositories/${repo}/branches?after=b1`);
        assert.deepEqual(rest.body.results.map((r: { id: string }) => r.id), ["b2", "main"]);
        const names = await Array.fromAsync(client.listBranches(repo), (ref) => ref.id);
        assert.deepEqual(names, ["b1", "b2", "main"]);
        const deleteDefault = await api("DELETE", `/repositories/${repo}/branches/main`);
        assert.equal(deleteDefault.status, 403);
        assert.deepEqual(deleteDefault.body, {
          message: "cannot delete repository default branch",
        });
        const deleted = await api("DELETE", `/repositories/${repo}/branches/b1`);
        assert.equal(deleted.status, 204);
        const again = await api("DELETE", `/repositories/${repo}/branches/b1`);
        assert.equal(again.status, 404);
        assert.deepEqual(again.body, { message: "branch not found" });
        await client.deleteBranch(repo, "b2");
      },
    );

    await t.step(
      "tags: create 201 {id, commit_id}, names like git refs, 409s, pages, a tag is a ref, delete",
      async () => {
        const repo = await repository("tags");
        await upload(repo, "main", "a.txt", "one");
        const first = (await commit(repo, "main", "first")).id;
        const created = await api("POST", `/repositories/${repo}/tags`, {
          json: { id: "v1", ref: "main" },
        });
        assert.equal(created.status, 201);
        assert.deepEqual(created.body, { id: "v1", commit_id: first });
        for (const force of [false, true]) {
          const dup = await api("POST", `/repositories/${repo}/tags`, {
            json: { id: "v1", ref: "main", force },
          });
          assert.equal(dup.status, 409);
          assert.deepEqual(dup.body, { message: "tag already exists: not unique" });
        }
        const onBranch = await api("POST", `/repositories/${repo}/tags`, {
          json: { id: "main", ref: "main" },
        });
        assert.equal(onBranch.status, 409);
        assert.deepEqual(onBranch.body, { message: "branch name main: conflict found" });
        const noRef = await api("POST", `/repositories/${repo}/tags`, {
          json: { id: "v9", ref: "nosuch" },
        });
        assert.equal(noRef.status, 404);
        assert.deepEqual(noRef.body, { message: "not found" });
        for (const bad of ["a b", "x/y", "x..y", "x.", "x.lock", "@", "x:y", "x^y"]) {
          const refused = await api("POST", `/repositories/${repo}/tags`, {
            json: { id: bad, ref: "main" },
          });
          assert.equal(refused.status, 400, bad);
          assert.deepEqual(refused.body, {
            message: "argument tagID: tag id: invalid value: validation error",
          });
        }
        for (const good of ["a~b", "1.0.0", "-x", "x@y"]) {
          const accepted = await api("POST", `/repositories/${repo}/tags`, {
            json: { id: good, ref: `${first}` },
          });
          assert.equal(accepted.status, 201, good);
        }
        await upload(repo, "main", "a.txt", "two");
        await commit(repo, "main", "second");
        const page = await api("GET", `/repositories/${repo}/tags?amount=2`);
        assert.deepEqual(page.body.pagination, {
          has_more: true,
          next_offset: "1.0.0",
          results: 2,
          max_per_page: 1000,
        });
        assert.deepEqual(page.body.results, [
          { id: "-x", commit_id: first },
          { id: "1.0.0", commit_id: first },
        ]);
        const rest = await api("GET", `/repositories/${repo}/tags?after=1.0.0`);
        assert.deepEqual(rest.body.results.map((r: { id: string }) => r.id), [
          "a~b",
          "v1",
          "x@y",
        ]);
        const prefixed = await api("GET", `/repositories/${repo}/tags?prefix=v`);
        assert.deepEqual(prefixed.body.results, [{ id: "v1", commit_id: first }]);
        assert.deepEqual((await api("GET", `/repositories/${repo}/tags/v1`)).body, {
          id: "v1",
          commit_id: first,
        });
        // A tag reads as the commit it names.
        assert.equal(await read(repo, "v1", "a.txt"), "one");
        assert.equal((await api("GET", `/repositories/${repo}/commits/v1`)).body.id, first);
        assert.equal(await branch(repo, "fromtag", "v1"), first);
        const deleted = await api("DELETE", `/repositories/${repo}/tags/v1`);
        assert.equal(deleted.status, 204);
        for (const method of ["GET", "DELETE"] as const) {
          const gone = await api(method, `/repositories/${repo}/tags/v1`);
          assert.equal(gone.status, 404);
          assert.deepEqual(gone.body, { message: "tag not found" });
        }
      },
    );

    await t.step(
      "hard reset: moves the branch, staged changes stay staged; unknown ref 404",
      async () => {
        const repo = await repository("reset");
        await upload(repo, "main", "f/1", "one");
        const c1 = await commit(repo, "main", "one");
        await upload(repo, "main", "f/2", "two");
        await commit(repo, "main", "two");
        await upload(repo, "main", "f/staged", "staged");
        const reset = await api("PUT", `/repositories/${repo}/branches/main/hard_reset?ref=main~1`);
        assert.equal(reset.status, 204);
        assert.equal(await head(repo, "main"), c1.id);
        assert.deepEqual(await list(repo, "main"), ["f/1", "f/staged"]);
        const unknown = await api(
          "PUT",
          `/repositories/${repo}/branches/main/hard_reset?ref=nosuchref`,
        );
        assert.equal(unknown.status, 404);
        assert.deepEqual(unknown.body, { message: "hard-reset main to nosuchref: not found" });
        const noRef = await api("PUT", `/repositories/${repo}/branches/main/hard_reset`);
        assert.equal(noRef.status, 400);
        await client.hardReset(repo, "main", c1.parents[0]!);
        assert.equal(await head(repo, "main"), c1.parents[0]);
      },
    );

    await t.step(
      "commits: 201 with metadata; no changes 400 (identical re-upload is none); get; 404",
      async () => {
        const repo = await repository("commits");
        const before = await head(repo, "main");
        await upload(repo, "main", "c/1", "one", "text/plain");
        const created = await api("POST", `/repositories/${repo}/branches/main/commits`, {
          json: { message: "first", metadata: { k: "v" } },
        });
        assert.equal(created.status, 201);
        assert.equal(created.body.message, "first");
        assert.deepEqual(created.body.metadata, { k: "v" });
        assert.deepEqual(created.body.parents, [before]);
        assert.equal(created.body.generation, 2);
        assert.equal(typeof created.body.committer, "string");
        assert.notEqual(created.body.meta_range_id, "");
        const nothing = await api("POST", `/repositories/${repo}/branches/main/commits`, {
          json: { message: "again" },
        });
        assert.equal(nothing.status, 400);
        assert.deepEqual(nothing.body, { message: "commit: no changes" });
        await upload(repo, "main", "c/1", "one", "text/plain");
        await assert.rejects(commit(repo, "main", "identical"), LakeFsNoChangesError);
        // The content type is part of an object's identity.
        await upload(repo, "main", "c/1", "one", "text/csv");
        const typed = await commit(repo, "main", "content type");
        assert.deepEqual(typed.parents, [created.body.id]);
        const empty = await client.commit(repo, "main", "empty", { allowEmpty: true });
        assert.deepEqual(empty.parents, [typed.id]);
        const byId = await client.getCommit(repo, created.body.id);
        assert.equal(byId.message, "first");
        assert.equal((await client.getCommit(repo, "main")).id, empty.id);
        assert.equal((await client.getCommit(repo, "main~2")).id, created.body.id);
        const missing = await api("GET", `/repositories/${repo}/commits/${"0".repeat(64)}`);
        assert.equal(missing.status, 404);
        assert.deepEqual(missing.body, { message: "commit not found" });
      },
    );

    await t.step(
      "log commits: newest first, after/amount pages, limit, stop_at, first_parent, objects and prefixes",
      async () => {
        const repo = await repository("log");
        const init = await head(repo, "main");
        await upload(repo, "main", "a/1", "a1");
        const c1 = await commit(repo, "main", "c1");
        await branch(repo, "f", "main");
        await upload(repo, "main", "b/1", "b1");
        const c2 = await commit(repo, "main", "c2");
        await upload(repo, "f", "a/2", "a2");
        const f1 = await commit(repo, "f", "f1");
        const m = await client.merge(repo, "f", "main", { message: "merge f" });
        await upload(repo, "main", "a/1", "a1 again");
        const c3 = await commit(repo, "main", "c3");
        const ids = (body: { results: { id: string }[] }) => body.results.map((c) => c.id);

        const all = await log(repo, "main");
        assert.deepEqual(ids(all), [c3.id, m, f1.id, c2.id, c1.id, init]);
        assert.deepEqual(all.pagination, {
          has_more: false,
          next_offset: "",
          results: 6,
          max_per_page: 1000,
        });
        const merge = all.results[1]!;
        assert.deepEqual(merge.parents, [c2.id, f1.id]);
        assert.equal(merge.message, "merge f");
        assert.equal(merge.generation, 4);

        const page1 = await log(repo, "main", "?amount=2");
        assert.deepEqual(ids(page1), [c3.id, m]);
        assert.deepEqual(page1.pagination, {
          has_more: true,
          next_offset: m,
          results: 2,
          max_per_page: 1000,
        });
        const page2 = await log(repo, "main", `?amount=2&after=${m}`);
        assert.deepEqual(ids(page2), [f1.id, c2.id]);
        assert.equal(page2.pagination.has_more, true);
        const limited = await log(repo, "main", "?amount=2&limit=true");
        assert.deepEqual(ids(limited), [c3.id, m]);
        assert.equal(limited.pagination.has_more, false);
        const stopped = await log(repo, "main", `?stop_at=${c2.id}`);
        assert.deepEqual(ids(stopped), [c3.id, m, f1.id, c2.id]);
        assert.equal(stopped.pagination.has_more, false);
        const firstParent = await log(repo, "main", "?first_parent=true");
        assert.deepEqual(ids(firstParent), [c3.id, m, c2.id, c1.id, init]);
        // Paths: single-parent commits changing them (merge and first commits are skipped).
        assert.deepEqual(ids(await log(repo, "main", "?prefixes=a/")), [c3.id, f1.id, c1.id]);
        assert.deepEqual(ids(await log(repo, "main", "?objects=b/1")), [c2.id]);
        assert.deepEqual(
          ids(await log(repo, "main", "?objects=a/1&prefixes=b/")),
          [c3.id, c2.id, c1.id],
        );
        const onePath = await log(repo, "main", "?prefixes=a/&amount=1");
        assert.deepEqual(ids(onePath), [c3.id]);
        assert.equal(onePath.pagination.has_more, true);
        assert.equal(onePath.pagination.next_offset, c3.id);
        assert.deepEqual(ids(await log(repo, "main~1")), [m, f1.id, c2.id, c1.id, init]);
        for (
          const [query, message] of [
            ["", "ref: not found"],
            ["?stop_at=nosuchref", "stop_at: not found"],
            ["?after=nosuchref", "from ref: not found"],
          ]
        ) {
          const ref = query === "" ? "nosuchref" : "main";
          const answer = await api("GET", `/repositories/${repo}/refs/${ref}/commits${query}`);
          assert.equal(answer.status, 404, query);
          assert.deepEqual(answer.body, { message }, query);
        }
      },
    );

    await t.step(
      "diff refs: two_dot, three_dot (default; conflicts), prefix, delimiter, after, amount",
      async () => {
        const repo = await repository("diff");
        for (const path of ["x/1", "x/2", "y/1"]) await upload(repo, "main", path, `${path} base`);
        await commit(repo, "main", "base");
        await branch(repo, "w", "main");
        await upload(repo, "w", "x/1", "x/1 by w!");
        await client.deleteObject(repo, "w", "x/2");
        await upload(repo, "w", "z/1", "z");
        await commit(repo, "w", "w changes");
        await upload(repo, "main", "x/1", "x/1 by main");
        await upload(repo, "main", "y/1", "y/1 by main");
        await commit(repo, "main", "main changes");

        const twoDot = await diff(repo, "main", "w", "?type=two_dot");
        assert.deepEqual(lines(twoDot), ["changed x/1", "removed x/2", "changed y/1", "added z/1"]);
        assert.deepEqual(twoDot.results[0], {
          path: "x/1",
          path_type: "object",
          size_bytes: "x/1 by w!".length,
          type: "changed",
        });
        assert.equal(twoDot.results[1]!.size_bytes, "x/2 base".length);
        assert.deepEqual(twoDot.pagination, {
          has_more: false,
          next_offset: "",
          results: 4,
          max_per_page: 1000,
        });
        // Three dots: what merging w into main changes on main; y/1 changed only on main.
        const threeDot = await diff(repo, "main", "w", "?type=three_dot");
        assert.deepEqual(lines(threeDot), ["conflict x/1", "removed x/2", "added z/1"]);
        assert.equal(threeDot.results[0]!.size_bytes, "x/1 by w!".length);
        assert.deepEqual(lines(await diff(repo, "main", "w")), lines(threeDot));
        assert.deepEqual(lines(await diff(repo, "w", "main")), ["conflict x/1", "changed y/1"]);
        assert.deepEqual(lines(await diff(repo, "main", "main")), []);

        assert.deepEqual(lines(await diff(repo, "main", "w", "?type=two_dot&prefix=x/")), [
          "changed x/1",
          "removed x/2",
        ]);
        const folded = await diff(repo, "main", "w", "?type=two_dot&delimiter=/");
        assert.deepEqual(folded.results, [
          { path: "x/", path_type: "common_prefix", type: "prefix_changed" },
          { path: "y/", path_type: "common_prefix", type: "prefix_changed" },
          { path: "z/", path_type: "common_prefix", type: "prefix_changed" },
        ]);
        assert.deepEqual(
          lines(await diff(repo, "main", "w", "?type=two_dot&delimiter=/&after=x/")),
          ["prefix_changed y/", "prefix_changed z/"],
        );
        assert.deepEqual(
          lines(await diff(repo, "main", "w", "?type=two_dot&delimiter=/&prefix=x/")),
          ["changed x/1", "removed x/2"],
        );
        const page = await diff(repo, "main", "w", "?type=two_dot&amount=1");
        assert.deepEqual(lines(page), ["changed x/1"]);
        assert.deepEqual(page.pagination, {
          has_more: true,
          next_offset: "x/1",
          results: 1,
          max_per_page: 1000,
        });
        assert.deepEqual(
          lines(await diff(repo, "main", "w", "?type=two_dot&amount=2&after=x/1")),
          ["removed x/2", "changed y/1"],
        );
        const badType = await api("GET", `/repositories/${repo}/refs/main/diff/w?type=one_dot`);
        assert.equal(badType.status, 400);
        assert.match(
          badType.body.message,
          /^parameter "type" in query has an error: value is not one of the allowed values \["two_dot","three_dot"\]/,
        );
        const unknown = await api("GET", `/repositories/${repo}/refs/main/diff/nosuch`);
        assert.equal(unknown.status, 404);
        assert.deepEqual(unknown.body, { message: "get commit by ref nosuch: not found" });
        // A branch name stands for its head commit (staged changes are not in a ref diff); the
        // branch diff lists staged changes, an identity change (content type) included.
        await upload(repo, "w", "s/1", "staged");
        assert.deepEqual(lines(await diff(repo, "main", "w", "?type=two_dot&prefix=s/")), []);
        await upload(repo, "w", "z/1", "z", "text/csv");
        const staged = await api("GET", `/repositories/${repo}/branches/w/diff`);
        assert.equal(staged.status, 200);
        assert.deepEqual(lines(staged.body), ["added s/1", "changed z/1"]);
      },
    );

    await t.step(
      "merge squash: disjoint paths onto a moved destination; one parent, metadata, generation",
      async () => {
        const repo = await repository("squash");
        await upload(repo, "main", "base/x", "x0");
        const base = await commit(repo, "main", "base");
        await branch(repo, "w1", "main");
        await branch(repo, "w2", "main");
        await upload(repo, "w1", "w1/a", "a");
        const w1 = await commit(repo, "w1", "w1 a");
        await upload(repo, "w2", "w2/b", "b");
        await upload(repo, "w2", "w2/c", "c");
        await commit(repo, "w2", "w2 b");
        await upload(repo, "w2", "w2/c", "c2");
        const w2 = await commit(repo, "w2", "w2 c");

        const merged = await api("POST", `/repositories/${repo}/refs/w1/merge/main`, {
          json: { message: "publish w1", metadata: { who: "w1" }, squash_merge: true },
        });
        assert.equal(merged.status, 200);
        assert.deepEqual(Object.keys(merged.body), ["reference"]);
        const first = await client.getCommit(repo, merged.body.reference);
        assert.deepEqual(first.parents, [base.id]);
        assert.equal(first.message, "publish w1");
        assert.deepEqual(first.metadata, { who: "w1", ".lakefs.merge.strategy": "default" });
        assert.equal(
          first.generation,
          Math.max(base.generation as number, w1.generation as number) + 1,
        );
        assert.equal(await head(repo, "main"), first.id);
        // The destination moved: w2's changes (disjoint paths) merge onto the new head.
        const second = await client.merge(repo, "w2", "main", {
          message: "publish w2",
          metadata: { who: "w2" },
          squashMerge: true,
        });
        const secondCommit = await client.getCommit(repo, second);
        assert.deepEqual(secondCommit.parents, [first.id]);
        assert.equal(secondCommit.generation, (w2.generation as number) + 1);
        assert.deepEqual(await list(repo, "main"), ["base/x", "w1/a", "w2/b", "w2/c"]);
        assert.equal(await read(repo, "main", "w2/c"), "c2");
        // The squashed branches are not ancestors of main.
        const history = (await log(repo, "main")).results.map((c) => c.message);
        assert.deepEqual(history, ["publish w2", "publish w1", "base", "Repository created"]);
        // A plain merge has two parents and lakeFS's default message.
        await upload(repo, "w1", "w1/d", "d");
        const w1d = await commit(repo, "w1", "w1 d");
        const plain = await client.getCommit(repo, await client.merge(repo, "w1", "main"));
        assert.deepEqual(plain.parents, [second, w1d.id]);
        assert.equal(plain.message, "Merge 'w1' into 'main'");
        assert.deepEqual(plain.metadata, { ".lakefs.merge.strategy": "default" });
      },
    );

    await t.step(
      "merge conflict: both sides change one path from a common base -> 409 {reference: ''}",
      async () => {
        const repo = await repository("conflict");
        await upload(repo, "main", "base/x", "x0");
        await upload(repo, "main", "base/y", "y0");
        await commit(repo, "main", "base");
        for (const name of ["w3", "w4", "w5", "w6", "w7"]) await branch(repo, name, "main");
        await upload(repo, "w3", "base/x", "x3");
        await commit(repo, "w3", "w3 x");
        await upload(repo, "w4", "base/x", "x4");
        await commit(repo, "w4", "w4 x");
        await client.merge(repo, "w3", "main", { squashMerge: true });
        const before = await head(repo, "main");
        const conflict = await api("POST", `/repositories/${repo}/refs/w4/merge/main`, {
          json: { squash_merge: true },
        });
        assert.equal(conflict.status, 409);
        assert.deepEqual(conflict.body, { reference: "" });
        await assert.rejects(
          client.merge(repo, "w4", "main", { squashMerge: true }),
          LakeFsConflictError,
        );
        assert.equal(await head(repo, "main"), before);
        assert.equal(await read(repo, "main", "base/x"), "x3");
        // Deleted on one side, changed on the other: a conflict too.
        await client.deleteObject(repo, "w5", "base/y");
        await commit(repo, "w5", "w5 deletes y");
        await upload(repo, "w6", "base/y", "y6");
        await commit(repo, "w6", "w6 y");
        await client.merge(repo, "w6", "main", { squashMerge: true });
        await assert.rejects(client.merge(repo, "w5", "main"), LakeFsConflictError);
        // Both added the same content: no conflict.
        await upload(repo, "w7", "base/x", "x3");
        await upload(repo, "w7", "new/n", "n");
        await commit(repo, "w7", "w7 same x");
        await client.merge(repo, "w7", "main", { squashMerge: true });
        assert.deepEqual(await list(repo, "main"), ["base/x", "base/y", "new/n"]);
        // A strategy settles a conflict.
        await client.merge(repo, "w4", "main", { squashMerge: true, strategy: "dest-wins" });
        assert.equal(await read(repo, "main", "base/x"), "x3");
        await client.merge(repo, "w4", "main", { squashMerge: true, strategy: "source-wins" });
        assert.equal(await read(repo, "main", "base/x"), "x4");
        const strategy = (await client.getCommit(repo, "main")).metadata;
        assert.equal(strategy?.[".lakefs.merge.strategy"], "source-wins");
      },
    );

    await t.step(
      "merge without changes, dirty destination, unknown refs, bad strategy",
      async () => {
        const repo = await repository("nochange");
        await upload(repo, "main", "f", "0");
        await commit(repo, "main", "base");
        await branch(repo, "idle", "main");
        await branch(repo, "w", "main");
        await upload(repo, "w", "g", "1");
        await commit(repo, "w", "w g");
        // No changes: the source holds what the merge base holds.
        for (const source of ["main", "idle", "main~1"]) {
          const answer = await api("POST", `/repositories/${repo}/refs/${source}/merge/main`, {
            json: {},
          });
          assert.equal(answer.status, 400, source);
          assert.deepEqual(answer.body, { message: "update branch main: no changes" }, source);
        }
        await assert.rejects(client.merge(repo, "idle", "main"), LakeFsNoChangesError);
        const forced = await api("POST", `/repositories/${repo}/refs/idle/merge/main`, {
          json: { allow_empty: true },
        });
        assert.equal(forced.status, 200);
        // A squash-merged source merged again still commits: its changes since the merge base
        // are still there, even though the destination already holds them.
        const once = await client.merge(repo, "w", "main", { squashMerge: true });
        const twice = await client.merge(repo, "w", "main", { squashMerge: true });
        assert.notEqual(twice, once);
        assert.deepEqual((await client.getCommit(repo, twice)).parents, [once]);
        assert.deepEqual(lines(await diff(repo, once, twice, "?type=two_dot")), []);
        // A dirty destination refuses; an identical re-upload is not dirt.
        await upload(repo, "main", "g", "1");
        await upload(repo, "w", "h", "2");
        await commit(repo, "w", "w h");
        await client.merge(repo, "w", "main", { squashMerge: true });
        await upload(repo, "main", "dirty", "d");
        const dirty = await api("POST", `/repositories/${repo}/refs/w/merge/main`, { json: {} });
        assert.equal(dirty.status, 400);
        assert.deepEqual(dirty.body, { message: "uncommitted changes (dirty branch)" });
        await client.deleteObject(repo, "main", "dirty");
        const noSource = await api("POST", `/repositories/${repo}/refs/nosuch/merge/main`, {
          json: {},
        });
        assert.equal(noSource.status, 404);
        assert.deepEqual(noSource.body, {
          message: "update branch main: get commit by ref nosuch: not found",
        });
        const noDest = await api("POST", `/repositories/${repo}/refs/w/merge/nosuch`, { json: {} });
        assert.equal(noDest.status, 404);
        assert.deepEqual(noDest.body, { message: "branch not found" });
        const badStrategy = await api("POST", `/repositories/${repo}/refs/w/merge/main`, {
          json: { strategy: "ours" },
        });
        assert.equal(badStrategy.status, 400);
        assert.deepEqual(badStrategy.body, {
          message: "argument strategy: invalid value: validation error",
        });
      },
    );
    await t.step(
      "revert: undoes a commit onto the head; no changes 400, conflicts 409, merge commits need a parent",
      async () => {
        const repo = await repository("revert");
        await upload(repo, "main", "a", "1");
        const c1 = await commit(repo, "main", "c1");
        await upload(repo, "main", "b", "2");
        const c2 = await commit(repo, "main", "c2");
        await upload(repo, "main", "a", "3");
        const c3 = await commit(repo, "main", "c3");
        const revert = (ref: string, body: Record<string, unknown> = {}) =>
          api("POST", `/repositories/${repo}/branches/main/revert`, {
            json: { ref, parent_number: 0, ...body },
          });
        const undone = await revert(c2.id);
        assert.equal(undone.status, 204);
        assert.deepEqual(await list(repo, "main"), ["a"]);
        const head = await client.getCommit(repo, "main");
        assert.deepEqual(head.parents, [c3.id]);
        assert.equal(head.message, `Revert ${c2.id}`);
        assert.equal(head.generation, (c3.generation as number) + 1);
        // Its changes are gone already: nothing to revert (unless allow_empty).
        const again = await revert(c2.id);
        assert.equal(again.status, 400);
        assert.deepEqual(again.body, { message: "update branch: no changes" });
        assert.equal((await revert(c2.id, { allow_empty: true })).status, 204);
        // c3 changed "a" after c1 wrote it: reverting c1 conflicts.
        const conflict = await revert(c1.id);
        assert.equal(conflict.status, 409);
        assert.deepEqual(conflict.body, { message: "update branch: conflict found" });
        // perago's client, with a message and metadata.
        await client.revertCommit(repo, "main", c3.id, {
          message: "undo c3",
          metadata: { k: "v" },
        });
        const reverted = await client.getCommit(repo, "main");
        assert.equal(reverted.message, "undo c3");
        assert.deepEqual(reverted.metadata, { k: "v" });
        assert.equal(await read(repo, "main", "a"), "1");
        // Merge commits need a 1-based parent number.
        await branch(repo, "f", "main");
        await upload(repo, "f", "f", "f");
        await commit(repo, "f", "f");
        await upload(repo, "main", "m", "m");
        await commit(repo, "main", "m");
        const merge = await client.merge(repo, "f", "main");
        const noParent = await revert(merge);
        assert.equal(noParent.status, 409);
        assert.deepEqual(noParent.body, {
          message: "must specify 1-based parent number for reverting merge commit",
        });
        const outOfRange = await revert(merge, { parent_number: 3 });
        assert.equal(outOfRange.status, 400);
        assert.deepEqual(outOfRange.body, {
          message: "given commit does not have the given parent number: parent 3",
        });
        assert.equal((await revert(merge, { parent_number: 1 })).status, 204);
        assert.deepEqual(await list(repo, "main"), ["a", "m"]);
        // An identical re-upload is not dirt; a real change is (400), and an unknown ref is
        // found out first (404 even on a dirty branch).
        await upload(repo, "main", "m", "m");
        assert.equal((await revert(merge, { parent_number: 1, allow_empty: true })).status, 204);
        await upload(repo, "main", "dirty", "d");
        const dirty = await revert(merge, { parent_number: 1, allow_empty: true });
        assert.equal(dirty.status, 400);
        assert.deepEqual(dirty.body, { message: "uncommitted changes (dirty branch)" });
        const unknown = await revert("nosuchref");
        assert.equal(unknown.status, 404);
        assert.deepEqual(unknown.body, { message: "get commit from ref nosuchref: not found" });
      },
    );

    await t.step(
      "cherry-pick: a commit's change onto a branch as a 201 Commit with its origin; parents, 409, 400s",
      async () => {
        const repo = await repository("cherry");
        const root = await head(repo, "main");
        await branch(repo, "dev", "main");
        await upload(repo, "dev", "x", "one");
        const x = await client.commit(repo, "dev", "add x", { metadata: { k: "v" } });
        await upload(repo, "dev", "y", "two");
        const y = await commit(repo, "dev", "add y");
        const pick = (onto: string, body: Record<string, unknown>) =>
          api("POST", `/repositories/${repo}/branches/${onto}/cherry-pick`, { json: body });
        // The failures first: on lakeFS 1.84.0 a commit once cherry-picked may not be found
        // again by its id.
        await branch(repo, "other", root);
        await upload(repo, "other", "y", "other");
        await commit(repo, "other", "other y");
        const conflict = await pick("other", { ref: y.id });
        assert.equal(conflict.status, 409);
        assert.deepEqual(conflict.body, { message: "update branch: conflict found" });
        await branch(repo, "dirty", root);
        await upload(repo, "dirty", "d", "d");
        const dirty = await pick("dirty", { ref: y.id });
        assert.equal(dirty.status, 400);
        assert.deepEqual(dirty.body, { message: "uncommitted changes (dirty branch)" });
        const rootCommit = await pick("main", { ref: "dev~2" });
        assert.equal(rootCommit.status, 400);
        assert.deepEqual(rootCommit.body, {
          message: "parent 1: given commit does not have the given parent number",
        });
        const zero = await pick("main", { ref: "dev", parent_number: 0 });
        assert.equal(zero.status, 400);
        const unknown = await pick("main", { ref: "nosuch" });
        assert.equal(unknown.status, 404);
        assert.deepEqual(unknown.body, { message: "get commit from ref nosuch: not found" });
        const picked = await pick("main", { ref: "dev" });
        assert.equal(picked.status, 201);
        assert.equal(picked.body.message, "add y");
        assert.deepEqual(picked.body.parents, [root]);
        assert.equal(picked.body.committer, "admin");
        assert.deepEqual(picked.body.metadata, {
          "cherry-pick-origin": y.id,
          "cherry-pick-committer": "admin",
        });
        assert.equal(await head(repo, "main"), picked.body.id);
        assert.deepEqual(await list(repo, "main"), ["y"]);
        // Picking it again still commits (the change is there already).
        const twice = await pick("main", { ref: "dev" });
        assert.equal(twice.status, 201);
        assert.deepEqual(twice.body.parents, [picked.body.id]);
        // The original's metadata comes along unless overridden; the message too.
        const withMeta = await pick("main", { ref: "dev~1" });
        assert.equal(withMeta.status, 201);
        assert.deepEqual(withMeta.body.metadata, {
          k: "v",
          "cherry-pick-origin": x.id,
          "cherry-pick-committer": "admin",
        });
        const overridden = await pick("main", {
          ref: "dev~1",
          commit_overrides: { message: "mine", metadata: { a: "b" } },
        });
        assert.equal(overridden.body.message, "mine");
        assert.deepEqual(overridden.body.metadata, {
          a: "b",
          "cherry-pick-origin": x.id,
          "cherry-pick-committer": "admin",
        });
        assert.deepEqual(await list(repo, "main"), ["x", "y"]);
        // A merge commit needs its parent number.
        await upload(repo, "main", "m", "m");
        await commit(repo, "main", "m");
        const merge = await client.merge(repo, "dev", "main");
        const noParent = await pick("other", { ref: merge });
        assert.equal(noParent.status, 400);
        assert.deepEqual(noParent.body, {
          message: "must specify 1-based parent number for cherry-picking merge commit",
        });
        // A revert names the ref as given in its message.
        const reverted = await api("POST", `/repositories/${repo}/branches/other/revert`, {
          json: { ref: "other", parent_number: 0 },
        });
        assert.equal(reverted.status, 204);
        assert.equal((await client.getCommit(repo, "other")).message, "Revert other");
      },
    );

    await t.step(
      "branch protection: rules with an ETag; a protected branch takes merges and reverts, not writes, commits or hard resets",
      async () => {
        const repo = await repository("protect");
        const settings = `/repositories/${repo}/settings/branch_protection`;
        const none = await api("GET", settings);
        assert.equal(none.status, 200);
        assert.deepEqual(none.body, []);
        assert.equal(none.headers.get("etag") ?? "", "");
        const stale = await api("PUT", settings, {
          json: [{ pattern: "rel-*" }],
          headers: { "if-match": "not-the-etag" },
        });
        assert.equal(stale.status, 412);
        assert.deepEqual(stale.body, { message: "Precondition failed" });
        assert.equal((await api("PUT", settings, { json: [{ pattern: "rel-*" }] })).status, 204);
        const set = await api("GET", settings);
        assert.deepEqual(set.body, [{ pattern: "rel-*" }]);
        const etag = set.headers.get("etag") ?? "";
        assert.notEqual(etag, "");
        const replaced = await api("PUT", settings, {
          json: [{ pattern: "rel-*" }, { pattern: "main" }],
          headers: { "if-match": etag },
        });
        assert.equal(replaced.status, 204);
        // The older rule-by-rule form sees the same rules, in no set order (the real server
        // answered both orders).
        const legacy = `/repositories/${repo}/branch_protection`;
        const legacyRules = (await api("GET", legacy)).body as { pattern: string }[];
        assert.deepEqual(
          [...legacyRules].sort((x, y) => x.pattern.localeCompare(y.pattern)),
          [{ pattern: "main" }, { pattern: "rel-*" }],
        );
        assert.equal((await api("POST", legacy, { json: { pattern: "main" } })).status, 204);
        assert.equal((await api("DELETE", legacy, { json: { pattern: "nope" } })).status, 404);
        await branch(repo, "rel-1", "main");
        await branch(repo, "dev", "main");
        await upload(repo, "dev", "a.txt", "a");
        const devHead = (await commit(repo, "dev", "a")).id;
        // Writes, commits and hard resets are refused on a protected branch... once the rules
        // are in effect: the real server caches a repository's rules for a few seconds (a
        // write to rel-1 that lands meanwhile goes with the branch, deleted below).
        const write = await waitFor(async () => {
          const answer = await api("POST", `/repositories/${repo}/branches/rel-1/objects?path=x`, {
            body: "x",
          });
          return answer.status === 403 ? answer : undefined;
        }, { timeoutMs: 30_000, intervalMs: 200, what: "the protection rules to take effect" });
        assert.deepEqual(write.body, { message: "cannot write to protected branch" });
        const remove = await api("DELETE", `/repositories/${repo}/branches/main/objects?path=x`);
        assert.equal(remove.status, 403);
        assert.deepEqual(remove.body, { message: "cannot write to protected branch" });
        const bulk = await api("POST", `/repositories/${repo}/branches/main/objects/delete`, {
          json: { paths: ["x"] },
        });
        assert.equal(bulk.status, 200);
        assert.deepEqual(bulk.body, {
          errors: [{ path: "x", status_code: 403, message: "cannot write to protected branch" }],
        });
        const commitThere = await api("POST", `/repositories/${repo}/branches/main/commits`, {
          json: { message: "m", allow_empty: true },
        });
        assert.equal(commitThere.status, 403);
        assert.deepEqual(commitThere.body, { message: "cannot commit to protected branch" });
        const reset = await api(
          "PUT",
          `/repositories/${repo}/branches/main/hard_reset?ref=${devHead}`,
        );
        assert.equal(reset.status, 403);
        assert.deepEqual(reset.body, { message: "protected branch" });
        const unstage = await api("PUT", `/repositories/${repo}/branches/main`, {
          json: { type: "reset" },
        });
        assert.equal(unstage.status, 403);
        assert.deepEqual(unstage.body, { message: "cannot write to protected branch" });
        // ...merges are how changes get there; and an unprotected branch writes as before.
        const merged = await api("POST", `/repositories/${repo}/refs/dev/merge/main`, {
          json: { squash_merge: true },
        });
        assert.equal(merged.status, 200);
        assert.equal(await read(repo, "main", "a.txt"), "a");
        // A revert there is a merge too (lakeFS 1.84 takes it on a protected branch).
        const mergedId = (merged.body as { reference: string }).reference;
        const revertThere = await api("POST", `/repositories/${repo}/branches/main/revert`, {
          json: { ref: mergedId, parent_number: 0 },
        });
        assert.equal(revertThere.status, 204);
        assert.deepEqual((await client.getCommit(repo, "main")).parents, [mergedId]);
        await upload(repo, "dev", "b.txt", "b");
        // A protected branch that is not the default may still be deleted.
        assert.equal((await api("DELETE", `/repositories/${repo}/branches/rel-1`)).status, 204);
      },
    );
  } finally {
    for (const repo of repos) await deleteTestRepository(target, repo);
  }
}

const DEMO_KEY = "AKIAPERAGOCONTRACT";
const DEMO_SECRET = "perago-contract-secret-0123456789";

Deno.test("lakeFS contract: demo server", async (t) => {
  const server = await startLakeFsServer({ accessKeyId: DEMO_KEY, secretAccessKey: DEMO_SECRET });
  try {
    await lakeFsContract(t, {
      url: server.url,
      accessKeyId: DEMO_KEY,
      secretAccessKey: DEMO_SECRET,
      real: false,
    });
  } finally {
    await server.close();
  }
});

const real = realLakeFs();
Deno.test({
  name: "lakeFS contract: real lakeFS (PERAGO_TEST_LAKEFS_*)",
  ignore: skipNote("lakeFS contract against a real lakeFS", real),
  fn: async (t) => {
    if ("skip" in real) return;
    await lakeFsContract(t, { ...real, real: true });
  },
});
