/**
 * `perago start` runs forked tasks like any other: the tasks of a static FORK_JOIN and of a
 * FORK_JOIN_DYNAMIC are SIMPLE tasks with their own taskId, seq and referenceTaskName, polled
 * side by side by one worker, and the JOIN after them collects their outputs. The writable
 * forked tasks stage under distinct staging branches (the name carries the reference name and
 * seq of each) and leave none behind; narrowed to disjoint partitions, they all publish onto
 * one branch without a retry.
 */
import assert from "node:assert/strict";
import { DEMO_ACCESS_KEY_ID, DEMO_SECRET_ACCESS_KEY } from "../../src/devstack/credentials.ts";
import { LakeFsClient } from "../../src/lakefs/client.ts";
import { loadTask } from "../../src/task/loader.ts";
import { buildTaskDef } from "../../src/task/taskdef.ts";
import { dynamicForkAndJoin } from "../_fork_flows.ts";
import { startStack, startWorker, stopWorker } from "./_stack.ts";

const MOD = new URL("../../mod.ts", import.meta.url).href;

/** A writable task that writes `parts/<part>/<part>.txt` (its prefix is `parts/`). */
const PART_WRITER = (name: string) => `
import { defineTask, z } from "${MOD}";
export default defineTask({
  name: "${name}",
  ownerEmail: "tests@example.com",
  description: "writes one partition file",
  params: z.object({ part: z.string() }),
  result: z.object({ wrote: z.string() }),
  workspace: { prefix: "parts/" },
  controls: { retry: { count: 2, logic: "FIXED", delaySeconds: 0 }, timeout: { responseSeconds: 60, seconds: 0 } },
  async run(p, ctx) {
    await Deno.mkdir(ctx.workspace + "/parts/" + p.part, { recursive: true });
    await Deno.writeTextFile(ctx.workspace + "/parts/" + p.part + "/" + p.part + ".txt", p.part);
    return { wrote: "parts/" + p.part + "/" + p.part + ".txt" };
  },
});
`;

/**
 * Runs one workflow through `perago start -j 3`: a static fork of workspace-free tasks (one
 * branch of two tasks in sequence), then a dynamic fork of `n` writers, each on its own branch
 * (`oneBranch: false`) or all on `main`, each narrowed to its partition `parts/p<i>/`.
 */
