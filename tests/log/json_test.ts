import assert from "node:assert/strict";
import { scrubJson } from "../../src/log/_json.ts";

const SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

Deno.test("scrubJson: a value holding no secret is returned as it is, not copied", () => {
  const fields = { message: "task t1 ended", extra: { status: "COMPLETED", n: [1, "two"] } };
  assert.equal(scrubJson(fields, [SECRET]), fields);
  assert.equal(scrubJson(fields, []), fields);
});

Deno.test("scrubJson: a secret anywhere (nested value, array item, key) is replaced", () => {
  const fields = {
    message: `key ${SECRET} leaked`,
    extra: { deep: [{ note: `x${SECRET}` }], [`k${SECRET}`]: 1, clean: "kept" },
  };
  const scrubbed = scrubJson(fields, [SECRET]);
  assert.deepEqual(scrubbed, {
    message: "key *** leaked",
    extra: { deep: [{ note: "x***" }], "k***": 1, clean: "kept" },
  });
  assert.ok(!JSON.stringify(scrubbed).includes(SECRET));
  // The input is left as it was.
  assert.equal(fields.message, `key ${SECRET} leaked`);
});
