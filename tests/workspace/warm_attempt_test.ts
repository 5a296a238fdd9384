import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { ObjectCache, objectCacheDir } from "../../src/lakefs/object_cache.ts";
import { runAttempt } from "../../src/workspace/attempt.ts";
import { trashedDirsRemoved } from "../../src/workspace/attempt_dir.ts";
import { defineTask, z } from "../../mod.ts";
import { attemptOptions, identity, readTree, seed, startStack } from "./_stack.ts";

/** Rewrites one file in place (same inode: open without truncate, write over the start). */
const rewriteInPlace = defineTask({
  name: "rewrite_in_place",
  ownerEmail: "tests@example.com",
  description: "overwrites the first bytes of one file without replacing it",
  params: z.object({ path: z.string(), text: z.string() }),
  result: z.object({ before: z.string() }),
  workspace: { prefix: "data/" },
  async run({ path, text }, ctx) {
    const full = join(ctx.workspace!, path);
    const before = await Deno.readTextFile(full);
    const file = await Deno.open(full, { write: true });
    await file.write(new TextEncoder().encode(text));
    file.close();
    return { before };
  },
});

Deno.test("warm attempts: a re-run copies every object from the host cache; a task's in-place rewrite never reaches the cache", async () => {
  await using stack = await startStack();
  const files: Record<string, string> = {};
  for (let i = 0; i < 50; i++) files[`data/${i % 5}/f${i}.txt`] = `file number ${i}\n`;
  const ref = await seed(stack, files);
  const cache = new ObjectCache({ dir: objectCacheDir(stack.root), maxBytes: 1 << 20 });
  const run = async (text: string, dryRun: boolean) => {
    const attempt = identity();
    return await runAttempt(
      attemptOptions(stack, rewriteInPlace, ref, { path: "data/1/f1.txt", text }, {
        attempt,
        downloadCache: cache,
        dryRun,
      }),
    );
  };
  stack.server.stats.reset();
  // A dry run fills the cache (and rewrites one file of its own copy in place).
  const cold = await run("FIRST", true);
  assert.equal(cold.status, "COMPLETED", cold.reasonForIncompletion);
  assert.equal(stack.server.stats.count("getObject"), 50);
  assert.equal(cache.stats.fills, 50);

  // The same input ref again: no object fetched, and the file the first attempt rewrote in
  // place is the original again.
  stack.server.stats.reset();
  const warm = await run("AGAIN", false);
  assert.equal(warm.status, "COMPLETED", warm.reasonForIncompletion);
  assert.equal(stack.server.stats.count("getObject"), 0);
  assert.deepEqual(warm.outputData?.result, { before: "file number 1\n" });
  assert.equal(cache.stats.hits, 50);
  // What was published is the rewrite, built from the cached copy.
  const tree = await readTree(stack, warm.publishedRef!, "data/1/");
  assert.equal(tree["data/1/f1.txt"], "AGAINnumber 1\n");
  assert.equal(tree["data/1/f6.txt"], "file number 6\n");
  // Only the cache is left in the workspace root.
  const left = await Array.fromAsync(Deno.readDir(stack.root));
  assert.deepEqual(left.map((entry) => entry.name), [".perago-cache"]);
});

Deno.test("warm attempts: a large object's digest is kept beside its cache entry; a same-size rewrite of the copy is still published", async () => {
  await using stack = await startStack();
  const big = "x".repeat(300 * 1024 - 1) + "\n"; // past the in-memory limit: copied by file
  const ref = await seed(stack, { "data/big.txt": big, "data/small.txt": "small\n" });
  const cache = new ObjectCache({ dir: objectCacheDir(stack.root), maxBytes: 16 << 20 });
  const run = (text: string, dryRun: boolean) =>
    runAttempt(
      attemptOptions(stack, rewriteInPlace, ref, { path: "data/big.txt", text }, {
        downloadCache: cache,
        dryRun,
      }),
    );
  const cold = await run("FIRST", true);
  assert.equal(cold.status, "COMPLETED", cold.reasonForIncompletion);
  // The digest of the verified download (taken as it streamed in) is kept beside its entry.
  const bytes = new TextEncoder().encode(big);
  const md5 = createHash("md5").update(bytes).digest("hex");
  const entry = join(
    objectCacheDir(stack.root),
    "objects",
    md5.slice(0, 2),
    `${md5}-${bytes.length}`,
  );
  assert.equal(
    (await Deno.readTextFile(`${entry}.sha256`)).trim(),
    createHash("sha256").update(bytes).digest("hex"),
  );
  stack.server.stats.reset();
  const warm = await run("AGAIN", false);
  assert.equal(warm.status, "COMPLETED", warm.reasonForIncompletion);
  assert.equal(stack.server.stats.count("getObject"), 0);
  assert.deepEqual(warm.changes, {
    added: [],
    changed: [{ path: "data/big.txt", size: bytes.length }],
    removed: [],
  });
  const tree = await readTree(stack, warm.publishedRef!, "data/");
  assert.equal(tree["data/big.txt"], "AGAIN" + big.slice(5));
  assert.equal(tree["data/small.txt"], "small\n");
});

Deno.test("warm attempts: with removeDirInBackground the attempt directory is gone when the attempt returns and removed after", async () => {
  const stack = await startStack();
  try {
    const files: Record<string, string> = {};
    for (let i = 0; i < 30; i++) files[`data/${i % 3}/f${i}.txt`] = `file ${i}\n`;
    const ref = await seed(stack, files);
    const outcome = await runAttempt(
      attemptOptions(stack, rewriteInPlace, ref, { path: "data/1/f1.txt", text: "X" }, {
        removeDirInBackground: true,
      }),
    );
    assert.equal(outcome.status, "COMPLETED", outcome.reasonForIncompletion);
    const names = (await Array.fromAsync(Deno.readDir(stack.root))).map((entry) => entry.name);
    assert.ok(!names.some((name) => name.startsWith("task_id=")), names.join(", "));
    await trashedDirsRemoved();
    assert.deepEqual(await Array.fromAsync(Deno.readDir(stack.root)), []);
    const tree = await readTree(stack, outcome.publishedRef!, "data/1/");
    assert.equal(tree["data/1/f1.txt"], "Xile 1\n");
  } finally {
    await stack.close();
  }
});
