import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { runAttempt } from "../../src/workspace/attempt.ts";
import { ATTEMPT_MARKER, trashedDirsRemoved } from "../../src/workspace/attempt_dir.ts";
import {
  type DescribedDir,
  keepPooledFile,
  type PooledFile,
  type RetireInfo,
  walkClaimedDir,
  type WalkedDir,
  WARM_POOL_DIR_NAME,
  WarmPool,
} from "../../src/workspace/warm_pool.ts";
import { defineTask, z } from "../../mod.ts";
import { attemptOptions, identity, readTree, seed, type Stack, startStack } from "./_stack.ts";

/** Reads every entry of its workspace (links by target), then applies `write`. */
const inspect = defineTask({
  name: "inspect",
  ownerEmail: "tests@example.com",
  description: "reports what the workspace holds, then writes",
  params: z.object({ write: z.record(z.string(), z.string()).default({}) }),
  result: z.object({ files: z.record(z.string(), z.string()) }),
  workspace: { prefix: "data/" },
  async run({ write }, ctx) {
    const files: Record<string, string> = {};
    const walk = async (rel: string) => {
      for await (const entry of Deno.readDir(join(ctx.workspace!, rel))) {
        const path = rel === "" ? entry.name : `${rel}/${entry.name}`;
        if (path === ".perago-attempt.json") continue;
        if (entry.isSymlink) {
          files[path] = `link:${await Deno.readLink(join(ctx.workspace!, path))}`;
        } else if (entry.isDirectory) await walk(path);
        else files[path] = await Deno.readTextFile(join(ctx.workspace!, path));
      }
    };
    await walk("");
    for (const [path, text] of Object.entries(write)) {
      await Deno.writeTextFile(join(ctx.workspace!, path), text);
    }
    return { files };
  },
});

let runs = 0;

async function run(stack: Stack, pool: WarmPool | undefined, write: Record<string, string> = {}) {
  const ref = (await stack.lakefs.getBranch(stack.repo, "main")).commit_id;
  const n = ++runs;
  const outcome = await runAttempt(
    attemptOptions(stack, inspect, ref, { write }, {
      attempt: identity({ workflowInstanceId: `wf-warm-${n}`, taskId: `task-warm-${n}` }),
      ...(pool === undefined ? {} : { warmPool: pool }),
      removeDirInBackground: true,
    }),
  );
  await trashedDirsRemoved();
  assert.equal(outcome.status, "COMPLETED", outcome.reasonForIncompletion);
  return outcome;
}

function files(count: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < count; i++) out[`data/${i % 3}/f${i}.txt`] = `file ${i}\n`;
  return out;
}

/** Seeds `count` files and runs one attempt with a pool that then ends: its directory is pooled. */
async function seedAndRetire(stack: Stack, count: number): Promise<void> {
  await seed(stack, files(count));
  const first = new WarmPool({ root: stack.root, maxDirs: 2 });
  await run(stack, first);
  await first.close(); // the first "process" ended
}

/** The pooled directories of the stack's workspace root. */
function pooled(stack: Stack): string[] {
  try {
    return [...Deno.readDirSync(join(stack.root, WARM_POOL_DIR_NAME))]
      .filter((entry) => entry.isDirectory && entry.name !== "holders")
      .map((entry) => join(stack.root, WARM_POOL_DIR_NAME, entry.name));
  } catch {
    return [];
  }
}

/** The manifest row of `dir/path` as it is now, claiming `text` as its content. */
function pooledRow(dir: string, path: string, text: string): PooledFile {
  const info = Deno.lstatSync(join(dir, path));
  return {
    checksum: "-",
    size: info.size,
    sha256: createHash("sha256").update(text).digest("hex"),
    ino: info.ino!,
    mtimeMs: info.mtime!.getTime(),
    ctimeMs: info.ctime!.getTime(),
  };
}

/** The files of a walked directory that {@linkcode keepPooledFile} keeps (it removes the others). */
function keptFiles(walked: WalkedDir): string[] {
  return [...walked.files.keys()].filter((path) => keepPooledFile(walked, path) !== undefined)
    .sort();
}

