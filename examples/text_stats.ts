/**
 * Example read-only workspace task: line, word and byte counts of the text files (`*.txt`,
 * `*.md`) under `docs/`. Read-only tasks never write to lakeFS: the task completes with the
 * input commit as its output ref.
 *
 * Try it: `perago run examples/text_stats.ts --input examples/inputs/text_stats.json`.
 *
 * @module
 */
import { defineTask, requireDir, z } from "../mod.ts";

const TEXT_FILE = /\.(txt|md)$/;

/** Counts of one text: lines (newline-terminated or not), whitespace-separated words, bytes. */
export function countText(bytes: Uint8Array): { lines: number; words: number; bytes: number } {
  const text = new TextDecoder().decode(bytes);
  const newlines = text.match(/\n/g)?.length ?? 0;
  const lines = newlines + (text.length > 0 && !text.endsWith("\n") ? 1 : 0);
  const words = text.split(/\s+/).filter((word) => word !== "").length;
  return { lines, words, bytes: bytes.byteLength };
}

const counts = {
  lines: z.number().int().nonnegative(),
  words: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
};

/** The task: export default, as every task module does. */
export default defineTask({
  name: "text_stats",
  ownerEmail: "perago-examples@example.com",
  description: "Counts lines, words and bytes of *.txt and *.md under docs/ (read-only)",
  params: z.object({
    /** Also return the counts of each file, not only the totals. */
    perFile: z.boolean().default(false),
  }),
  result: z.object({
    files: z.number().int().nonnegative(),
    ...counts,
    perFile: z.array(z.object({ path: z.string(), ...counts })).optional(),
  }),
  workspace: { prefix: "docs/", readOnly: true, pre: [requireDir("docs")] },
  async run({ perFile }, ctx) {
    const root = ctx.workspace;
    if (root === undefined) throw new Error("text_stats: no workspace; run it as a workspace task");
    const paths = (await listFiles(root, "docs", ctx.signal)).filter((p) => TEXT_FILE.test(p));
    const totals = { files: paths.length, lines: 0, words: 0, bytes: 0 };
    const each: ({ path: string } & ReturnType<typeof countText>)[] = [];
    for (const path of paths) {
      ctx.signal.throwIfAborted();
      const stats = countText(await Deno.readFile(`${root}/${path}`));
      totals.lines += stats.lines;
      totals.words += stats.words;
      totals.bytes += stats.bytes;
      each.push({ path, ...stats });
    }
    ctx.log.info("counted", totals);
    return perFile ? { ...totals, perFile: each } : totals;
  },
});

/** Regular files under `root/dir`, as sorted repository paths; symlinks are skipped. */
async function listFiles(root: string, dir: string, signal: AbortSignal): Promise<string[]> {
  const found: string[] = [];
  const pending = [dir];
  while (pending.length > 0) {
    signal.throwIfAborted();
    const current = pending.pop()!;
    for await (const entry of Deno.readDir(`${root}/${current}`)) {
      const path = `${current}/${entry.name}`;
      if (entry.isDirectory) pending.push(path);
      else if (entry.isFile) found.push(path);
    }
  }
  return found.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
