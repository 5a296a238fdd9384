import assert from "node:assert/strict";
import { withDemoStack } from "../../testing.ts";

const EXAMPLES = new URL("../../examples/", import.meta.url);
const example = (name: string) => new URL(name, EXAMPLES);

Deno.test("withDemoStack: a workflow of the three examples runs through perago start; the branch shows the result", async () => {
  await withDemoStack(async (stack) => {
    assert.equal(stack.env.LAKECTL_CREDENTIALS_ACCESS_KEY_ID, "AKIAIOSFOLQUICKSTART");
    assert.match(stack.env.CONDUCTOR_SERVER_URL!, /^http:\/\/127\.0\.0\.1:\d+\/api$/);
    assert.match(stack.envText, /^CONDUCTOR_SERVER_URL=.*\nLAKECTL_SERVER_ENDPOINT_URL=/);
    assert.deepEqual(await stack.list(), ["docs/a.txt", "docs/b.md"]);

    const run = await stack.runWorkflow(
      [example("normalize_text.ts"), example("text_stats.ts"), example("word_count.ts")],
      { params: { word_count: { text: "one two" }, text_stats: { perFile: false } } },
    );
    assert.equal(run.status, "COMPLETED", run.log);
    assert.deepEqual(run.tasks.map((task) => [task.name, task.status]), [
      ["normalize_text", "COMPLETED"],
      ["text_stats", "COMPLETED"],
      ["word_count", "COMPLETED"],
    ]);
    const normalized = run.output.normalize_text as { workspace: { ref: string } };
    const stats = run.output.text_stats as { workspace: { ref: string }; result: unknown };
    assert.notEqual(normalized.workspace.ref, stack.seedCommit);
    // The read-only task ran on what the writable one published.
    assert.equal(stats.workspace.ref, normalized.workspace.ref);
    assert.deepEqual(stats.result, { files: 2, lines: 2, words: 2, bytes: 5 });
    assert.deepEqual(run.output.word_count, { result: { words: 2, chars: 7 } });

    assert.equal(await stack.read("docs/a.txt"), "a\n");
    assert.equal(await stack.read("docs/a.txt", stack.seedCommit), "a  \r\n");
    assert.equal(await stack.read("docs/missing.txt"), undefined);
    assert.deepEqual(await stack.list("docs/"), ["docs/a.txt", "docs/b.md", "docs/manifest.json"]);
    assert.match(run.log, /thread mode/);
  }, { files: { "docs/a.txt": "a  \r\n", "docs/b.md": "ok\n" } });
});

Deno.test("withDemoStack: a failing pre guardrail fails the workflow at once (terminal, no retry)", async () => {
  await withDemoStack(async (stack) => {
    const run = await stack.runWorkflow([example("normalize_text.ts")]);
    assert.equal(run.status, "FAILED", run.log);
    assert.equal(run.tasks.length, 1);
    assert.equal(run.tasks[0]!.status, "FAILED_WITH_TERMINAL_ERROR");
    assert.match(run.tasks[0]!.reason!, /^PreGuardrailViolation: /);
    assert.deepEqual(await stack.list(), ["other/x.txt"]);
  }, { files: { "other/x.txt": "x" }, repository: "no-docs" });
});

Deno.test("withDemoStack: everything is stopped when fn throws", async () => {
  let urls: string[] = [];
  await assert.rejects(
    () =>
      withDemoStack((stack) => {
        urls = [stack.env.CONDUCTOR_SERVER_URL!, stack.env.LAKECTL_SERVER_ENDPOINT_URL!];
        throw new Error("test body failed");
      }),
    /test body failed/,
  );
  assert.equal(urls.length, 2);
  for (const url of urls) {
    await assert.rejects(() => fetch(url), TypeError, `${url} still answers`);
  }
});
