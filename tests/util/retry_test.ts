/** retry: a deadline ends the retries with the last error; before it, retries go on. */
import assert from "node:assert/strict";
import { retry } from "../../src/util/retry.ts";

Deno.test("retry: no try is made past the deadline; the last error is rethrown", async () => {
  let calls = 0;
  const started = Date.now();
  await assert.rejects(
    retry(() => Promise.reject(new Error(`failure ${++calls}`)), {
      attempts: Infinity,
      baseDelayMs: 20,
      maxDelayMs: 40,
      deadline: started + 300,
    }),
    (error: unknown) => (error as Error).message === `failure ${calls}`,
  );
  assert.ok(calls > 2, `${calls} calls`);
  assert.ok(Date.now() - started < 2_000, `ended ${Date.now() - started} ms after start`);
});

Deno.test("retry: a success before the deadline is the answer", async () => {
  let calls = 0;
  const answer = await retry(
    () => ++calls < 3 ? Promise.reject(new Error("not yet")) : Promise.resolve("ok"),
    { attempts: Infinity, baseDelayMs: 1, maxDelayMs: 5, deadline: Date.now() + 10_000 },
  );
  assert.deepEqual([answer, calls], ["ok", 3]);
});
