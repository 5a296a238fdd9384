/**
 * Example writable workspace task: normalises the text files under `docs/` and writes a
 * manifest.
 *
 * For every `*.txt` and `*.md` file under `docs/` (dotfiles included, symlinks skipped):
 * trailing whitespace is trimmed from each line, line endings become LF, and the file ends
 * with exactly one newline (an empty file stays empty). Then `docs/manifest.json` lists every
 * such file, sorted by path, with its sha256 and byte size. Files are only rewritten when
 * their bytes change and the manifest has no timestamps, so a rerun on a normalised tree
 * changes nothing (perago then publishes no new commit).
 *
 * Guardrail paths are relative to the attempt directory, which mirrors the repository root:
 * the prefix `docs/` is part of them (`docs/manifest.json`, not `manifest.json`).
 *
 * Try it: `perago run examples/normalize_text.ts --input examples/inputs/normalize_text.json`.
 *
 * @module
 */
import { defineTask, requireDir, requireFile, z } from "../mod.ts";

/** Where the manifest is written, relative to the repository root. */
export const MANIFEST_PATH = "docs/manifest.json";

const TEXT_FILE = /\.(txt|md)$/;

/**
 * Normalises one text: LF endings, no trailing whitespace on any line, no trailing blank
 * lines, exactly one final newline ("" stays "").
 */
export function normalizeText(text: string): string {
  const lines = text.split(/\r\n|\r|\n/).map((line) => line.replace(/[ \t\f\v]+$/, ""));
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}

/** The task: export default, as every task module does. */
export default defineTask({
  name: "normalize_text",
  ownerEmail: "perago-examples@example.com",
  description: "Normalises *.txt and *.md under docs/ and writes docs/manifest.json",
  params: z.object({
    /** Free text written to the task log, e.g. why the run was started. */
    note: z.string().max(200).optional(),
  }),
  result: z.object({
    filesNormalized: z.number().int().nonnegative(),
    filesScanned: z.number().int().nonnegative(),
  }),
  workspace: {
    prefix: "docs/",
    pre: [requireDir("docs")],
    post: [requireFile(MANIFEST_PATH)],
  },
  controls: { retry: { count: 2, delaySeconds: 5 }, timeout: { responseSeconds: 60 } },
  async run({ note }, ctx) {
    const root = ctx.workspace;
    if (root === undefined) {
      throw new Error("normalize_text: no workspace; run it as a workspace task");
    }
    if (note !== undefined) ctx.log.info("note", { note });
    const decoder = new TextDecoder("utf-8", { fatal: true });
    const encoder = new TextEncoder();
    const files = (await listFiles(root, "docs", ctx.signal)).filter((path) =>
      TEXT_FILE.test(path)
    );
    const manifest: { path: string; sha256: string; size: number }[] = [];
    let filesNormalized = 0;
    for (const path of files) {
      ctx.signal.throwIfAborted();
      const absolute = `${root}/${path}`;
      const before = await Deno.readFile(absolute);
      let text: string;
      try {
        text = decoder.decode(before);
      } catch {
        ctx.log.warn("not UTF-8, left as is", { path });
        manifest.push({ path, sha256: await sha256Hex(before), size: before.byteLength });
        continue;
      }
      const after = encoder.encode(normalizeText(text));
      if (!sameBytes(before, after)) {
        await Deno.writeFile(absolute, after);
        filesNormalized++;
      }
      manifest.push({ path, sha256: await sha256Hex(after), size: after.byteLength });
    }
    const manifestText = `${JSON.stringify({ files: manifest }, null, 2)}\n`;
    const manifestPath = `${root}/${MANIFEST_PATH}`;
    const current = await Deno.readTextFile(manifestPath).catch(() => undefined);
    if (current !== manifestText) await Deno.writeTextFile(manifestPath, manifestText);
    ctx.log.info("normalised", { filesNormalized, filesScanned: files.length });
    return { filesNormalized, filesScanned: files.length };
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

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)).toHex();
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((value, index) => value === b[index]);
}
