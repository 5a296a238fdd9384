import assert from "node:assert/strict";
import { loadOnce } from "../../src/util/lazy.ts";

Deno.test("loadOnce: calls share one load; a rejected load is tried again, then kept", async () => {
  let calls = 0;
  const load = loadOnce(() => {
    calls++;
    return calls === 1 ? Promise.reject(new Error("first fails")) : Promise.resolve(calls);
  });
  await assert.rejects(load(), /first fails/);
  const [a, b] = await Promise.all([load(), load()]);
  assert.equal(a, 2);
  assert.equal(b, 2);
  assert.equal(await load(), 2);
  assert.equal(calls, 2);
});
