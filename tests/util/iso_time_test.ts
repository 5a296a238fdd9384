import assert from "node:assert/strict";
import { isoUtc } from "../../src/util/iso_time.ts";

Deno.test("isoUtc is toISOString for any time, numbers and Dates alike", () => {
  const times = [
    0,
    Date.UTC(2026, 11, 2, 9, 5, 7, 42),
    Date.UTC(1999, 0, 1, 0, 0, 0, 0),
    Date.UTC(2024, 1, 29, 23, 59, 59, 999),
    -1,
    Date.UTC(10000, 0, 1),
    Date.UTC(-5, 0, 1),
    253402300799999, // 9999-12-31T23:59:59.999Z
  ];
  for (let i = 0; i < 1000; i++) times.push(Math.floor(Math.random() * 4102444800000));
  for (const time of times) {
    assert.equal(isoUtc(time), new Date(time).toISOString(), String(time));
    assert.equal(isoUtc(new Date(time)), new Date(time).toISOString(), String(time));
  }
  assert.throws(() => isoUtc(NaN), RangeError);
});
