import assert from "node:assert/strict";
import { join } from "node:path";
import {
  assertNormalizePublishes,
  NORMALIZE_EXAMPLE,
  prepareNormalize,
  registerNormalizeTaskDef,
} from "./_normalize_example.ts";
import { startStack, startWorker, stopWorker } from "./_stack.ts";
import { realServers, skipNote } from "../_real_servers.ts";

Deno.test("start: a writable workspace task publishes to lakeFS from a narrowed executor", async () => {
  await using stack = await startStack();
  await registerNormalizeTaskDef(stack);
  await using worker = startWorker({ ...stack, modulePath: NORMALIZE_EXAMPLE });
  await assertNormalizePublishes(stack, worker);
});

const real = realServers();
Deno.test({
  name: "start: the writable example publishes on the real Conductor and real lakeFS",
  ignore: skipNote("writable example (process mode) on the real servers", real),
  async fn() {
    if ("skip" in real) return;
    await using stack = await startStack({ servers: real });
    await registerNormalizeTaskDef(stack);
    await using worker = startWorker({ ...stack, modulePath: NORMALIZE_EXAMPLE });
    await assertNormalizePublishes(stack, worker);
  },
});

Deno.test("start: after a restart, the executor starts from the directory the previous executor left in the warm pool (nothing fetched)", async () => {
  await using stack = await startStack();
  await registerNormalizeTaskDef(stack);
  await using run = await prepareNormalize(stack, {
    label: "warm",
    text: "hello   \r\nworld\n\n\n",
  });
  const server = stack.testStack.lakefsServer!;
  const once = async () => {
    await using worker = startWorker({ ...stack, modulePath: NORMALIZE_EXAMPLE });
    const id = await run.start();
    await stack.waitWorkflow(id, "COMPLETED", 30_000);
    // The executor (and so every task's code it ran) ends with the worker.
    assert.equal(await stopWorker(worker), 0);
  };
  server.stats.reset();
  await once();
  assert.equal(server.stats.count("getObject"), 1, "docs/a.txt downloaded");
  const pool = join(stack.workspaceRoot, ".perago-warm");
  const pooled = () =>
    [...Deno.readDirSync(pool)].filter((e) => e.isDirectory && e.name !== "holders").length;
  assert.equal(pooled(), 1);
  server.stats.reset();
  await once();
  // docs/a.txt as published and the docs/manifest.json the first attempt wrote: both kept.
  assert.equal(server.stats.count("getObject"), 0);
  assert.equal(pooled(), 1);
});
