import assert from "node:assert/strict";
import { FaultInjector } from "../../src/devstack/faults.ts";
import { runAttempt } from "../../src/workspace/attempt.ts";
import {
  attemptOptions,
  branchNames,
  identity,
  listDir,
  readTree,
  seed,
  startStack,
} from "./_stack.ts";
import { writer } from "./_tasks.ts";

/** A small deterministic PRNG (mulberry32), so the injected faults are the same every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("transient 5xx and 429 during download, staging and publish are retried", async () => {
  const faults = new FaultInjector(seeded(7));
  await using stack = await startStack({ faults, attempts: 12 });
  const files: Record<string, string> = { "docs/keep.txt": "keep" };
  for (let i = 0; i < 40; i++) files[`docs/f${i}.txt`] = `f${i}`;
  const a = await seed(stack, files);
  faults.set({ errorRate: 0.2, tooManyRate: 0.1, retryAfterSeconds: 0 });
  const attempt = identity();
  const write: Record<string, string> = {};
  for (let i = 0; i < 10; i++) write[`docs/f${i}.txt`] = `changed ${i}`;
  const outcome = await runAttempt(
    attemptOptions(stack, writer, a, { write, remove: ["docs/f39.txt"] }, { attempt }),
  );
  faults.reset();
  assert.equal(outcome.status, "COMPLETED", outcome.reasonForIncompletion);
  assert.ok(faults.injected.errors > 5, `errors injected: ${faults.injected.errors}`);
  assert.ok(faults.injected.tooMany > 2, `429s injected: ${faults.injected.tooMany}`);
  const tree = await readTree(stack, outcome.publishedRef!);
  assert.equal(tree["docs/f3.txt"], "changed 3");
  assert.equal(tree["docs/f20.txt"], "f20");
  assert.equal(tree["docs/f39.txt"], undefined);
  assert.equal(Object.keys(tree).length, 40);
  assert.deepEqual(await branchNames(stack), ["main"]);
  assert.deepEqual(await listDir(stack.root), []);
});

Deno.test("cancelling during a slow download ends the attempt promptly and cleans up", async () => {
  const faults = new FaultInjector(seeded(1));
  await using stack = await startStack({ faults });
  const files: Record<string, string> = { "docs/keep.txt": "keep" };
  for (let i = 0; i < 30; i++) files[`docs/f${i}.txt`] = `f${i}`;
  const a = await seed(stack, files);
  faults.set({ latencyMs: 300, pathFilter: "/objects" });
  const controller = new AbortController();
  const started = performance.now();
  const outcome = await runAttempt(attemptOptions(stack, writer, a, {}, {
    ownerWorkerId: "w",
    signal: controller.signal,
    syncConcurrency: 2,
    onPhase: (phase) => {
      if (phase === "download") setTimeout(() => controller.abort(new Error("stop now")), 400);
    },
  }));
  const elapsedMs = performance.now() - started;
  faults.reset();
  assert.equal(outcome.status, "FAILED");
  assert.match(outcome.reasonForIncompletion!, /stop now/);
  // 31 objects at 300 ms each, two at a time, would take ~5 s.
  assert.ok(elapsedMs < 2_500, `took ${elapsedMs} ms`);
  assert.deepEqual(await listDir(stack.root), []);
  assert.deepEqual(await branchNames(stack), ["main"]);
});
