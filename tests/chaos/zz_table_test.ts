/** Prints the chaos suite's table (scenario, runs, passed, lost, duplicated) at the end. */
import { printTable, takeRows } from "./_harness.ts";

Deno.test("chaos: result table", () => {
  const rows = takeRows();
  printTable(rows.sort((a, b) => (a.scenario < b.scenario ? -1 : 1)));
});
