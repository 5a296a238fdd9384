/** The writable example, tested the way a task author tests a task: with perago/testing. */
import assert from "node:assert/strict";
import { runTask } from "perago/testing";
import normalizeText, { MANIFEST_PATH } from "../../examples/normalize_text.ts";

const NOT_UTF8 = new Uint8Array([0x63, 0x61, 0x66, 0xe9, 0x20, 0x20, 0x0a]); // "café  \n" in Latin-1
const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x20, 0x0a]);

const FILES = {
  "docs/a.txt": "alpha  \r\nbeta\t\n",
  "docs/b.md": "# fine\n",
  "docs/sub/c.txt": "gamma\n\n\n",
  "docs/latin1.txt": NOT_UTF8,
  "docs/image.png": PNG,
};

async function sha256(text: string | Uint8Array): Promise<string> {
  const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return new Uint8Array(digest).toHex();
}

Deno.test("normalize_text: a file set comes back with exactly the expected changes", async () => {
  const run = await runTask(normalizeText, { files: FILES, params: { note: "test run" } });
  assert.equal(run.status, "COMPLETED", run.reason);
  assert.deepEqual(run.result, { filesNormalized: 2, filesScanned: 4 });
  assert.deepEqual(run.changes, {
    added: [MANIFEST_PATH],
    changed: ["docs/a.txt", "docs/sub/c.txt"],
    removed: [],
  });
  assert.equal(run.read("docs/a.txt"), "alpha\nbeta\n");
  assert.equal(run.read("docs/sub/c.txt"), "gamma\n");
  assert.equal(run.read("docs/b.md"), "# fine\n");
  // Not UTF-8: listed but left as is; not a text file: untouched and unlisted.
  assert.deepEqual(run.readBytes("docs/latin1.txt"), NOT_UTF8);
  assert.deepEqual(run.readBytes("docs/image.png"), PNG);
  const manifest = JSON.parse(run.read(MANIFEST_PATH)!);
  assert.deepEqual(manifest, {
    files: [
      { path: "docs/a.txt", sha256: await sha256("alpha\nbeta\n"), size: 11 },
      { path: "docs/b.md", sha256: await sha256("# fine\n"), size: 7 },
      { path: "docs/latin1.txt", sha256: await sha256(NOT_UTF8), size: 7 },
      { path: "docs/sub/c.txt", sha256: await sha256("gamma\n"), size: 6 },
    ],
  });
});

Deno.test("normalize_text: a rerun on its own output changes nothing", async () => {
  const first = await runTask(normalizeText, { files: FILES });
  assert.equal(first.status, "COMPLETED", first.reason);
  const published = Object.fromEntries(first.paths().map((path) => [path, first.readBytes(path)!]));
  const again = await runTask(normalizeText, { files: published });
  assert.equal(again.status, "COMPLETED", again.reason);
  assert.deepEqual(again.result, { filesNormalized: 0, filesScanned: 4 });
  assert.deepEqual(again.changes, { added: [], changed: [], removed: [] });
});

Deno.test("normalize_text: no docs/ folder is a terminal failure (pre guardrail)", async () => {
  const run = await runTask(normalizeText, { files: {} });
  assert.equal(run.status, "FAILED_WITH_TERMINAL_ERROR");
  assert.match(run.reason!, /^PreGuardrailViolation: pre guardrail requireDir\("docs"\)/);
  assert.deepEqual(run.paths(), []);
});

Deno.test("normalize_text: unknown params are refused before the task runs", async () => {
  const run = await runTask(normalizeText, {
    files: FILES,
    params: { note: "x", force: true } as { note: string },
  });
  assert.equal(run.status, "FAILED");
  assert.match(run.reason!, /^TaskInputError: invalid params for task "normalize_text"/);
  assert.equal(run.read("docs/a.txt"), "alpha  \r\nbeta\t\n");
});
