/** The read-only example, tested with perago/testing. */
import assert from "node:assert/strict";
import { runTask } from "perago/testing";
import textStats from "../../examples/text_stats.ts";

const FILES = {
  "docs/a.txt": "one two\nthree\n",
  "docs/sub/b.md": "four",
  "docs/c.json": "{}",
};

Deno.test("text_stats: counts the text files and changes nothing", async () => {
  const run = await runTask(textStats, { files: FILES, params: { perFile: true } });
  assert.equal(run.status, "COMPLETED", run.reason);
  assert.deepEqual(run.result, {
    files: 2,
    lines: 3,
    words: 4,
    bytes: 18,
    perFile: [
      { path: "docs/a.txt", lines: 2, words: 3, bytes: 14 },
      { path: "docs/sub/b.md", lines: 1, words: 1, bytes: 4 },
    ],
  });
  assert.deepEqual(run.changes, { added: [], changed: [], removed: [] });
  assert.deepEqual(run.paths(), ["docs/a.txt", "docs/c.json", "docs/sub/b.md"]);
  // A read-only task completes with the input commit.
  const workspace = run.output!.workspace as { ref: string };
  assert.match(workspace.ref, /^[0-9a-f]{64}$/);
});

Deno.test("text_stats: totals only by default", async () => {
  const run = await runTask(textStats, { files: FILES });
  assert.equal(run.status, "COMPLETED", run.reason);
  assert.deepEqual(run.result, { files: 2, lines: 3, words: 4, bytes: 18 });
});

Deno.test("text_stats: no docs/ folder is a terminal failure (pre guardrail)", async () => {
  const run = await runTask(textStats, {});
  assert.equal(run.status, "FAILED_WITH_TERMINAL_ERROR");
  assert.match(run.reason!, /^PreGuardrailViolation: /);
});
