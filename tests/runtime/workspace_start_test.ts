import assert from "node:assert/strict";
import { join } from "node:path";
import {
  assertNormalizePublishes,
  NORMALIZE_EXAMPLE,
  prepareNormalize,
  registerNormalizeTaskDef,
} from "./_normalize_example.ts";
import { type Stack, startStack, startWorker, stopWorker } from "./_stack.ts";
import { waitForOutput } from "../_perago_process.ts";
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
    // Every directory kept, however small (the example's holds 2 files).
    await using worker = startWorker(withEnv(stack, { PERAGO_WARM_POOL_MIN_FILES: "0" }));
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

/** `stack` serving the writable example, with `env` added to the worker's environment. */
function withEnv(stack: Stack, env: Record<string, string>): Stack {
  return { ...stack, modulePath: NORMALIZE_EXAMPLE, env: { ...stack.env, ...env } };
}

/** Warm pool entries (directories) under `root`. */
function pooled(root: string): number {
  try {
    return [...Deno.readDirSync(join(root, ".perago-warm"))]
      .filter((e) => e.isDirectory && e.name !== "holders").length;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return 0;
    throw error;
  }
}

const RECYCLED = /executor \S+ \(pid \d+\) recycled: its attempt directory went to the warm pool/g;
const NOT_A_FAILURE =
  /restarting executor|exited during the attempt|executor \S+ \(pid \d+\) exited \(/;

const MODES = [
  { name: "process", args: [] as string[], flags: ["-A"] },
  {
    name: "thread",
    args: ["--execution-mode", "thread"],
    flags: ["-A", "--unstable-worker-options"],
  },
];

for (const mode of MODES) {
  Deno.test(`start -j 1 (${mode.name} mode): the executor that kept its directory in the warm pool is recycled, and the next task on the repository fetches nothing`, async () => {
    await using stack = await startStack();
    await registerNormalizeTaskDef(stack);
    await using run = await prepareNormalize(stack, {
      label: `recycle${mode.name}`,
      text: "hello   \r\nworld\n\n\n",
    });
    const server = stack.testStack.lakefsServer!;
    await using worker = startWorker(
      withEnv(stack, { PERAGO_WARM_POOL_MIN_FILES: "1" }),
      ["-j", "1", ...mode.args],
      mode.flags,
    );
    server.stats.reset();
    await stack.waitWorkflow(await run.start(), "COMPLETED", 30_000);
    assert.equal(server.stats.count("getObject"), 1, "docs/a.txt downloaded");
    await waitForOutput(worker, /recycled: .*replacing it now/, {
      what: "the executor recycled",
      timeoutMs: 30_000,
    });
    server.stats.reset();
    await stack.waitWorkflow(await run.start(), "COMPLETED", 30_000);
    // docs/a.txt as published and the docs/manifest.json the first attempt wrote: both kept.
    assert.equal(server.stats.count("getObject"), 0, worker.output());
    assert.equal(await stopWorker(worker), 0);
    const output = worker.output();
    // One recycle per kept directory; neither is a crash nor a restart.
    assert.equal(output.match(RECYCLED)?.length, 2, output);
    assert.doesNotMatch(output, NOT_A_FAILURE);
    assert.equal(pooled(stack.workspaceRoot), 1);
  });
}

Deno.test("start: a task whose directory is below PERAGO_WARM_POOL_MIN_FILES does not recycle its executor (the directory is removed)", async () => {
  await using stack = await startStack();
  await registerNormalizeTaskDef(stack);
  await using run = await prepareNormalize(stack, { label: "small", text: "a  \nb\n" });
  // The default bound (200 files): the example's directory holds 2.
  await using worker = startWorker(withEnv(stack, {}));
  await stack.waitWorkflow(await run.start(), "COMPLETED", 30_000);
  await stack.waitWorkflow(await run.start(), "COMPLETED", 30_000);
  assert.equal(await stopWorker(worker), 0);
  const output = worker.output();
  assert.doesNotMatch(output, RECYCLED);
  assert.equal(output.match(/executor \S+ started/g)?.length, 1, output);
  assert.equal(pooled(stack.workspaceRoot), 0);
});

Deno.test("start: SIGTERM as the executor recycles drains: the result is delivered, nothing counts as a failure, exit 0", async () => {
  await using stack = await startStack();
  await registerNormalizeTaskDef(stack);
  await using run = await prepareNormalize(stack, { label: "recycledrain", text: "x  \n" });
  await using worker = startWorker(withEnv(stack, { PERAGO_WARM_POOL_MIN_FILES: "1" }));
  const id = await run.start();
  // The executor logs this as it sends its outcome, before it exits; whether the signal
  // lands before its exit (not replaced) or after (the replacement drains) is the race the
  // supervisor unit test pins down.
  await waitForOutput(worker, /the executor ends so the next attempt can take it/, {
    what: "the executor ending after its attempt",
    timeoutMs: 30_000,
  });
  assert.equal(await stopWorker(worker), 0);
  await stack.waitWorkflow(id, "COMPLETED", 10_000);
  const output = worker.output();
  assert.match(output, RECYCLED);
  assert.doesNotMatch(output, NOT_A_FAILURE);
  assert.equal(pooled(stack.workspaceRoot), 1);
});