async function runForks(n: number, oneBranch: boolean): Promise<void> {
  await using stack = await startStack();
  const writerName = `${stack.taskName}_writer`;
  const writerPath = `${stack.dir}/tasks/writer.ts`;
  await Deno.writeTextFile(writerPath, PART_WRITER(writerName));
  await using worker = startWorker(stack, [writerPath, "-j", "3"]);
  const lakefs = new LakeFsClient({
    endpointUrl: stack.lakefsUrl,
    accessKeyId: DEMO_ACCESS_KEY_ID,
    secretAccessKey: DEMO_SECRET_ACCESS_KEY,
  });
  await lakefs.createRepository("forks", "local://forks", "main");
  await lakefs.uploadObject(
    "forks",
    "main",
    "parts/README",
    () => Promise.resolve(new TextEncoder().encode("seed\n")),
  );
  const seed = await lakefs.commit("forks", "main", "seed");
  const branchOf = (i: number) => oneBranch ? "main" : `part-${i}`;
  if (!oneBranch) {
    for (let i = 0; i < n; i++) await lakefs.createBranch("forks", branchOf(i), seed.id);
  }
  await stack.api.registerTaskDefs([buildTaskDef((await loadTask(writerPath)).task)]);

  const probe = stack.taskName;
  await stack.api.upsertWorkflowDefs([{
    name: `${probe}_forks`,
    version: 1,
    schemaVersion: 2,
    ownerEmail: "tests@example.com",
    tasks: [
      {
        name: "fork",
        taskReferenceName: "fork",
        type: "FORK_JOIN",
        forkTasks: [
          [
            {
              name: probe,
              taskReferenceName: "a1",
              type: "SIMPLE",
              inputParameters: { params: { a: 1, b: 2 } },
            },
            {
              name: probe,
              taskReferenceName: "a2",
              type: "SIMPLE",
              inputParameters: { params: { a: "${a1.output.result.sum}", b: 10 } },
            },
          ],
          [{
            name: probe,
            taskReferenceName: "b1",
            type: "SIMPLE",
            inputParameters: { params: { a: 100, b: 200 } },
          }],
        ],
      },
      { name: "join", taskReferenceName: "join", type: "JOIN", joinOn: ["a2", "b1"] },
      ...dynamicForkAndJoin("parts", "parts_join"),
    ],
    outputParameters: { static: "${join.output}", dynamic: "${parts_join.output}" },
  }]);
  const refs = Array.from({ length: n }, (_, i) => `part_${i}`);
  const id = await stack.api.startWorkflow(`${probe}_forks`, {
    tasks: refs.map((ref) => ({ name: writerName, taskReferenceName: ref, type: "SIMPLE" })),
    inputs: Object.fromEntries(refs.map((ref, i) => [ref, {
      workspace: {
        repository: "forks",
        branch: branchOf(i),
        ref_type: "commit",
        ref: seed.id,
        prefix: `parts/p${i}/`,
      },
      params: { part: `p${i}` },
    }])),
  });
  const wf = await stack.waitWorkflow(id, "COMPLETED", 60_000).catch(async (error) => {
    const now = await stack.api.getWorkflow(id);
    throw new Error(
      `${error.message}: ${
        JSON.stringify(
          now.tasks.map((t) => [t.referenceTaskName, t.status, t.reasonForIncompletion]),
        )
      }\n${worker.output()}`,
    );
  });

  assert.deepEqual(wf.output?.static, {
    a2: { result: { sum: 13 } },
    b1: { result: { sum: 300 } },
  });
  const dynamic = wf.output?.dynamic as Record<
    string,
    { workspace: { ref: string }; result: unknown }
  >;
  assert.deepEqual(Object.keys(dynamic).sort(), refs);
  for (const [i, ref] of refs.entries()) {
    const path = `parts/p${i}/p${i}.txt`;
    assert.deepEqual(dynamic[ref]!.result, { wrote: path });
    const published = dynamic[ref]!.workspace.ref;
    const head = (await lakefs.getBranch("forks", branchOf(i))).commit_id;
    if (!oneBranch) assert.equal(head, published);
    // On one branch every partition's file is there at the end, whoever published last.
    const text = await new Response(await lakefs.getObject("forks", head, path)).text();
    assert.equal(text, `p${i}`);
  }
  // Every forked task was its own Conductor task, polled once and completed once.
  const forked = wf.tasks.filter((t) => t.taskType === probe || t.taskType === writerName);
  assert.equal(forked.length, 3 + n);
  assert.equal(new Set(forked.map((t) => t.taskId)).size, forked.length);
  assert.equal(new Set(forked.map((t) => t.seq)).size, forked.length);
  for (const task of forked) {
    assert.equal(task.status, "COMPLETED");
    assert.equal(task.retryCount, 0, `${task.referenceTaskName} was not retried`);
  }
  // No staging branch is left behind.
  const branches = (await Array.fromAsync(lakefs.listBranches("forks"))).map((b) => b.id).sort();
  assert.deepEqual(branches, oneBranch ? ["main"] : ["main", ...refs.map((_, i) => branchOf(i))]);
  assert.equal(await stopWorker(worker), 0, worker.output());
}

Deno.test("start: forked tasks (static and dynamic fork) are polled side by side and joined", async () => {
  await runForks(4, false);
});

Deno.test("start: a dynamic fork of writers with disjoint scopes publishes all on one branch", async () => {
  await runForks(6, true);
});
