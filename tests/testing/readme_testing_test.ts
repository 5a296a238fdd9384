/**
 * The README's "Testing your tasks" example is real: its test block runs under `deno test`
 * against the README's task example, with read and write permission only.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = new URL("../../", import.meta.url);

function block(readme: string, needle: string): string {
  const found = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)]
    .map((match) => match[1]!)
    .find((code) => code.includes(needle));
  assert.ok(found, `README has a ts block with ${needle}`);
  return found;
}

Deno.test("README: the perago/testing example passes against the README's task, without network", async () => {
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const task = block(readme, "export default defineTask")
    .replace('"perago/mod.ts"', JSON.stringify(new URL("mod.ts", ROOT).href));
  const test = block(readme, 'from "perago/testing"');
  assert.match(test, /from "\.\.\/tasks\/tidy_docs\.ts"/);
  const dir = await Deno.makeTempDir({ prefix: "perago-readme-testing-" });
  try {
    await Deno.mkdir(`${dir}/tasks`);
    await Deno.mkdir(`${dir}/tests`);
    await Deno.writeTextFile(`${dir}/tasks/tidy_docs.ts`, task);
    await Deno.writeTextFile(`${dir}/tests/tidy_docs_test.ts`, test);
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "test",
        "--config",
        fileURLToPath(new URL("deno.json", ROOT)),
        "--no-lock",
        "--allow-read",
        "--allow-write",
        `${dir}/tests/`,
      ],
      cwd: dir,
      env: { NO_COLOR: "1" },
      stdin: "null",
      signal: AbortSignal.timeout(120_000),
    }).output();
    const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, text);
    assert.match(text, /ok \| 2 passed \| 0 failed/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
