/**
 * Example writable workspace task for partitioned data: for every folder under `data/` that
 * holds `*.csv` files, writes `<folder>/_totals.json` with the number of rows and the sum of
 * each numeric column of those files.
 *
 * Give it one partition per task with `workspace.prefix` in the task input (for example
 * `data/region=east/`): only that folder is downloaded and published, so the tasks of a
 * `FORK_JOIN` or a `FORK_JOIN_DYNAMIC` over partitions run side by side on one branch from one
 * ref, each publishing its own `_totals.json`. Without it, the task covers all of `data/`.
 *
 * The totals hold no timestamps and are rewritten only when their bytes change, so a rerun on
 * unchanged data changes nothing (perago then publishes no new commit).
 *
 * Try it: `perago run examples/csv_totals.ts --input examples/inputs/csv_totals.json`.
 *
 * @module
 */
import { defineTask, requireGlob, z } from "../mod.ts";

/** The file written into each folder holding CSV files. */
export const TOTALS_FILE = "_totals.json";

/** What `_totals.json` holds for one folder. */
export interface FolderTotals {
  /** The CSV files summed, sorted by name. */
  files: string[];
  /** Data rows (header lines excluded). */
  rows: number;
  /**
   * Sum of each column whose every non-empty cell is a number, by header name (rounded to six
   * decimals, so `0.1 + 0.2` reads `0.3`).
   */
  sums: Record<string, number>;
}

/**
 * Totals of CSV texts that share one folder: a header line, then comma-separated rows (no
 * quoting); blank lines are skipped. A column counts as numeric when every non-empty cell of
 * it, in every file, is a finite number.
 *
 * @example
 * ```ts
 * totalsOf([{ name: "a.csv", text: "x,y\n1,2\n3,4\n" }]);
 * // { files: ["a.csv"], rows: 2, sums: { x: 4, y: 6 } }
 * ```
 */
export function totalsOf(csvs: readonly { name: string; text: string }[]): FolderTotals {
  const sums = new Map<string, number>();
  const notNumeric = new Set<string>();
  let rows = 0;
  for (const { text } of csvs) {
    const lines = text.split(/\r\n|\r|\n/).filter((line) => line.trim() !== "");
    const header = (lines[0] ?? "").split(",").map((cell) => cell.trim());
    for (const line of lines.slice(1)) {
      rows++;
      line.split(",").forEach((cell, column) => {
        const name = header[column] ?? `column${column + 1}`;
        const value = cell.trim();
        if (value === "") return;
        const number = Number(value);
        if (Number.isFinite(number)) sums.set(name, (sums.get(name) ?? 0) + number);
        else notNumeric.add(name);
      });
    }
  }
  const numeric = [...sums.keys()].filter((name) => !notNumeric.has(name)).sort();
  return {
    files: csvs.map((csv) => csv.name).sort(),
    rows,
    sums: Object.fromEntries(
      numeric.map((name) => [name, Math.round(sums.get(name)! * 1e6) / 1e6]),
    ),
  };
}

/** The task: export default, as every task module does. */
export default defineTask({
  name: "csv_totals",
  ownerEmail: "perago-examples@example.com",
  description: "Writes _totals.json (rows, numeric column sums) into each folder of CSVs under " +
    "data/; narrow it to one partition with workspace.prefix",
  params: z.object({
    /** Free text written to the task log, e.g. why the run was started. */
    note: z.string().max(200).optional(),
  }),
  result: z.object({
    /** Folders holding CSV files (one `_totals.json` each). */
    folders: z.number().int().nonnegative(),
    /** Data rows summed over every folder. */
    rows: z.number().int().nonnegative(),
    /** `_totals.json` files whose content changed (0 on a rerun). */
    written: z.number().int().nonnegative(),
  }),
  workspace: {
    prefix: "data/",
    // No CSV in the scope means the input names the wrong partition: retrying cannot help.
    pre: [requireGlob("data/**/*.csv")],
    post: [requireGlob(`data/**/${TOTALS_FILE}`)],
  },
  controls: { retry: { count: 2, delaySeconds: 5 }, timeout: { responseSeconds: 60 } },
  async run({ note }, ctx) {
    const root = ctx.workspace;
    if (root === undefined) throw new Error("csv_totals: no workspace; run it as a workspace task");
    if (note !== undefined) ctx.log.info("note", { note });
    const byFolder = await csvFilesByFolder(root, "data", ctx.signal);
    let rows = 0;
    let written = 0;
    for (const [folder, names] of byFolder) {
      ctx.signal.throwIfAborted();
      const csvs = [];
      for (const name of names) {
        csvs.push({ name, text: await Deno.readTextFile(`${root}/${folder}/${name}`) });
      }
      const totals = totalsOf(csvs);
      rows += totals.rows;
      const path = `${root}/${folder}/${TOTALS_FILE}`;
      const text = `${JSON.stringify(totals, null, 2)}\n`;
      const current = await Deno.readTextFile(path).catch(() => undefined);
      if (current !== text) {
        await Deno.writeTextFile(path, text);
        written++;
      }
    }
    ctx.log.info("totals written", { folders: byFolder.size, rows, written });
    return { folders: byFolder.size, rows, written };
  },
});

/** Folders under `root/dir` (repository paths) -> the CSV file names in each; no symlinks. */
async function csvFilesByFolder(
  root: string,
  dir: string,
  signal: AbortSignal,
): Promise<Map<string, string[]>> {
  const found = new Map<string, string[]>();
  const pending = [dir];
  while (pending.length > 0) {
    signal.throwIfAborted();
    const current = pending.pop()!;
    for await (const entry of Deno.readDir(`${root}/${current}`)) {
      if (entry.isDirectory) pending.push(`${current}/${entry.name}`);
      else if (entry.isFile && entry.name.endsWith(".csv")) {
        found.set(current, [...(found.get(current) ?? []), entry.name]);
      }
    }
  }
  return new Map([...found].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
