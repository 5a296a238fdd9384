/**
 * The chaos suite's table (scenario, runs, passed, lost, duplicated), printed after every
 * scenario of this `deno test` process ran (this file sorts last), and checked: the suite's
 * promise is that no scenario lost or duplicated a task, and every run of it passed.
 */
import assert from "node:assert/strict";
import { printTable, takeRows } from "./_harness.ts";

Deno.test("chaos: the result table shows every run passed, none lost, none duplicated", () => {
  const rows = takeRows().sort((a, b) => (a.scenario < b.scenario ? -1 : 1));
  printTable(rows);
  for (const row of rows) {
    assert.equal(row.lost, 0, `${row.scenario}: ${row.lost} lost`);
    assert.equal(row.duplicated, 0, `${row.scenario}: ${row.duplicated} duplicated`);
    assert.equal(row.passed, row.runs, `${row.scenario}: ${row.passed} of ${row.runs} passed`);
  }
});
