import assert from "node:assert/strict";
import { cursorLookup, forEachPair, isSortedBy } from "../../src/util/sorted.ts";

const key = (item: { k: string }) => item.k;

Deno.test("sorted: isSortedBy wants strictly increasing keys (UTF-16 order)", () => {
  assert.equal(isSortedBy([], key), true);
  assert.equal(isSortedBy([{ k: "a" }, { k: "a/b" }, { k: "a0" }], key), true);
  assert.equal(isSortedBy([{ k: "a" }, { k: "a" }], key), false);
  assert.equal(isSortedBy([{ k: "b" }, { k: "a" }], key), false);
  // U+FFFD sorts after a surrogate pair in UTF-16 code units.
  assert.equal(isSortedBy([{ k: "\u{1F600}" }, { k: "\uFFFD" }], key), true);
});

Deno.test("sorted: cursorLookup finds keys asked in order; a key asked out of order is only missed", () => {
  const list = [{ k: "a", n: 1 }, { k: "c", n: 2 }, { k: "e", n: 3 }];
  const find = cursorLookup(list, key);
  assert.equal(find("a")?.n, 1);
  assert.equal(find("b"), undefined);
  assert.equal(find("e")?.n, 3);
  assert.equal(find("c"), undefined, "behind the cursor: missed, never another entry");
  assert.equal(find("f"), undefined);
  // A list out of order misses too, and never answers with another key's entry.
  const unsorted = cursorLookup([{ k: "c" }, { k: "a" }], key);
  assert.equal(unsorted("a"), undefined);
  assert.equal(unsorted("c")?.k, "c");
});

Deno.test("sorted: forEachPair visits every key once in key order, sorting a list out of order", () => {
  const seen: string[] = [];
  const visit = (x: { k: string } | undefined, y: { k: string } | undefined) =>
    seen.push(`${x?.k ?? "-"}${y?.k ?? "-"}`);
  forEachPair([{ k: "a" }, { k: "b" }, { k: "d" }], [{ k: "b" }, { k: "c" }], key, visit);
  assert.deepEqual(seen, ["a-", "bb", "-c", "d-"]);
  seen.length = 0;
  const right = [{ k: "c" }, { k: "a" }];
  forEachPair([{ k: "b" }], right, key, visit);
  assert.deepEqual(seen, ["-a", "b-", "-c"]);
  assert.deepEqual(right.map(key), ["c", "a"], "the caller's list is left as it was");
  seen.length = 0;
  forEachPair([], [], key, visit);
  assert.deepEqual(seen, []);
});
