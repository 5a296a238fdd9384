import assert from "node:assert/strict";
import {
  acquireSupervisorLock,
  LOCK_FILE_NAME,
  readLock,
  SupervisorLockError,
} from "../../src/runtime/lock.ts";

async function withRoot(fn: (root: string) => Promise<void>) {
  const root = await Deno.makeTempDir({ prefix: "perago-lock-" });
  try {
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("lock: acquire writes pid+hostname, release removes it", () =>
  withRoot(async (root) => {
    const lock = await acquireSupervisorLock(root);
    const info = await readLock(`${root}/${LOCK_FILE_NAME}`);
    assert.ok(typeof info === "object");
    assert.equal(info.pid, Deno.pid);
    assert.equal(info.hostname, Deno.hostname());
    await lock.release();
    await lock.release(); // idempotent
    assert.equal(await readLock(`${root}/${LOCK_FILE_NAME}`), "missing");
  }));

Deno.test("lock: a live holder is refused with its pid named", () =>
  withRoot(async (root) => {
    const lock = await acquireSupervisorLock(root, { pid: 4242, isAlive: () => true });
    try {
      await assert.rejects(
        () => acquireSupervisorLock(root, { pid: 4343, isAlive: () => true }),
        (error: unknown) =>
          error instanceof SupervisorLockError && /held by running pid 4242/.test(error.message),
      );
    } finally {
      await lock.release();
    }
  }));

Deno.test("lock: a stale lock of a dead pid is taken over", () =>
  withRoot(async (root) => {
    const path = `${root}/${LOCK_FILE_NAME}`;
    await Deno.writeTextFile(
      path,
      JSON.stringify({ pid: 999_999_9, hostname: Deno.hostname(), startedAt: "then" }),
    );
    const lock = await acquireSupervisorLock(root); // real liveness check: pid is dead
    const info = await readLock(path);
    assert.ok(typeof info === "object" && info.pid === Deno.pid);
    await lock.release();
  }));

Deno.test("lock: a lock from another host is refused", () =>
  withRoot(async (root) => {
    await Deno.writeTextFile(
      `${root}/${LOCK_FILE_NAME}`,
      JSON.stringify({ pid: 1, hostname: "elsewhere", startedAt: "then" }),
    );
    await assert.rejects(() => acquireSupervisorLock(root), /on host elsewhere/);
  }));

Deno.test("lock: release leaves a lock that is no longer ours", () =>
  withRoot(async (root) => {
    const path = `${root}/${LOCK_FILE_NAME}`;
    const lock = await acquireSupervisorLock(root);
    await Deno.writeTextFile(
      path,
      JSON.stringify({ pid: 77, hostname: Deno.hostname(), startedAt: "x" }),
    );
    await lock.release();
    assert.equal(typeof await readLock(path), "object");
  }));
