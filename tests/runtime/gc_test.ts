import assert from "node:assert/strict";
import { ATTEMPT_MARKER, sweepAttemptDirs } from "../../src/runtime/gc.ts";
import { TRASH_DIR_NAME } from "../../src/workspace/attempt_dir.ts";

const HOUR = 3_600_000;

async function makeAttempt(
  root: string,
  name: string,
  marker: Record<string, unknown> | undefined,
): Promise<string> {
  const dir = `${root}/${name}`;
  await Deno.mkdir(`${dir}/sub`, { recursive: true });
  await Deno.writeTextFile(`${dir}/sub/file.txt`, "data");
  if (marker) await Deno.writeTextFile(`${dir}/${ATTEMPT_MARKER}`, JSON.stringify(marker));
  return dir;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("gc: removes only dead-owner, old, marked directories; never follows symlinks", async () => {
  const root = await Deno.makeTempDir({ prefix: "perago-gc-" });
  const outside = await Deno.makeTempDir({ prefix: "perago-gc-outside-" });
  try {
    const now = Date.parse("2030-01-01T12:00:00Z");
    const old = new Date(now - 2 * HOUR).toISOString();
    const young = new Date(now - 60_000).toISOString();
    const DEAD = 111, LIVE = 222;
    const alive = (pid: number) => pid === LIVE;
    const deadOld = await makeAttempt(root, "task_id=a-exec=1", {
      owner_pid: DEAD,
      owner_token: "t1",
      started_at: old,
    });
    const liveOld = await makeAttempt(root, "task_id=b-exec=1", {
      owner_pid: LIVE,
      owner_token: "t2",
      started_at: old,
    });
    const deadYoung = await makeAttempt(root, "task_id=c-exec=1", {
      owner_pid: DEAD,
      owner_token: "t3",
      started_at: young,
    });
    const noMarker = await makeAttempt(root, "task_id=d-exec=1", undefined);
    const badMarker = await makeAttempt(root, "task_id=e-exec=1", undefined);
    await Deno.writeTextFile(`${badMarker}/${ATTEMPT_MARKER}`, "{not json");
    // A symlink to an outside directory that *does* carry a dead, old marker.
    await Deno.writeTextFile(
      `${outside}/${ATTEMPT_MARKER}`,
      JSON.stringify({ owner_pid: DEAD, started_at: old }),
    );
    await Deno.symlink(outside, `${root}/task_id=f-exec=1`);
    // A directory whose marker is a symlink to a valid marker elsewhere.
    const linkedMarker = await makeAttempt(root, "task_id=g-exec=1", undefined);
    await Deno.symlink(`${outside}/${ATTEMPT_MARKER}`, `${linkedMarker}/${ATTEMPT_MARKER}`);
    await Deno.writeTextFile(`${root}/stray-file`, "x");

    const report = await sweepAttemptDirs(root, { ttlMs: HOUR, now, isPidAlive: alive });
    assert.deepEqual(report.removed, [deadOld]);
    assert.equal(await exists(deadOld), false);
    for (const kept of [liveOld, deadYoung, noMarker, badMarker, linkedMarker]) {
      assert.equal(await exists(kept), true, kept);
    }
    assert.equal(await exists(`${root}/task_id=f-exec=1`), true);
    assert.equal(await exists(`${outside}/${ATTEMPT_MARKER}`), true);
    assert.equal(await exists(`${root}/stray-file`), true);

    // TTL 0 (startup / final sweep): the young dead one goes too, live ones stay.
    const second = await sweepAttemptDirs(root, { ttlMs: 0, now, isPidAlive: alive });
    assert.deepEqual(second.removed, [deadYoung]);
    assert.equal(await exists(liveOld), true);
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("gc: onlyOwnerPid collects one dead executor's dirs; self-owned dirs use tokens", async () => {
  const root = await Deno.makeTempDir({ prefix: "perago-gc-" });
  try {
    const started = new Date().toISOString();
    const a = await makeAttempt(root, "a", { owner_pid: 301, started_at: started });
    const b = await makeAttempt(root, "b", { owner_pid: 302, started_at: started });
    const mine1 = await makeAttempt(root, "m1", {
      owner_pid: Deno.pid,
      owner_token: "active",
      started_at: started,
    });
    const mine2 = await makeAttempt(root, "m2", {
      owner_pid: Deno.pid,
      owner_token: "gone",
      started_at: started,
    });
    const one = await sweepAttemptDirs(root, {
      ttlMs: 0,
      onlyOwnerPid: 301,
      isPidAlive: () => false,
    });
    assert.deepEqual(one.removed, [a]);
    assert.equal(await exists(b), true);
    const mine = await sweepAttemptDirs(root, {
      ttlMs: 0,
      isPidAlive: (pid) => pid === Deno.pid,
      isTokenActive: (token) => token === "active",
    });
    assert.deepEqual(mine.removed.sort(), [b, mine2].sort());
    assert.equal(await exists(mine1), true);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("gc: a missing root is an empty sweep", async () => {
  const report = await sweepAttemptDirs("/nonexistent/perago-gc-root", { ttlMs: 0 });
  assert.deepEqual(report, { removed: [], kept: [], errors: [], stagingBranches: [] });
});

Deno.test("gc: removed dirs report the staging branch their marker names; nothing else is", async () => {
  const root = await Deno.makeTempDir({ prefix: "perago-gc-" });
  try {
    const started = new Date().toISOString();
    const staging = "perago-staging-wf1-step-seq-1-iteration-0-task-id-t1-retry-0-exec-e1";
    const dead = { owner_pid: 401, started_at: started };
    await makeAttempt(root, "task_id=a-exec=1", {
      ...dead,
      staging_repository: "lake",
      staging_branch: staging,
    });
    // Written by a live owner: kept, so its branch is not reported.
    await makeAttempt(root, "task_id=b-exec=1", {
      owner_pid: 402,
      started_at: started,
      staging_repository: "lake",
      staging_branch: `${staging}-live`,
    });
    // Names that are not staging branches (the marker is writable by the task) are ignored.
    for (const [i, branch] of ["main", "perago-staging-x/../main", ""].entries()) {
      await makeAttempt(root, `task_id=c${i}-exec=1`, {
        ...dead,
        staging_repository: "lake",
        staging_branch: branch,
      });
    }
    await makeAttempt(root, "task_id=d-exec=1", {
      ...dead,
      staging_repository: "Not A Repo",
      staging_branch: staging,
    });
    await makeAttempt(root, "task_id=e-exec=1", dead);
    const report = await sweepAttemptDirs(root, { ttlMs: 0, isPidAlive: (pid) => pid === 402 });
    assert.equal(report.removed.length, 6);
    assert.deepEqual(report.stagingBranches, [{ repository: "lake", branch: staging }]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("gc: the host's object cache under the workspace root survives every sweep", async () => {
  const root = await Deno.makeTempDir({ prefix: "perago-gc-cache-" });
  try {
    const entry = `${root}/.perago-cache/objects/90/900150983cd24fb0d6963f7d28e17f72-3`;
    await Deno.mkdir(`${root}/.perago-cache/objects/90`, { recursive: true });
    await Deno.mkdir(`${root}/.perago-cache/tmp`, { recursive: true });
    await Deno.writeTextFile(entry, "abc");
    const dead = await makeAttempt(root, "task_id=a-exec=1", {
      owner_pid: 111,
      owner_token: "t1",
      started_at: new Date(0).toISOString(),
    });
    const report = await sweepAttemptDirs(root, { ttlMs: 0, isPidAlive: () => false });
    assert.deepEqual(report.removed, [dead]);
    assert.equal(await Deno.readTextFile(entry), "abc");
    assert.ok(await exists(`${root}/.perago-cache/tmp`));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("gc: trashed attempt dirs of a gone process are removed; a live process's are its own to remove", async () => {
  const root = await Deno.makeTempDir({ prefix: "perago-gc-" });
  try {
    const trash = `${root}/${TRASH_DIR_NAME}`;
    const DEAD = 111, LIVE = 222, SELF = 333;
    for (const pid of [DEAD, LIVE, SELF]) {
      await makeAttempt(trash, `${pid}-abcd1234-task_id=t-exec=${pid}`, undefined);
    }
    await Deno.mkdir(`${trash}/not-ours`);
    const options = { ttlMs: HOUR, isPidAlive: (pid: number) => pid === LIVE, selfPid: SELF };
    // A periodic sweep in thread mode: this process's trash is its workers' to remove.
    let report = await sweepAttemptDirs(root, { ...options, isTokenActive: () => true });
    assert.deepEqual(report.removed, [`${trash}/${DEAD}-abcd1234-task_id=t-exec=${DEAD}`]);
    // The final sweep (no owner left): this process's too; a live one's and foreign ones stay.
    report = await sweepAttemptDirs(root, options);
    assert.deepEqual(report.removed, [`${trash}/${SELF}-abcd1234-task_id=t-exec=${SELF}`]);
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(trash))).map((e) => e.name).sort(),
      [`${LIVE}-abcd1234-task_id=t-exec=${LIVE}`, "not-ours"],
    );
    // Once nothing is left in it, the sweep takes the folder too (its last removal's process
    // died before it could).
    await Deno.remove(`${trash}/not-ours`);
    report = await sweepAttemptDirs(root, { ...options, isPidAlive: () => false });
    assert.deepEqual(report.removed, [`${trash}/${LIVE}-abcd1234-task_id=t-exec=${LIVE}`]);
    assert.equal(await exists(trash), false);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
