/** The workspace-free example, tested with perago/testing: params in, result out. */
import assert from "node:assert/strict";
import { runTask } from "perago/testing";
import wordCount, { MAX_TEXT_CHARS } from "../../examples/word_count.ts";

Deno.test("word_count: counts words and characters (code points)", async () => {
  const run = await runTask(wordCount, { params: { text: "  héllo   wörld 🌍 " } });
  assert.equal(run.status, "COMPLETED", run.reason);
  assert.deepEqual(run.result, { words: 3, chars: 18 });
  assert.deepEqual(run.output, { result: { words: 3, chars: 18 } });
  assert.deepEqual(run.changes, { added: [], changed: [], removed: [] });
});

Deno.test("word_count: a text over the limit fails terminally (no retry)", async () => {
  const run = await runTask(wordCount, { params: { text: "x".repeat(MAX_TEXT_CHARS + 1) } });
  assert.equal(run.status, "FAILED_WITH_TERMINAL_ERROR");
  assert.match(run.reason!, /^TaskTerminalError: word_count: text has 100001 characters/);
});

Deno.test("word_count: a missing text is an input error (FAILED)", async () => {
  const run = await runTask(wordCount, { params: {} as { text: string } });
  assert.equal(run.status, "FAILED");
  assert.match(run.reason!, /^TaskInputError: invalid params for task "word_count"/);
});
