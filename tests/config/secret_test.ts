import assert from "node:assert/strict";
import { inspect } from "node:util";
import { Secret } from "../../src/config/secret.ts";

const VALUE = "s3cr3t-value";

Deno.test("Secret reveals its value only through reveal()", () => {
  const secret = new Secret(VALUE);
  assert.equal(secret.reveal(), VALUE);
  assert.equal(String(secret), "***");
  assert.equal(`${secret}`, "***");
  assert.equal(JSON.stringify({ secret }), '{"secret":"***"}');
  assert.equal(Deno.inspect(secret), "Secret(***)");
  assert.equal(Deno.inspect({ nested: { secret } }, { depth: 5 }).includes(VALUE), false);
  assert.equal(inspect(secret), "Secret(***)");
  assert.deepEqual(Object.keys(secret), []);
  assert.deepEqual(Object.values(secret), []);
  assert.equal(Object.getOwnPropertyNames(secret).length, 0);
});
