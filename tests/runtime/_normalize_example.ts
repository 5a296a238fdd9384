/**
 * The writable example (examples/normalize_text.ts) run through a live `perago start`: seed a
 * repository, register the TaskDef and a one-task workflow, and check what was published.
 * Shared by the process-mode and thread-mode tests.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { LakeFsClient } from "../../src/lakefs/client.ts";
import { loadTask } from "../../src/task/loader.ts";
import { buildTaskDef } from "../../src/task/taskdef.ts";
import { type Stack, stopWorker, type Worker } from "./_stack.ts";
import { createTestRepository, deleteTestRepository } from "../_real_servers.ts";
import { leftoverAttemptDirs } from "../_workspace_root.ts";

/** Path of the writable example task module. */
export const NORMALIZE_EXAMPLE = new URL("../../examples/normalize_text.ts", import.meta.url)
  .pathname;

/**
 * Registers the example's TaskDef: call it before starting the worker, which refuses to
 * start for a task whose TaskDef the server lacks.
 */
export async function registerNormalizeTaskDef(stack: Stack): Promise<void> {
  const { task } = await loadTask(NORMALIZE_EXAMPLE);
  await stack.api.registerTaskDefs([buildTaskDef(task)]).catch(() =>
    stack.api.updateTaskDef(buildTaskDef(task))
  );
}

/** The example ready to run on a stack; disposing it deletes the repository on real servers. */
export interface NormalizeRun extends AsyncDisposable {
  repo: string;
  lakefs: LakeFsClient;
  workflowName: string;
  /** The commit seeding `docs/a.txt`. */
  seedCommit: string;
  /** Starts the workflow on main at its current head; returns the workflow id. */
  start(): Promise<string>;
}

/**
 * Prepares the example on `stack`: a repository named after `label` (unique to the run) whose
 * main holds `docs/a.txt` with `text`, the example's TaskDef, and a one-task workflow (its
 * output: the published workspace). Call it before starting the worker.
 */
export async function prepareNormalize(
  stack: Stack,
  options: { label: string; text: string },
): Promise<NormalizeRun> {
  const lakefs = new LakeFsClient({
    endpointUrl: stack.lakefs.url,
    accessKeyId: stack.lakefs.accessKeyId,
    secretAccessKey: stack.lakefs.secretAccessKey,
  });
  const repo = await createTestRepository(stack.lakefs, options.label);
  const dispose = async () => {
    if (stack.real) await deleteTestRepository(stack.lakefs, repo);
  };
  try {
    await lakefs.uploadObject(
      repo,
      "main",
      "docs/a.txt",
      () => Promise.resolve(new TextEncoder().encode(options.text)),
    );
    const seed = await lakefs.commit(repo, "main", "seed");
    const { task } = await loadTask(NORMALIZE_EXAMPLE);
    // The example's TaskDef name is fixed; the workflow's is unique with the repository's.
    const workflowName = `${repo}_wf`;
    await registerNormalizeTaskDef(stack);
    await stack.api.upsertWorkflowDefs([{
      name: workflowName,
      version: 1,
      schemaVersion: 2,
      ownerEmail: "tests@example.com",
      tasks: [{
        name: task.name,
        taskReferenceName: "norm",
        type: "SIMPLE",
        inputParameters: { workspace: "${workflow.input.workspace}", params: {} },
      }],
      outputParameters: { workspace: "${norm.output.workspace}" },
    }]);
    return {
      repo,
      lakefs,
      workflowName,
      seedCommit: seed.id,
      async start() {
        const head = await lakefs.getBranch(repo, "main");
        return await stack.api.startWorkflow(workflowName, {
          workspace: { repository: repo, branch: "main", ref_type: "commit", ref: head.commit_id },
        });
      },
      [Symbol.asyncDispose]: dispose,
    };
  } catch (error) {
    await dispose();
    throw error;
  }
}

/**
 * Runs the example through `worker` (started on `stack` with {@linkcode NORMALIZE_EXAMPLE})
 * and asserts: the workflow completes, the branch moves to the published commit, the file is
 * normalised, nothing but the lock is left in the workspace root, and SIGTERM exits 0. On
 * real servers the repository, TaskDef and workflow names are unique to the run.
 */
export async function assertNormalizePublishes(stack: Stack, worker: Worker): Promise<void> {
  await using run = await prepareNormalize(stack, {
    label: "normalize",
    text: "hello   \r\nworld\n\n\n",
  });
  const { lakefs, repo } = run;
  const id = await run.start();
  const wf = await stack.waitWorkflow(id, "COMPLETED", 30_000).catch(async (error) => {
    const now = await stack.api.getWorkflow(id);
    throw new Error(
      `${error.message}: ${JSON.stringify(now.tasks.map((t) => t.reasonForIncompletion))}\n` +
        worker.output(),
    );
  });
  const published = (wf.output?.workspace as { ref?: string } | undefined)?.ref;
  assert.ok(published && published !== run.seedCommit, JSON.stringify(wf.output));
  assert.equal((await lakefs.getBranch(repo, "main")).commit_id, published);
  const text = await new Response(await lakefs.getObject(repo, published, "docs/a.txt")).text();
  assert.equal(text, "hello\nworld\n");
  // Nothing left behind in the workspace root but the supervisor's lock and the host's object
  // cache, which the narrowed executor filled with the downloaded object: the attempt
  // directory (2 files, below PERAGO_WARM_POOL_MIN_FILES) is not worth a warm pool entry and
  // its executor's replacement, so it went to the trash (removed in the background: waited
  // for).
  assert.deepEqual(await leftoverAttemptDirs(stack.workspaceRoot), []);
  const left = await Array.fromAsync(Deno.readDir(stack.workspaceRoot));
  assert.deepEqual(left.map((e) => e.name).sort(), [".perago-cache", ".perago-supervisor.lock"]);
  const [stats] = await Array.fromAsync(
    lakefs.listObjects(repo, run.seedCommit, { prefix: "docs/a.txt" }),
  );
  const entry = `${stats!.checksum}-${stats!.size_bytes}`;
  const cached = await Deno.readFile(
    `${stack.workspaceRoot}/.perago-cache/objects/${entry.slice(0, 2)}/${entry}`,
  );
  // A small object's entry holds its bytes, then their SHA-256 (the cache's trailer).
  const downloaded = new TextEncoder().encode("hello   \r\nworld\n\n\n");
  assert.deepEqual(cached.subarray(0, downloaded.length), downloaded);
  assert.equal(
    cached.subarray(downloaded.length).toHex(),
    createHash("sha256").update(downloaded).digest("hex"),
  );
  assert.equal(await stopWorker(worker), 0, worker.output());
}
