import assert from "node:assert/strict";
import { sweepAttemptDirs } from "../../src/runtime/gc.ts";

Deno.test("gc: an empty attempt dir without a marker (owner killed before writing it) goes in a full sweep", async () => {
  const root = await Deno.makeTempDir({ prefix: "perago-gc-orphan-" });
  try {
    const empty = `${root}/task_id=a-exec=1`;
    const full = `${root}/task_id=b-exec=1`;
    const foreign = `${root}/not-an-attempt`;
    await Deno.mkdir(empty);
    await Deno.mkdir(full);
    await Deno.writeTextFile(`${full}/data.txt`, "x");
    await Deno.mkdir(foreign);
    // An owner-filtered sweep (a dead executor's collection) leaves it alone.
    const filtered = await sweepAttemptDirs(root, { ttlMs: 0, onlyOwnerPid: 1 });
    assert.deepEqual(filtered.removed, []);
    // Younger than the TTL: kept.
    const young = await sweepAttemptDirs(root, { ttlMs: 3_600_000 });
    assert.deepEqual(young.removed, []);
    const report = await sweepAttemptDirs(root, { ttlMs: 0 });
    assert.deepEqual(report.removed, [empty]);
    assert.deepEqual((await Array.fromAsync(Deno.readDir(root))).map((e) => e.name).sort(), [
      "not-an-attempt",
      "task_id=b-exec=1",
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
