import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  LakeFsConflictError,
  type LakeFsError,
  LakeFsNoChangesError,
  LakeFsNotFoundError,
} from "../../src/lakefs/errors.ts";
import { MemoryLakeFs } from "../../src/testing/memory_lakefs.ts";

const text = (bytes: Uint8Array | undefined) =>
  bytes === undefined ? undefined : new TextDecoder().decode(bytes);

Deno.test("MemoryLakeFs: a seeded repository lists, streams and checksums its objects like lakeFS", async () => {
  const lakefs = new MemoryLakeFs();
  const seed = await lakefs.seedRepository("repo", {
    "docs/b.txt": "bee",
    "docs/a.txt": "alpha",
    "docs/sub/c.txt": "sea",
    "top.txt": "top",
  });
  assert.deepEqual(seed.parents.length, 1);
  assert.equal((await lakefs.getBranch("repo", "main")).commit_id, seed.id);
  const listed = await Array.fromAsync(lakefs.listObjects("repo", seed.id, { prefix: "docs/" }));
  assert.deepEqual(listed.map((entry) => entry.path), [
    "docs/a.txt",
    "docs/b.txt",
    "docs/sub/c.txt",
  ]);
  assert.equal(listed[0]!.checksum, createHash("md5").update("alpha").digest("hex"));
  assert.equal(listed[0]!.size_bytes, 5);
  const after = await Array.fromAsync(lakefs.listObjects("repo", "main", { after: "docs/b.txt" }));
  assert.deepEqual(after.map((entry) => entry.path), ["docs/sub/c.txt", "top.txt"]);
  const folders = await Array.fromAsync(lakefs.listObjects("repo", "main", { delimiter: "/" }));
  assert.deepEqual(folders.map((e) => [e.path, e.path_type]), [
    ["docs/", "common_prefix"],
    ["top.txt", "object"],
  ]);
  const body = await lakefs.getObject("repo", seed.id, "docs/a.txt");
  assert.equal(await new Response(body).text(), "alpha");
  await assert.rejects(() => lakefs.getObject("repo", "main", "nope"), LakeFsNotFoundError);
  await assert.rejects(() => lakefs.getRepository("other"), LakeFsNotFoundError);
});

Deno.test("MemoryLakeFs: branches stage, commit, squash-merge and hard-reset", async () => {
  const lakefs = new MemoryLakeFs();
  const seed = await lakefs.seedRepository("repo", { "a.txt": "a", "b.txt": "b" });
  assert.equal(await lakefs.createBranch("repo", "work", seed.id), seed.id);
  await assert.rejects(() => lakefs.createBranch("repo", "work", "main"), LakeFsConflictError);
  const bytes = new TextEncoder().encode("A");
  await lakefs.uploadObject("repo", "work", "a.txt", () => Promise.resolve(bytes));
  await lakefs.deleteObjects("repo", "work", ["b.txt"]);
  // A branch ref sees its staged changes; the commit does not.
  assert.equal(text(lakefs.readFile("repo", "work", "a.txt")), "A");
  assert.equal(text(lakefs.readFile("repo", seed.id, "a.txt")), "a");
  const staged = await lakefs.commit("repo", "work", "edit", { metadata: { k: "v" } });
  assert.deepEqual(staged.parents, [seed.id]);
  assert.deepEqual(staged.metadata, { k: "v" });
  await assert.rejects(() => lakefs.commit("repo", "work", "again"), LakeFsNoChangesError);

  const merged = await lakefs.merge("repo", "work", "main", { squashMerge: true, message: "m" });
  const commit = await lakefs.getCommit("repo", merged);
  assert.deepEqual(commit.parents, [seed.id]);
  assert.deepEqual(lakefs.listPaths("repo", "main"), ["a.txt"]);
  assert.deepEqual(
    (await Array.fromAsync(lakefs.listBranches("repo", { prefix: "wo" }))).map((ref) => ref.id),
    ["work"],
  );

  await lakefs.hardReset("repo", "main", seed.id);
  assert.equal((await lakefs.getBranch("repo", "main")).commit_id, seed.id);
  await lakefs.deleteBranch("repo", "work");
  await assert.rejects(() => lakefs.getBranch("repo", "work"), LakeFsNotFoundError);
  await assert.rejects(
    () => lakefs.deleteBranch("repo", "main"),
    (error: LakeFsError) => error.status === 403,
  );
});

Deno.test("MemoryLakeFs: conflicting merges, bad names and aborted calls fail as the client does", async () => {
  const lakefs = new MemoryLakeFs();
  const seed = await lakefs.seedRepository("repo", { "a.txt": "a" });
  await lakefs.createBranch("repo", "x", seed.id);
  const put = (branch: string, content: string) =>
    lakefs.uploadObject(
      "repo",
      branch,
      "a.txt",
      () => Promise.resolve(new TextEncoder().encode(content)),
    );
  await put("x", "from x");
  await lakefs.commit("repo", "x", "x");
  await put("main", "from main");
  await lakefs.commit("repo", "main", "main");
  await assert.rejects(() => lakefs.merge("repo", "x", "main"), LakeFsConflictError);
  await assert.rejects(
    () => lakefs.createRepository("Bad_Name", "local://x"),
    (error: LakeFsError) => error.status === 400 && error.operation === "createRepository",
  );
  await assert.rejects(() => lakefs.createRepository("repo", "local://repo"), LakeFsConflictError);
  const controller = new AbortController();
  controller.abort(new Error("stop"));
  await assert.rejects(() => lakefs.getBranch("repo", "main", controller.signal), /stop/);
});

Deno.test("MemoryLakeFs: diffs between refs, the commit log and reverts", async () => {
  const lakefs = new MemoryLakeFs();
  const seed = await lakefs.seedRepository("repo", {
    "a/1.txt": "1",
    "a/2.txt": "2",
    "b.txt": "b",
  });
  const put = (path: string, content: string) =>
    lakefs.uploadObject(
      "repo",
      "main",
      path,
      () => Promise.resolve(new TextEncoder().encode(content)),
    );
  await put("a/1.txt", "one");
  await put("a/3.txt", "3");
  await lakefs.deleteObject("repo", "main", "a/2.txt");
  const second = await lakefs.commit("repo", "main", "second");
  await put("b.txt", "bee");
  const third = await lakefs.commit("repo", "main", "third");

  const diff = await Array.fromAsync(lakefs.diffRefs("repo", seed.id, second.id, { prefix: "a/" }));
  assert.deepEqual(diff.map((entry) => [entry.type, entry.path]), [
    ["changed", "a/1.txt"],
    ["removed", "a/2.txt"],
    ["added", "a/3.txt"],
  ]);
  assert.deepEqual(
    await Array.fromAsync(lakefs.diffRefs("repo", second.id, third.id, { prefix: "a/" })),
    [],
  );

  const log = await Array.fromAsync(lakefs.logCommits("repo", "main", { stopAt: second.id }));
  assert.deepEqual(log.map((commit) => commit.id), [third.id, second.id]);

  await lakefs.revertCommit("repo", "main", third.id);
  assert.equal(text(lakefs.readFile("repo", "main", "b.txt")), "b");
  assert.equal(text(lakefs.readFile("repo", "main", "a/1.txt")), "one");
});
