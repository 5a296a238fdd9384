/**
 * The chaos suite's table (scenario, runs, passed, lost, duplicated), printed once every
 * scenario file of this `deno test` process is over (in order or beside it under
 * `--parallel`), and checked: the suite's promise is that no scenario lost or duplicated a
 * task, and every run of it passed.
 */
import assert from "node:assert/strict";
import { printTable, takeRows } from "./_harness.ts";

/** The scenarios take minutes on a loaded machine; the wait only ends early when they do. */
const SCENARIOS_TIMEOUT_MS = 15 * 60_000;

Deno.test("chaos: the result table shows every run passed, none lost, none duplicated", async () => {
  const rows = (await takeRows(SCENARIOS_TIMEOUT_MS))
    .sort((a, b) => (a.scenario < b.scenario ? -1 : 1));
  printTable(rows);
  for (const row of rows) {
    assert.equal(row.lost, 0, `${row.scenario}: ${row.lost} lost`);
    assert.equal(row.duplicated, 0, `${row.scenario}: ${row.duplicated} duplicated`);
    assert.equal(row.passed, row.runs, `${row.scenario}: ${row.passed} of ${row.runs} passed`);
  }
});