Deno.test("warm pool: a re-run keeps every file of the directory an ended attempt left, the one it published included", async () => {
  await using stack = await startStack();
  await seed(stack, files(30));
  const first = new WarmPool({ root: stack.root, maxDirs: 2 });
  await run(stack, first, { "data/0/f0.txt": "changed by the first run\n" });
  assert.equal(pooled(stack).length, 1);
  await first.close(); // the first "process" ended

  stack.server.stats.reset();
  const second = new WarmPool({ root: stack.root, maxDirs: 2 });
  const outcome = await run(stack, second, { "data/1/f1.txt": "changed by the second run\n" });
  // Nothing fetched: the published file's checksum is the MD5 the pool computed.
  assert.equal(stack.server.stats.count("getObject"), 0);
  const seen = (outcome.outputData?.result as { files: Record<string, string> }).files;
  const head = (await stack.lakefs.getBranch(stack.repo, "main")).commit_id;
  const tree = await readTree(stack, head, "data/");
  assert.equal(tree["data/1/f1.txt"], "changed by the second run\n");
  assert.equal(seen["data/0/f0.txt"], "changed by the first run\n");
  assert.deepEqual(
    { ...seen, "data/1/f1.txt": tree["data/1/f1.txt"] },
    tree,
    "the task saw exactly the input tree",
  );
  assert.deepEqual(outcome.changes?.changed.map((entry) => entry.path), ["data/1/f1.txt"]);
  assert.equal(outcome.changes?.added.length, 0);
  await second.close();
  assert.equal(pooled(stack).length, 1, "the second run's directory replaced the first's");
});

Deno.test("warm pool: objects removed from lakeFS or rewritten there since the directory was pooled are gone or fetched again, and no change of the re-run's task", async () => {
  await using stack = await startStack();
  await seedAndRetire(stack, 12);
  // The snapshot before the task is the listing: a pooled file the listing lacks must be gone.
  await seed(stack, { "data/1/f1.txt": "rewritten in lakeFS\n", "data/new.txt": "new\n" }, {
    deletes: ["data/0/f0.txt", "data/2/f2.txt"],
  });
  stack.server.stats.reset();
  const second = new WarmPool({ root: stack.root, maxDirs: 2 });
  const outcome = await run(stack, second);
  assert.equal(stack.server.stats.count("getObject"), 2, "f1 and new.txt fetched");
  const seen = (outcome.outputData?.result as { files: Record<string, string> }).files;
  const head = (await stack.lakefs.getBranch(stack.repo, "main")).commit_id;
  assert.deepEqual(seen, await readTree(stack, head, "data/"));
  assert.equal(seen["data/0/f0.txt"], undefined);
  assert.equal(outcome.publication, "unchanged");
  assert.deepEqual(outcome.changes, { added: [], changed: [], removed: [] });
  await second.close();
});

Deno.test("warm pool: a listed key no download may write is refused even when a pooled file has its path and content", async () => {
  await using stack = await startStack();
  await seed(stack, files(3));
  const unsafe = "data/tab\there.txt";
  // A task writes a file whose name is no safe key: staging refuses it, the directory is pooled.
  const first = new WarmPool({ root: stack.root, maxDirs: 2 });
  const head = (await stack.lakefs.getBranch(stack.repo, "main")).commit_id;
  const refused = await runAttempt(
    attemptOptions(stack, inspect, head, { write: { [unsafe]: "evil\n" } }, {
      attempt: identity({ workflowInstanceId: "wf-warm-unsafe-1", taskId: "task-warm-unsafe-1" }),
      warmPool: first,
      removeDirInBackground: true,
    }),
  );
  await trashedDirsRemoved();
  assert.match(refused.reasonForIncompletion ?? "", /UnsafePathError/);
  await first.close();
  assert.equal(pooled(stack).length, 1);
  // The same key with the same bytes in lakeFS: a cold download refuses it, so must a warm one.
  const ref = await seed(stack, { [unsafe]: "evil\n" });
  const second = new WarmPool({ root: stack.root, maxDirs: 2 });
  const outcome = await runAttempt(
    attemptOptions(stack, inspect, ref, {}, {
      attempt: identity({ workflowInstanceId: "wf-warm-unsafe-2", taskId: "task-warm-unsafe-2" }),
      warmPool: second,
      removeDirInBackground: true,
    }),
  );
  await trashedDirsRemoved();
  assert.equal(outcome.status, "FAILED_WITH_TERMINAL_ERROR");
  assert.match(outcome.reasonForIncompletion!, /^UnsafePathError: unsafe object key/);
  await second.close();
});

