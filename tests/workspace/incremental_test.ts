import assert from "node:assert/strict";
import { diffLocalWithRemote, type RemoteEntry } from "../../src/lakefs/sync.ts";
import { runAttempt } from "../../src/workspace/attempt.ts";
import { defineTask, z } from "../../mod.ts";
import { join } from "node:path";
import { attemptOptions, branchNames, identity, readTree, seed, startStack } from "./_stack.ts";

Deno.test("diffLocalWithRemote compares by size and checksum", () => {
  const remote: RemoteEntry[] = [
    { key: "d/same", size: 3, checksum: "AAA" },
    { key: "d/resized", size: 3, checksum: "bbb" },
    { key: "d/edited", size: 3, checksum: "ccc" },
    { key: "d/unknown", size: 3, checksum: "ddd" },
    { key: "d/gone", size: 1, checksum: "eee" },
  ];
  const plan = diffLocalWithRemote([
    { key: "d/same", size: 3, checksum: "aaa" },
    { key: "d/resized", size: 4, checksum: "bbb" },
    { key: "d/edited", size: 3, checksum: "fff" },
    { key: "d/unknown", size: 3 },
    { key: "d/new", size: 9, checksum: "ggg" },
  ], remote);
  assert.deepEqual(plan.uploads.map((entry) => entry.key), [
    "d/edited",
    "d/new",
    "d/resized",
    "d/unknown",
  ]);
  assert.deepEqual(plan.deletes.map((entry) => entry.key), ["d/gone"]);
});

Deno.test("diffLocalWithRemote gives the same plan for lists in key order (paired by cursor)", () => {
  const byKey = <T extends { key: string }>(list: T[]) =>
    [...list].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const remote: RemoteEntry[] = byKey([
    { key: "a", size: 1, checksum: "x" },
    { key: "d/same", size: 3, checksum: "AAA" },
    { key: "d/resized", size: 3, checksum: "bbb" },
    { key: "d/gone", size: 1, checksum: "eee" },
    { key: "z/gone", size: 1, checksum: "fff" },
  ]);
  const local = byKey([
    { key: "d/same", size: 3, checksum: "aaa" },
    { key: "d/resized", size: 4, checksum: "bbb" },
    { key: "d/new", size: 9, checksum: "ggg" },
    { key: "d/unknown", size: 3 },
  ]);
  const plan = diffLocalWithRemote(local, remote);
  assert.deepEqual(plan.uploads.map((entry) => entry.key), ["d/new", "d/resized", "d/unknown"]);
  assert.deepEqual(plan.deletes.map((entry) => entry.key), ["a", "d/gone", "z/gone"]);
  const unsorted = diffLocalWithRemote([...local].reverse(), [...remote].reverse());
  assert.deepEqual(unsorted.uploads, plan.uploads);
  assert.deepEqual(unsorted.deletes, plan.deletes);
});

const touchOne = defineTask({
  name: "touch_one",
  ownerEmail: "tests@example.com",
  description: "changes one file",
  params: z.object({ path: z.string() }),
  result: z.object({ ok: z.boolean() }),
  workspace: { prefix: "data/" },
  async run({ path }, ctx) {
    await Deno.writeTextFile(join(ctx.workspace!, path), "changed!");
    return { ok: true };
  },
});

Deno.test("1-in-10,000: one changed file uploads exactly one object and deletes nothing", async () => {
  await using stack = await startStack();
  const files: Record<string, string> = {};
  for (let i = 0; i < 10_000; i++) {
    files[`data/${String(i % 100).padStart(2, "0")}/f${i}.txt`] = `file ${i}\n`;
  }
  const a = await seed(stack, files, { concurrency: 64 });
  stack.server.stats.reset();
  const attempt = identity();
  const outcome = await runAttempt(
    attemptOptions(stack, touchOne, a, { path: "data/42/f4242.txt" }, {
      attempt,
      syncConcurrency: 32,
    }),
  );
  assert.equal(outcome.status, "COMPLETED", outcome.reasonForIncompletion);
  // Every request the attempt made, whatever the machine's speed: one download per object and
  // the listing's pages (1,000 entries a page), then a constant number of calls for the one
  // change (no per-file stat, upload, staging or delete request for the 9,999 unchanged files).
  assert.deepEqual(stack.server.stats.snapshot(), {
    listObjects: 10,
    getObject: 10_000,
    listBranches: 1,
    createBranch: 1,
    uploadObject: 1,
    commit: 1,
    getBranch: 1,
    mergeIntoBranch: 1,
    getCommit: 1,
    deleteBranch: 1,
  });
  assert.deepEqual(outcome.changes?.changed, [{ path: "data/42/f4242.txt", size: 8 }]);
  const tree = await readTree(stack, outcome.publishedRef!, "data/42/");
  assert.equal(tree["data/42/f4242.txt"], "changed!");
  assert.equal(tree["data/42/f4342.txt"], "file 4342\n");
  assert.deepEqual(await branchNames(stack), ["main"]);
});
