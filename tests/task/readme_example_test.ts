/**
 * The README's task example is real code: it loads, extracts and runs as written (only its
 * `perago/mod.ts` import is pointed at this checkout).
 */
import assert from "node:assert/strict";
import { loadTask } from "../../src/task/loader.ts";
import { buildTaskDef } from "../../src/task/taskdef.ts";
import type { TaskContext } from "../../src/task/types.ts";
import { createTaskMetrics } from "../../src/task/metrics.ts";

const README = new URL("../../README.md", import.meta.url);
const MOD = new URL("../../mod.ts", import.meta.url).href;

async function readmeTaskSource(): Promise<string> {
  const readme = await Deno.readTextFile(README);
  const block = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)]
    .map((match) => match[1]!)
    .find((code) => code.includes("export default defineTask"));
  assert.ok(block, "README has a task example");
  assert.match(block, /from "perago\/mod\.ts"/);
  return block.replace('"perago/mod.ts"', JSON.stringify(MOD));
}

Deno.test("README task example loads, extracts and runs as documented", async () => {
  const dir = await Deno.makeTempDir({ prefix: "perago-readme-" });
  try {
    await Deno.writeTextFile(`${dir}/tidy_docs.ts`, await readmeTaskSource());
    const { task } = await loadTask(`${dir}/tidy_docs.ts`);
    assert.equal(task.name, "tidy_docs");
    assert.equal(task.workspace?.prefix, "docs/");
    const def = buildTaskDef(task);
    assert.deepEqual(def.inputKeys, ["workspace", "params"]);
    assert.equal(def.retryLogic, "EXPONENTIAL_BACKOFF");

    const workspace = `${dir}/attempt`;
    await Deno.mkdir(`${workspace}/docs`, { recursive: true });
    await Deno.writeTextFile(`${workspace}/docs/a.txt`, "one  \ntwo\t\n");
    await Deno.writeTextFile(`${workspace}/docs/b.txt`, "clean\n");
    await Deno.writeTextFile(`${workspace}/docs/c.md`, "not a txt  \n");
    const logged: string[] = [];
    const log = (message: string) => logged.push(message);
    const ctx: TaskContext = {
      workspace,
      signal: new AbortController().signal,
      log: { debug: log, info: log, warn: log, error: log },
      attempt: {
        workflowInstanceId: "wf",
        taskId: "t",
        retryCount: 0,
        executionId: "e",
        taskDefName: "tidy_docs",
      },
      metrics: createTaskMetrics("tidy_docs", task.metrics, () => {}),
    };
    const params = task.params.parse({});
    const result = task.result.parse(await task.run(params, ctx));
    assert.deepEqual(result, { filesChanged: 1, filesScanned: 2 });
    assert.equal(await Deno.readTextFile(`${workspace}/docs/a.txt`), "one\ntwo\n");
    assert.equal(await Deno.readTextFile(`${workspace}/docs/c.md`), "not a txt  \n");
    assert.equal(await Deno.readTextFile(`${workspace}/docs/index.json`), '["a.txt","b.txt"]\n');
    assert.deepEqual(logged, ["tidied a file"]);
    assert.throws(() => task.params.parse({ maxFiles: 1, extra: true }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