Deno.test("warm pool: with readAtClaim the retirement reads no downloaded file (the claimer checks them) and a re-run still keeps every file and sees exactly its input", async () => {
  await using stack = await startStack();
  await seed(stack, files(30));
  const first = new WarmPool({ root: stack.root, maxDirs: 2, readAtClaim: true });
  await run(stack, first, { "data/0/f0.txt": "changed by the first run\n" });
  const [entry] = pooled(stack);
  const manifest = JSON.parse(await Deno.readTextFile(`${entry}.json`)) as {
    stamp_ms: number;
    files: Record<string, unknown[]>;
  };
  assert.equal(Object.keys(manifest.files).length, 30);
  for (const [path, row] of Object.entries(manifest.files)) {
    // Marked for the claimer, or unread because older than the stamp before the task; the
    // file the task wrote (another size) was read.
    if (path === "data/0/f0.txt") assert.equal(row.length, 6);
    else assert.ok(row.length === 7 || (row[5] as number) < manifest.stamp_ms, path);
  }
  await first.close();

  stack.server.stats.reset();
  const second = new WarmPool({ root: stack.root, maxDirs: 2, readAtClaim: true });
  const outcome = await run(stack, second, { "data/1/f1.txt": "changed by the second run\n" });
  assert.equal(stack.server.stats.count("getObject"), 0);
  const seen = (outcome.outputData?.result as { files: Record<string, string> }).files;
  const head = (await stack.lakefs.getBranch(stack.repo, "main")).commit_id;
  const tree = await readTree(stack, head, "data/");
  assert.equal(seen["data/0/f0.txt"], "changed by the first run\n");
  assert.deepEqual({ ...seen, "data/1/f1.txt": tree["data/1/f1.txt"] }, tree);
  await second.close();
});

Deno.test("warm pool: tampering with a pooled directory is undone before the task runs (in-place same-size rewrite in the same second, links, extra files, a folder for a file)", async () => {
  await using stack = await startStack();
  await seedAndRetire(stack, 12);
  const [dir] = pooled(stack);
  assert.ok(dir !== undefined);
  // Same size, same inode, mtime put back: only the ctime tells.
  const target = join(dir, "data/0/f3.txt");
  const { mtime } = Deno.lstatSync(target);
  const file = Deno.openSync(target, { write: true });
  file.writeSync(new TextEncoder().encode("FILE"));
  file.close();
  Deno.utimeSync(target, mtime!, mtime!);
  Deno.symlinkSync("/etc/passwd", join(dir, "data/planted.txt"));
  Deno.removeSync(join(dir, "data/1/f4.txt"));
  Deno.symlinkSync("/etc/hostname", join(dir, "data/1/f4.txt"));
  Deno.writeTextFileSync(join(dir, "data/extra.txt"), "not in lakeFS\n");
  Deno.removeSync(join(dir, "data/2/f5.txt"));
  Deno.mkdirSync(join(dir, "data/2/f5.txt"));
  Deno.writeTextFileSync(join(dir, "data/2/f5.txt/inner.txt"), "inside\n");

  stack.server.stats.reset();
  const second = new WarmPool({ root: stack.root, maxDirs: 2 });
  const outcome = await run(stack, second);
  assert.equal(stack.server.stats.count("getObject"), 3, "f3, f4, f5 fetched again");
  const seen = (outcome.outputData?.result as { files: Record<string, string> }).files;
  const head = (await stack.lakefs.getBranch(stack.repo, "main")).commit_id;
  assert.deepEqual(seen, await readTree(stack, head, "data/"));
  assert.equal(outcome.publication, "unchanged");
  assert.deepEqual(outcome.changes, { added: [], changed: [], removed: [] });
  await second.close();
});

/**
 * Whether `chattr +i` works on files in the temporary directory (root on a filesystem with
 * inode flags): the one way to make a file the walk cannot remove when tests run as root.
 */
