import assert from "node:assert/strict";
import { join } from "node:path";
import {
  ATTEMPT_MARKER,
  attemptDirName,
  prepareAttemptDir,
  readMarker,
  recordStagingBranch,
  removeAttemptDir,
  trashAttemptDir,
  trashedDirsRemoved,
} from "../../src/workspace/attempt_dir.ts";
import {
  activeOwnerCount,
  isOwnerActive,
  newOwner,
  registerOwner,
  unregisterOwner,
} from "../../src/workspace/owners.ts";

const ids = {
  workflowInstanceId: "wf-1",
  taskId: "task/1 ..",
  executionId: "exec-1",
  retryCount: 2,
  taskDefName: "normalize_text",
};

Deno.test("attemptDirName sanitises and bounds its segments", () => {
  assert.equal(attemptDirName("t-1", "e1"), "task_id=t-1-exec=e1");
  assert.equal(attemptDirName("a/b c", "../.."), "task_id=a_b_c-exec=.._..");
  assert.equal(attemptDirName("", ".."), "task_id=_-exec=_");
  const long = attemptDirName("x".repeat(500), "y");
  assert.ok(long.length < 100, long);
  assert.match(long, /^task_id=[A-Za-z0-9_.-]+-exec=[A-Za-z0-9_.-]+$/);
});

