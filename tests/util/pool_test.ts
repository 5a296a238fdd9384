import assert from "node:assert/strict";
import { forEachConcurrent } from "../../src/util/pool.ts";

Deno.test("forEachConcurrent bounds parallelism and processes everything", async () => {
  let running = 0;
  let peak = 0;
  const seen: number[] = [];
  async function* items() {
    for (let i = 0; i < 50; i++) yield i;
  }
  await forEachConcurrent(items(), 4, async (item) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((resolve) => setTimeout(resolve, 1));
    seen.push(item);
    running--;
  });
  assert.equal(peak, 4);
  assert.deepEqual(seen.sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i));
});

Deno.test("forEachConcurrent stops on the first error and aborts running calls", async () => {
  const started: number[] = [];
  let abortedSeen = 0;
  await assert.rejects(
    () =>
      forEachConcurrent(Array.from({ length: 100 }, (_, i) => i), 3, async (item, signal) => {
        started.push(item);
        if (item === 1) throw new Error("boom");
        await new Promise<void>((resolve) => {
          if (signal.aborted) return resolve();
          signal.addEventListener("abort", () => resolve(), { once: true });
        });
        if (signal.aborted) abortedSeen++;
      }),
    /boom/,
  );
  assert.ok(started.length < 10, `started ${started.length}`);
  assert.ok(abortedSeen >= 1);
});