function immutableFilesWork(): boolean {
  const dir = Deno.makeTempDirSync({ prefix: "perago-immutable-probe-" });
  const probe = join(dir, "probe");
  Deno.writeTextFileSync(probe, "");
  try {
    const set = new Deno.Command("chattr", { args: ["+i", probe], stderr: "null" }).outputSync();
    if (!set.success) return false;
    new Deno.Command("chattr", { args: ["-i", probe], stderr: "null" }).outputSync();
    return true;
  } catch {
    return false; // no chattr
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

const immutableFiles = immutableFilesWork();
if (!immutableFiles) {
  // deno-lint-ignore no-console
  console.log("warm pool: the walk-cannot-clear test is skipped: `chattr +i` does not work here");
}

Deno.test({
  name:
    "warm pool: a pooled directory the walk cannot clear (an immutable file planted in it) is given up and the attempt downloads afresh",
  ignore: !immutableFiles,
}, async () => {
  await using stack = await startStack();
  try {
    await seedAndRetire(stack, 12);
    const [dir] = pooled(stack);
    assert.ok(dir !== undefined);
    const planted = join(dir, "data/planted.txt");
    Deno.writeTextFileSync(planted, "not in lakeFS, and cannot be removed\n");
    const set = new Deno.Command("chattr", { args: ["+i", planted] }).outputSync();
    assert.ok(set.success, "chattr +i on the planted file");

    stack.server.stats.reset();
    const second = new WarmPool({ root: stack.root, maxDirs: 2 });
    const outcome = await run(stack, second);
    assert.equal(stack.server.stats.count("getObject"), 12, "every file downloaded again");
    const seen = (outcome.outputData?.result as { files: Record<string, string> }).files;
    const head = (await stack.lakefs.getBranch(stack.repo, "main")).commit_id;
    assert.deepEqual(seen, await readTree(stack, head, "data/"), "the planted file is not seen");
    assert.equal(outcome.publication, "unchanged");
    assert.ok(!pooled(stack).includes(dir), "the directory given up is not pooled again");
    await second.close();
  } finally {
    // Let the stack remove everything, the trashed directory with the planted file included.
    new Deno.Command("chattr", { args: ["-R", "-i", stack.root], stderr: "null" }).outputSync();
  }
});

Deno.test("warm pool: two attempts claiming at once never get the same directory", async () => {
  await using stack = await startStack();
  await seedAndRetire(stack, 6);
  const a = new WarmPool({ root: stack.root, maxDirs: 2 });
  const b = new WarmPool({ root: stack.root, maxDirs: 2 });
  const claims = await Promise.all([
    a.claim(stack.repo, "data/", join(stack.root, "claim-a")),
    b.claim(stack.repo, "data/", join(stack.root, "claim-b")),
  ]);
  assert.equal(claims.filter((claim) => claim !== undefined).length, 1);
  assert.equal(pooled(stack).length, 0);
});

Deno.test("warm pool: a directory of another repository or of a scope that does not overlap is never taken", async () => {
  await using stack = await startStack();
  await seedAndRetire(stack, 6);
  const other = new WarmPool({ root: stack.root, maxDirs: 2 });
  assert.equal(await other.claim(`${stack.repo}-other`, "data/", join(stack.root, "x")), undefined);
  assert.equal(await other.claim(stack.repo, "logs/", join(stack.root, "x")), undefined);
  assert.ok(await other.claim(stack.repo, "", join(stack.root, "x")) !== undefined);
});

Deno.test("warm pool: a directory is never taken while the process or Worker that used it lives", async () => {
  await using stack = await startStack();
  await seed(stack, files(6));
  const live = new WarmPool({ root: stack.root, maxDirs: 2 });
  await run(stack, live);
  const other = new WarmPool({ root: stack.root, maxDirs: 2 });
  assert.equal(await other.claim(stack.repo, "data/", join(stack.root, "x")), undefined);
  assert.equal(await live.claim(stack.repo, "data/", join(stack.root, "x")), undefined);
  await live.close();
  assert.ok(await other.claim(stack.repo, "data/", join(stack.root, "x")) !== undefined);

  // A Worker retires a directory and keeps running: not claimable until it is terminated.
  const dir = join(stack.root, "from-worker");
  Deno.mkdirSync(join(dir, "data"), { recursive: true });
  Deno.writeTextFileSync(join(dir, "data/a.txt"), "a\n");
  const worker = new Worker(new URL("./_warm_holder_worker.ts", import.meta.url), {
    type: "module",
  });
  try {
    const retired = new Promise((resolve) => worker.onmessage = resolve);
    worker.postMessage({ root: stack.root, dir, repository: stack.repo });
    await retired;
    assert.equal(pooled(stack).length, 1);
    assert.equal(await other.claim(stack.repo, "data/", join(stack.root, "y")), undefined);
  } finally {
    worker.terminate();
  }
  const deadline = Date.now() + 10_000;
  let claimed;
  while ((claimed = await other.claim(stack.repo, "data/", join(stack.root, "y"))) === undefined) {
    assert.ok(Date.now() < deadline, "the terminated Worker's directory never became claimable");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.deepEqual([...claimed.files.keys()], ["data/a.txt"]);
});

Deno.test("warm pool: at most maxDirs directories are kept, the oldest evicted", async () => {
  await using stack = await startStack();
  await seed(stack, files(3));
  const pool = new WarmPool({ root: stack.root, maxDirs: 2 });
  for (let i = 0; i < 3; i++) await run(stack, pool);
  assert.equal(pooled(stack).length, 2);
  await pool.close();
});

Deno.test("warm pool: the directories kept hold at most maxBytes together; one larger is not kept", async () => {
  await using stack = await startStack();
  const content = files(6); // 6 files, 7 bytes each: 42 bytes a directory
  await seed(stack, content);
  const size = Object.values(content).reduce((sum, text) => sum + text.length, 0);
  const pool = new WarmPool({ root: stack.root, maxDirs: 10, maxBytes: 2 * size + 1 });
  for (let i = 0; i < 3; i++) await run(stack, pool);
  assert.equal(pooled(stack).length, 2);
  await pool.close();
  const small = new WarmPool({ root: stack.root, maxDirs: 10, maxBytes: size - 1 });
  await run(stack, small); // takes one of the two, keeps none (and evicts the other)
  assert.equal(pooled(stack).length, 0);
  await small.close();
});

Deno.test("warm pool: a directory below minFiles and minBytes is removed, not kept (retire says false); one at either bound is kept", async () => {
  const root = await Deno.makeTempDir({ prefix: "perago-warm-min-" });
  try {
    const pool = new WarmPool({ root, maxDirs: 4, minFiles: 3, minBytes: 100 });
    const known = (count: number, size: number) =>
      new Map(
        Array.from({ length: count }, (_, i) => [
          `f${i}`,
          { size, sha256: "", checksum: "" },
        ]),
      );
    const retire = (
      name: string,
      info: Map<string, { size: number; sha256: string; checksum: string }>,
    ) => {
      const dir = join(root, name);
      Deno.mkdirSync(dir);
      Deno.writeTextFileSync(join(dir, "f0"), "x");
      return pool.retire(dir, { repository: "repo", scope: "", stampMs: 0, known: info });
    };
    assert.equal(retire("small", known(2, 10)), false);
    await trashedDirsRemoved();
    assert.deepEqual([...Deno.readDirSync(root)].map((e) => e.name), []);
    assert.equal(pool.kept, 0);
    assert.equal(retire("many", known(3, 1)), true);
    assert.equal(retire("large", known(1, 100)), true);
    await trashedDirsRemoved();
    assert.equal(pool.kept, 2);
    const entries = [...Deno.readDirSync(join(root, WARM_POOL_DIR_NAME))]
      .filter((e) => e.isDirectory && e.name !== "holders");
    assert.equal(entries.length, 2);
    await pool.close();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("warm pool: a read-only task's directory is kept too (its scribble removed on the next claim)", async () => {
  await using stack = await startStack();
  await seed(stack, files(9));
  const readOnly = defineTask({
    name: "inspect_read_only",
    ownerEmail: "tests@example.com",
    description: "reads, and scribbles",
    params: z.object({}),
    result: z.object({ count: z.number(), scribbleFound: z.boolean() }),
    workspace: { prefix: "data/", readOnly: true },
    async run(_params, ctx) {
      let count = 0;
      for (const folder of ["0", "1", "2"]) {
        for await (const _ of Deno.readDir(join(ctx.workspace!, "data", folder))) count++;
      }
      const scribble = join(ctx.workspace!, "data/scribble.txt");
      const scribbleFound = await Deno.lstat(scribble).then(() => true, () => false);
      await Deno.writeTextFile(scribble, "never published\n");
      return { count, scribbleFound };
    },
  });
  const once = async () => {
    const pool = new WarmPool({ root: stack.root, maxDirs: 2 });
    const ref = (await stack.lakefs.getBranch(stack.repo, "main")).commit_id;
    stack.server.stats.reset();
    const outcome = await runAttempt(
      attemptOptions(stack, readOnly, ref, {}, {
        attempt: identity({ taskId: `ro-${++runs}` }),
        warmPool: pool,
        removeDirInBackground: true,
      }),
    );
    await trashedDirsRemoved();
    await pool.close();
    assert.equal(outcome.status, "COMPLETED", outcome.reasonForIncompletion);
    assert.deepEqual(outcome.outputData?.result, { count: 9, scribbleFound: false });
    return stack.server.stats.count("getObject");
  };
  assert.equal(await once(), 9);
  // The first run's scribble (in its manifest, not in the listing) was removed.
  assert.equal(await once(), 0, "every file kept");
});

Deno.test("warm pool: the claim's walk removes what is not a regular file of the manifest (FIFO, link, extra file); keepPooledFile keeps a file only with its pooled identity and removes a replaced one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "perago-warm-kinds-" });
  try {
    for (const name of ["same.txt", "fifo", "link", "swapped.txt"]) {
      Deno.writeTextFileSync(join(dir, name), "text\n");
    }
    const files = new Map(
      ["same.txt", "fifo", "link", "swapped.txt"].map((name) => [
        name,
        pooledRow(dir, name, "text\n"),
      ]),
    );
    const stampMs = Deno.lstatSync(join(dir, "same.txt")).ctime!.getTime() + 5_000;
    Deno.removeSync(join(dir, "fifo"));
    const made = new Deno.Command("mkfifo", { args: [join(dir, "fifo")] }).outputSync();
    assert.ok(made.success, "mkfifo");
    Deno.removeSync(join(dir, "link"));
    Deno.symlinkSync("same.txt", join(dir, "link"));
    // Same name, size and content, another inode.
    Deno.writeTextFileSync(join(dir, "swapped.next"), "text\n");
    Deno.renameSync(join(dir, "swapped.next"), join(dir, "swapped.txt"));
    Deno.writeTextFileSync(join(dir, "extra.txt"), "extra\n");
    const walked = await walkClaimedDir(dir, { files, stampMs });
    assert.deepEqual([...walked.files.keys()].sort(), ["same.txt", "swapped.txt"]);
    assert.equal(walked.removed, 3);
    assert.equal(keepPooledFile(walked, "not-pooled.txt"), undefined);
    assert.deepEqual(keptFiles(walked), ["same.txt"]);
    assert.equal(walked.removed, 4);
    assert.deepEqual([...Deno.readDirSync(dir)].map((entry) => entry.name), ["same.txt"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("warm pool: a row marked to be read again is read on the claim whatever its ctime, and kept only with the manifest's SHA-256", async () => {
  const dir = await Deno.makeTempDir({ prefix: "perago-warm-again-" });
  try {
    Deno.writeTextFileSync(join(dir, "same.txt"), "same\n");
    Deno.writeTextFileSync(join(dir, "other.txt"), "mine\n");
    const row = (path: string, text: string) => ({
      ...pooledRow(dir, path, text),
      readAgain: true,
    });
    const files = new Map([["same.txt", row("same.txt", "same\n")], [
      "other.txt",
      row("other.txt", "MINE\n"),
    ]]);
    // A stamp in a later second: without the mark both files would be kept unread.
    const stampMs = Deno.lstatSync(join(dir, "same.txt")).ctime!.getTime() + 5_000;
    const walked = await walkClaimedDir(dir, { files, stampMs });
    assert.deepEqual(keptFiles(walked), ["same.txt"]);
    assert.equal(walked.removed, 1);
    assert.deepEqual([...Deno.readDirSync(dir)].map((entry) => entry.name), ["same.txt"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("warm pool: a file whose ctime is in the stamp's second is read again on the claim, and kept only with the manifest's SHA-256", async () => {
  const dir = await Deno.makeTempDir({ prefix: "perago-warm-racy-" });
  try {
    Deno.writeTextFileSync(join(dir, "same.txt"), "same\n");
    Deno.writeTextFileSync(join(dir, "other.txt"), "mine\n");
    const row = (path: string, text: string) => pooledRow(dir, path, text);
    // Same size, same identity: only the content tells (the stamp is the files' own second).
    const files = new Map([["same.txt", row("same.txt", "same\n")], [
      "other.txt",
      row("other.txt", "MINE\n"),
    ]]);
    const stampMs = Deno.lstatSync(join(dir, "same.txt")).ctime!.getTime();
    const walked = await walkClaimedDir(dir, { files, stampMs });
    assert.deepEqual(keptFiles(walked), ["same.txt"]);
    assert.equal(walked.removed, 1);
    assert.deepEqual([...Deno.readDirSync(dir)].map((entry) => entry.name), ["same.txt"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Resolves 20 ms into the next second of the wall clock (file times are whole seconds, and
 * the kernel's clock for them may lag the wall clock by a few ms).
 */
async function nextSecond(): Promise<void> {
  const next = (Math.floor(Date.now() / 1000) + 1) * 1000 + 20;
  while (Date.now() < next) {
    await new Promise((resolve) => setTimeout(resolve, Math.max(1, next - Date.now())));
  }
}

Deno.test("warm pool: a directory described while its attempt publishes keeps the stamp taken first: a same-size rewrite with its mtime restored, in the second of the description, is read again on the claim", async () => {
  const root = await Deno.makeTempDir({ prefix: "perago-warm-describe-" });
  try {
    const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
    const known = new Map([
      ["a.txt", { size: 5, sha256: sha256("aaaa\n"), checksum: "-" }],
      ["b.txt", { size: 5, sha256: sha256("bbbb\n"), checksum: "-" }],
    ]);
    const pool = new WarmPool({ root, maxDirs: 2, minFiles: 1 });
    // Everything up to the rewrite happens in one second of the clock: the files' ctimes, the
    // description's stamp and the rewrite's ctime are all that second (a try that a busy host
    // stretched over two is made again in a new directory).
    let setUp: { dir: string; info: RetireInfo; described: DescribedDir } | undefined;
    for (let tries = 0; setUp === undefined && tries < 5; tries++) {
      const dir = join(root, `attempt-${tries}`);
      Deno.mkdirSync(dir);
      await nextSecond();
      Deno.writeTextFileSync(join(dir, "a.txt"), "aaaa\n");
      Deno.writeTextFileSync(join(dir, "b.txt"), "bbbb\n");
      Deno.writeTextFileSync(join(dir, ATTEMPT_MARKER), "{}");
      // The download's stamp: a later second, so the rows are taken from `known` unread.
      const info = {
        repository: "repo",
        scope: "",
        stampMs: Deno.lstatSync(join(dir, "a.txt")).ctime!.getTime() + 5_000,
        known,
      };
      const described = await pool.describe(dir, info);
      assert.deepEqual(Object.keys(described.files).sort(), ["a.txt", "b.txt"]);
      const before = Deno.lstatSync(join(dir, "a.txt"));
      Deno.writeTextFileSync(join(dir, "a.txt"), "AAAA\n");
      Deno.utimeSync(join(dir, "a.txt"), before.atime!, before.mtime!);
      const after = Deno.lstatSync(join(dir, "a.txt"));
      if (
        after.ctime!.getTime() === before.ctime!.getTime() &&
        described.stampMs === before.ctime!.getTime()
      ) {
        setUp = { dir, info, described };
      } else {
        Deno.removeSync(dir, { recursive: true });
      }
    }
    assert.ok(setUp !== undefined, "five tries each spread over two seconds of the clock");
    // Retired in a later second: a stamp taken at retirement would make the stale row look
    // older than it, and keep the rewrite unread.
    await nextSecond();
    assert.equal(pool.retire(setUp.dir, setUp.info, Promise.resolve(setUp.described)), true);
    await trashedDirsRemoved();
    await pool.close();
    const next = new WarmPool({ root, maxDirs: 2 });
    const target = join(root, "claimed");
    const claimed = await next.claim("repo", "", target);
    assert.ok(claimed !== undefined, "the directory was pooled");
    const walked = await walkClaimedDir(target, claimed);
    assert.deepEqual(keptFiles(walked), ["b.txt"]);
    assert.deepEqual([...Deno.readDirSync(target)].map((entry) => entry.name), ["b.txt"]);
    await next.close();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("warm pool: the claim reads a folder again unless its described identity is unchanged and older than the stamp: a file planted later, a FIFO never described, a manifest row spoilt are all removed", async () => {
  const root = await Deno.makeTempDir({ prefix: "perago-warm-folders-" });
  try {
    const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
    const retireOnce = async (corrupt: boolean) => {
      const dir = join(root, `attempt-${corrupt}`);
      const known = new Map<string, { size: number; sha256: string; checksum: string }>();
      for (const folder of ["a", "b", "c"]) {
        Deno.mkdirSync(join(dir, folder), { recursive: true });
        Deno.writeTextFileSync(join(dir, folder, "1.txt"), `${folder}\n`);
        known.set(`${folder}/1.txt`, { size: 2, sha256: sha256(`${folder}\n`), checksum: "-" });
      }
      const made = new Deno.Command("mkfifo", { args: [join(dir, "c", "fifo")] }).outputSync();
      assert.ok(made.success, "mkfifo");
      // A folder holding only a folder with a FIFO in it: neither may be skipped.
      Deno.mkdirSync(join(dir, "n", "m"), { recursive: true });
      const nested = new Deno.Command("mkfifo", { args: [join(dir, "n", "m", "fifo")] })
        .outputSync();
      assert.ok(nested.success, "mkfifo");
      // The folders' ctimes in an earlier second than the description's stamp.
      await nextSecond();
      const pool = new WarmPool({ root, maxDirs: 2 });
      const stampMs = Date.now() + 60_000; // every file as downloaded: described unread
      assert.equal(pool.retire(dir, { repository: "repo", scope: "", stampMs, known }), true);
      await trashedDirsRemoved();
      await pool.close();
      const [name] = [...Deno.readDirSync(join(root, WARM_POOL_DIR_NAME))]
        .filter((entry) => entry.isDirectory && entry.name !== "holders")
        .map((entry) => entry.name);
      const manifestPath = join(root, WARM_POOL_DIR_NAME, `${name}.json`);
      const manifest = JSON.parse(Deno.readTextFileSync(manifestPath));
      // a and b are described whole, older than the stamp; c and n/m hold a FIFO, n holds
      // n/m: no row for any of them.
      assert.deepEqual(Object.keys(manifest.dirs).sort(), ["a", "b"]);
      assert.ok(manifest.dirs.a[2] < manifest.stamp_ms);
      if (corrupt) {
        manifest.files["a/1.txt"] = ["spoilt"];
        Deno.writeTextFileSync(manifestPath, JSON.stringify(manifest));
      }
      await nextSecond();
      Deno.writeTextFileSync(join(root, WARM_POOL_DIR_NAME, name!, "b", "planted.txt"), "x\n");
      const next = new WarmPool({ root, maxDirs: 2 });
      const target = join(root, `claimed-${corrupt}`);
      const claimed = await next.claim("repo", "", target);
      assert.ok(claimed !== undefined);
      const walked = await walkClaimedDir(target, claimed);
      await next.close();
      const left = (folder: string) =>
        [...Deno.readDirSync(join(target, folder))].map((entry) => entry.name).sort();
      assert.deepEqual(left("n/m"), [], "the nested FIFO is removed");
      return { walked, left };
    };
    const clean = await retireOnce(false);
    assert.deepEqual(keptFiles(clean.walked), ["a/1.txt", "b/1.txt", "c/1.txt"]);
    assert.deepEqual([clean.left("a"), clean.left("b"), clean.left("c")], [
      ["1.txt"],
      ["1.txt"],
      ["1.txt"],
    ]);
    // A row that cannot be read: its file is unknown, so every folder is read and it goes.
    const spoilt = await retireOnce(true);
    assert.deepEqual(keptFiles(spoilt.walked), ["b/1.txt", "c/1.txt"]);
    assert.deepEqual(spoilt.left("a"), []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("warm pool: a directory of the same scope is taken before a wider one, then the most recently retired", async () => {
  const root = await Deno.makeTempDir({ prefix: "perago-warm-pick-" });
  try {
    const retired = new WarmPool({ root, maxDirs: 4 });
    for (const [name, scope] of [["wide", ""], ["old", "data/"], ["new", "data/"]] as const) {
      const dir = join(root, name);
      Deno.mkdirSync(join(dir, "data"), { recursive: true });
      Deno.writeTextFileSync(join(dir, "data", `${name}.txt`), `${name}\n`);
      retired.retire(dir, { repository: "repo", scope, stampMs: 0, known: new Map() });
      await trashedDirsRemoved();
      await new Promise((resolve) => setTimeout(resolve, 2)); // distinct retirement times
    }
    await retired.close();
    const pool = new WarmPool({ root, maxDirs: 4 });
    const picks = [];
    for (let i = 0; i < 3; i++) {
      const claimed = await pool.claim("repo", "data/", join(root, `claim-${i}`));
      picks.push([...claimed!.files.keys()][0]);
    }
    assert.deepEqual(picks, ["data/new.txt", "data/old.txt", "data/wide.txt"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("warm pool: the attempt describes its directory while publishing only where the pool asks for it (perago run), never one the pool will not keep", async () => {
  await using stack = await startStack();
  await seed(stack, files(6));
  /** A pool counting the descriptions asked for before the attempt returned. */
  class WatchedPool extends WarmPool {
    describedDuringAttempt = 0;
    attemptReturned = false;
    override describe(dir: string, info: RetireInfo): Promise<DescribedDir> {
      if (!this.attemptReturned) this.describedDuringAttempt++;
      return super.describe(dir, info);
    }
  }
  const cases = [
    { describeWhilePublishing: false, minFiles: 0, during: 0, kept: true },
    { describeWhilePublishing: true, minFiles: 0, during: 1, kept: true },
    { describeWhilePublishing: true, minFiles: 100, during: 0, kept: false },
  ];
  for (const [n, { describeWhilePublishing, minFiles, during, kept }] of cases.entries()) {
    const label = JSON.stringify({ describeWhilePublishing, minFiles });
    const pool = new WatchedPool({
      root: stack.root,
      maxDirs: 2,
      describeWhilePublishing,
      minFiles,
      minBytes: minFiles === 0 ? 0 : 1 << 30,
    });
    const ref = (await stack.lakefs.getBranch(stack.repo, "main")).commit_id;
    const outcome = await runAttempt(
      attemptOptions(stack, inspect, ref, { write: { [`data/new${n}.txt`]: "new\n" } }, {
        attempt: identity({ workflowInstanceId: `wf-describe-${n}`, taskId: `task-describe-${n}` }),
        warmPool: pool,
        removeDirInBackground: true,
      }),
    );
    pool.attemptReturned = true;
    await trashedDirsRemoved();
    assert.equal(outcome.status, "COMPLETED", outcome.reasonForIncompletion);
    assert.equal(pool.describedDuringAttempt, during, label);
    assert.equal(pool.kept > 0, kept, label);
    // A directory not kept leaves no pool folder behind (describing takes the holder lock).
    if (!kept) {
      assert.throws(() => Deno.lstatSync(join(stack.root, WARM_POOL_DIR_NAME)), label);
    }
    await pool.close();
    await Deno.remove(join(stack.root, WARM_POOL_DIR_NAME), { recursive: true }).catch(() => {});
  }
});