Deno.test("prepareAttemptDir makes a fresh 0700 dir with a complete marker", async () => {
  const root = await Deno.makeTempDir();
  try {
    const owner = newOwner("worker0001");
    const dir = await prepareAttemptDir(join(root, "ws"), ids, owner);
    assert.equal(dir, join(await Deno.realPath(root), "ws", "task_id=task_1_..-exec=exec-1"));
    assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
    const marker = await readMarker(dir);
    assert.deepEqual({ ...marker, started_at: "x" }, {
      workflow_instance_id: "wf-1",
      task_id: "task/1 ..",
      execution_id: "exec-1",
      retry_count: 2,
      task_def_name: "normalize_text",
      owner_worker_id: "worker0001",
      owner_pid: Deno.pid,
      owner_token: owner.token,
      started_at: "x",
    });
    assert.ok(Date.parse(marker!.started_at) > 0);
    await assert.rejects(() => prepareAttemptDir(join(root, "ws"), ids, owner), /already exists/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("removeAttemptDir removes only marked real dirs and never follows links", async () => {
  const root = await Deno.makeTempDir();
  try {
    const owner = newOwner("w");
    const dir = await prepareAttemptDir(root, ids, owner);
    const victim = join(root, "victim");
    await Deno.mkdir(victim);
    await Deno.writeTextFile(join(victim, "keep.txt"), "keep");
    await Deno.symlink(victim, join(dir, "link"));
    // No marker: kept.
    const plain = join(root, "plain");
    await Deno.mkdir(plain);
    assert.equal(await removeAttemptDir(plain), false);
    // A symlink to a marked dir: kept (and the target too).
    await Deno.symlink(dir, join(root, "dir-link"));
    assert.equal(await removeAttemptDir(join(root, "dir-link")), false);
    // Wrong token: kept.
    assert.equal(await removeAttemptDir(dir, { expectedToken: "other" }), false);
    assert.equal(await removeAttemptDir(dir, { expectedToken: owner.token }), true);
    await assert.rejects(() => Deno.lstat(dir), Deno.errors.NotFound);
    assert.equal(await Deno.readTextFile(join(victim, "keep.txt")), "keep");
    assert.equal(await removeAttemptDir(join(root, "missing")), false);
    assert.ok((await Deno.lstat(plain)).isDirectory);
    await Deno.writeTextFile(join(plain, ATTEMPT_MARKER), "{not json");
    assert.equal(await removeAttemptDir(plain), false);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("recordStagingBranch names the branch in the marker, never writing through a link", async () => {
  const root = await Deno.makeTempDir();
  try {
    const dir = await prepareAttemptDir(join(root, "ws"), ids, newOwner("worker0001"));
    const before = await readMarker(dir);
    // A link the task left where the new marker is written first: it is replaced, not followed.
    const victim = join(root, "victim.txt");
    await Deno.writeTextFile(victim, "untouched");
    await Deno.symlink(victim, join(dir, `${ATTEMPT_MARKER}.next`));
    await recordStagingBranch(dir, "lake", "perago-staging-wf-1-step-seq-1");
    assert.deepEqual(await readMarker(dir), {
      ...before,
      staging_repository: "lake",
      staging_branch: "perago-staging-wf-1-step-seq-1",
    });
    assert.equal(await Deno.readTextFile(victim), "untouched");
    const entries = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
    assert.deepEqual(entries, [ATTEMPT_MARKER]);
    assert.equal((await Deno.stat(join(dir, ATTEMPT_MARKER))).mode! & 0o777, 0o600);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("recordStagingBranch refuses a marker the task swapped for a link or a FIFO, without reading it", async () => {
  const root = await Deno.makeTempDir();
  try {
    const dir = await prepareAttemptDir(join(root, "ws"), ids, newOwner("worker0001"));
    const marker = join(dir, ATTEMPT_MARKER);
    // A link to a marker-shaped file elsewhere: never followed.
    const elsewhere = join(root, "elsewhere.json");
    await Deno.copyFile(marker, elsewhere);
    await Deno.remove(marker);
    await Deno.symlink(elsewhere, marker);
    await assert.rejects(
      recordStagingBranch(dir, "lake", "perago-staging-wf-1-step-seq-1"),
      /is not a regular file/,
    );
    assert.equal((await Deno.readTextFile(elsewhere)).includes("staging_branch"), false);
    // A FIFO: the marker is read synchronously, so a read of it would block the process for
    // good. The call runs in a child process the test kills at its deadline.
    await Deno.remove(marker);
    const fifo = await new Deno.Command("mkfifo", { args: [marker] }).output().catch(() =>
      undefined
    );
    if (fifo?.success !== true) {
      // deno-lint-ignore no-console
      console.log("mkfifo is not available here: the FIFO case is skipped");
      return;
    }
    const script = `import { recordStagingBranch } from ${
      JSON.stringify(new URL("../../src/workspace/attempt_dir.ts", import.meta.url).href)
    };
try { await recordStagingBranch(${JSON.stringify(dir)}, "lake", "b"); console.log("recorded"); }
catch (error) { console.log(error.message); }`;
    const child = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-config", script],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).output();
    assert.match(new TextDecoder().decode(child.stdout), /is not a regular file/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("owner registry tracks active tokens", () => {
  const a = newOwner("w");
  const b = newOwner("w");
  assert.notEqual(a.token, b.token);
  const count = activeOwnerCount();
  registerOwner(a);
  assert.equal(isOwnerActive(a.token), true);
  assert.equal(isOwnerActive(b.token), false);
  assert.equal(activeOwnerCount(), count + 1);
  unregisterOwner(a);
  unregisterOwner(a);
  assert.equal(isOwnerActive(a.token), false);
  assert.equal(activeOwnerCount(), count);
});

Deno.test("trashAttemptDir: the directory leaves its place at once and is removed in the background", async () => {
  const root = await Deno.makeTempDir();
  try {
    const dir = await prepareAttemptDir(root, ids, newOwner("w1"));
    for (let i = 0; i < 50; i++) {
      await Deno.mkdir(join(dir, `d${i % 5}`), { recursive: true });
      await Deno.writeTextFile(join(dir, `d${i % 5}`, `f${i}`), "x");
    }
    await trashAttemptDir(root, dir);
    await assert.rejects(Deno.lstat(dir), Deno.errors.NotFound);
    await trashedDirsRemoved();
    // Nothing left: neither the directory nor the trash folder.
    assert.deepEqual(await Array.fromAsync(Deno.readDir(root)), []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("trashAttemptDir: directories trashed while earlier removals end (each removing the emptied trash folder) all leave their place", async () => {
  const root = await Deno.makeTempDir();
  try {
    for (let round = 0; round < 20; round++) {
      const dirs: string[] = [];
      for (let i = 0; i < 8; i++) {
        const dir = join(root, `r${round}-d${i}`);
        await Deno.mkdir(dir);
        await Deno.writeTextFile(join(dir, "f"), "x");
        dirs.push(dir);
      }
      // Each trashing races the background removals of the others, which take the trash
      // folder away whenever it is empty for a moment.
      const results = await Promise.allSettled(dirs.map((dir) => trashAttemptDir(root, dir)));
      const failed = results.flatMap((result, i) =>
        result.status === "rejected" ? [`${dirs[i]}: ${result.reason}`] : []
      );
      assert.deepEqual(failed, []);
    }
    await trashedDirsRemoved();
    assert.deepEqual(await Array.fromAsync(Deno.readDir(root)), []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
