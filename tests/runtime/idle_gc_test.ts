import assert from "node:assert/strict";
import { EXECUTOR_GC_GLOBAL, IdleCollector, takeExposedGc } from "../../src/runtime/idle_gc.ts";
import { waitFor } from "../../src/util/sleep.ts";

Deno.test("idle gc: takeExposedGc takes the exposed function off the global and asks for V8's memory-reducing collection", () => {
  const calls: unknown[] = [];
  const global: Record<string, unknown> = { [EXECUTOR_GC_GLOBAL]: (o: unknown) => calls.push(o) };
  const collect = takeExposedGc(global);
  assert.equal(global[EXECUTOR_GC_GLOBAL], undefined, "task code no longer reaches it");
  collect?.();
  assert.deepEqual(calls, [{ type: "major", execution: "sync", flavor: "last-resort" }]);
  assert.equal(takeExposedGc({}), undefined, "not exposed (thread mode): nothing to call");
  assert.equal(takeExposedGc(), undefined, "this test process runs without the flag");
});

Deno.test("idle gc: the collector runs once per idle stretch, never after busy() until the next idle()", async () => {
  let collections = 0;
  const collector = new IdleCollector({ collect: () => collections++, delayMs: 20 });
  collector.idle();
  collector.busy();
  const started = performance.now();
  collector.idle();
  await waitFor(() => collections === 1, { timeoutMs: 5_000, what: "the idle collection" });
  assert.ok(performance.now() - started >= 15, "waited for the idle delay");
  collector.busy();
  collector.idle();
  collector.stop();
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal(collections, 1, "busy() cancelled the first, stop() the last");
});

Deno.test("idle gc: attempts in quick succession hold the collection off until a whole idle delay passed after the last", async () => {
  let collections = 0;
  const delayMs = 100;
  const collector = new IdleCollector({ collect: () => collections++, delayMs });
  collector.idle();
  let lastIdle = performance.now();
  let longestGap = 0;
  for (let i = 0; i < 10; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    collector.busy();
    longestGap = Math.max(longestGap, performance.now() - lastIdle);
    collector.idle();
    lastIdle = performance.now();
  }
  // A loaded machine may stretch a 10 ms sleep past the delay: then a collection was due.
  if (longestGap < delayMs) assert.equal(collections, 0, "never idle for a whole delay yet");
  const before = collections;
  await waitFor(() => collections === before + 1, {
    timeoutMs: 5_000,
    what: "the idle collection",
  });
  assert.ok(performance.now() - lastIdle >= delayMs - 5, "a whole delay after the last idle()");
  await new Promise((resolve) => setTimeout(resolve, 2 * delayMs));
  assert.equal(collections, before + 1, "once per idle stretch");
  collector.stop();
});
