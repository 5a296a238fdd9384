import assert from "node:assert/strict";
import { ATTEMPT_MARKER, sweepAttemptDirs } from "../../src/runtime/gc.ts";

async function makeAttempt(root: string, name: string, workerId: string, startedAt: number) {
  const dir = `${root}/${name}`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/${ATTEMPT_MARKER}`,
    JSON.stringify({
      owner_pid: Deno.pid,
      owner_token: crypto.randomUUID(),
      owner_worker_id: workerId,
      started_at: new Date(startedAt).toISOString(),
    }),
  );
  return dir;
}

Deno.test("thread gc: a dead worker's dirs are found by worker id and birth time, never its neighbours' or successor's", async () => {
  const root = await Deno.makeTempDir({ prefix: "perago-thread-gc-" });
  try {
    const exitedAt = Date.parse("2030-01-01T12:00:00Z");
    const dead = await makeAttempt(root, "task_id=a-exec=1", "w0000", exitedAt - 5_000);
    const neighbour = await makeAttempt(root, "task_id=b-exec=1", "w0001", exitedAt - 5_000);
    const successor = await makeAttempt(root, "task_id=c-exec=1", "w0000", exitedAt + 1_000);
    // What the supervisor asks for when the worker of slot w0000 exits (thread mode).
    const report = await sweepAttemptDirs(root, {
      ttlMs: 0,
      onlyOwnerPid: Deno.pid,
      onlyOwnerWorkerId: "w0000",
      now: exitedAt,
    });
    assert.deepEqual(report.removed, [dead]);
    // Periodic sweeps in thread mode keep every dir of this process (tokens live in workers).
    const periodic = await sweepAttemptDirs(root, { ttlMs: 0, isTokenActive: () => true });
    assert.deepEqual(periodic.removed, []);
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(root))).map((e) => `${root}/${e.name}`).sort(),
      [neighbour, successor].sort(),
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
