/**
 * Writers side by side, end to end: a Conductor and a lakeFS (the in-process demo servers, or
 * the real Conductor OSS and lakeFS named by `PERAGO_TEST_*`), a repository seeded with
 * partitions `data/part=NN/log.txt`, a partition-writer task module with a run-unique name,
 * `perago start` as a real child process, and the checks the e2e and chaos tests share.
 *
 * The partition writer appends its id to the `log.txt` of every folder of its scope and writes
 * `out/<id>.txt` beside it. Narrowed by `workspace.prefix` to one partition, it touches that
 * partition only, so "published exactly once" is checkable per partition: one commit on the
 * branch changes it, its id is in `log.txt` once and its `out/` file is there.
 *
 * @module
 */
import { leftoverAttemptDirs } from "./_workspace_root.ts";
import { ConductorClient } from "../src/conductor/client.ts";
import type { Workflow, WorkflowTaskDef } from "../src/conductor/api.ts";
import { LakeFsClient } from "../src/lakefs/client.ts";
import { forEachConcurrent } from "../src/util/pool.ts";
import { dynamicForkAndJoin } from "./_fork_flows.ts";
import { type GatePeer, startHttpGate } from "./_http_gate.ts";
import type { Worker } from "./_perago_process.ts";
import { uniqueSuffix } from "./_real_servers.ts";
import { registerTaskModules, type Servers, TestStack, waitAllTerminal } from "./_stack.ts";

const MOD = new URL("../mod.ts", import.meta.url).href;

/** Terminal workflow states. */
export { TERMINAL } from "./_stack.ts";

/** The partition writer's source. */
export function partitionWriterSource(
  name: string,
  options: { retries: number; responseSeconds: number },
): string {
  return `
import { defineTask, z } from "${MOD}";
export default defineTask({
  name: "${name}",
  ownerEmail: "writers@example.com",
  description: "appends its id to log.txt of every folder of its scope, writes out/<id>.txt",
  params: z.object({ id: z.string().max(100), sleepMs: z.number().int().min(0).optional() }),
  result: z.object({ id: z.string(), folders: z.number() }),
  workspace: { prefix: "data/" },
  controls: {
    retry: { count: ${options.retries}, logic: "FIXED", delaySeconds: 0 },
    timeout: { responseSeconds: ${options.responseSeconds}, seconds: 0 },
  },
  async run(p, ctx) {
    if (p.sleepMs) await new Promise((resolve, reject) => {
      const t = setTimeout(resolve, p.sleepMs);
      ctx.signal.addEventListener("abort", () => { clearTimeout(t); reject(ctx.signal.reason); });
    });
    const folders = [];
    const walk = async (dir) => {
      for await (const entry of Deno.readDir(dir)) {
        if (entry.isDirectory) await walk(dir + "/" + entry.name);
        else if (entry.name === "log.txt") folders.push(dir);
      }
    };
    await walk(ctx.workspace + "/data");
    for (const dir of folders) {
      const log = await Deno.readTextFile(dir + "/log.txt");
      await Deno.writeTextFile(dir + "/log.txt", log + p.id + "\\n");
      await Deno.mkdir(dir + "/out", { recursive: true });
      await Deno.writeTextFile(dir + "/out/" + p.id + ".txt", p.id);
    }
    return { id: p.id, folders: folders.length };
  },
});
`;
}

/** Where the stack runs: the demo servers in-process, or the real ones. */
export type { Servers };

/** Options of {@linkcode startWritersStack}. */
export interface WritersStackOptions {
  servers: Servers;
  /** Partitions seeded as `data/part=NN/log.txt` ("seed\n"). */
  partitions: number;
  /** retry.count of the writer. @default 3 */
  retries?: number;
  /** responseTimeoutSeconds of the writer. @default 60 */
  responseSeconds?: number;
  /**
   * Sees every request a worker sends to lakeFS before it is forwarded (the workers then reach
   * lakeFS through an {@linkcode startHttpGate}); e.g. to SIGKILL an executor at a phase.
   */
  lakefsHook?: (request: Request, peer: GatePeer) => void | Promise<void>;
}

/** What a partition holds at a ref. */
export interface PartitionContent {
  /** The lines of its `log.txt` after the seed line. */
  lines: string[];
  /** The ids of its `out/<id>.txt` files whose content is the id. */
  outs: string[];
}

/** A running stack; `await using` closes it when the scope ends (workers killed first). */
export interface WritersStack extends AsyncDisposable {
  /** "demo servers" or "real servers", for test names and tables. */
  label: string;
  real: boolean;
  dir: string;
  workspaceRoot: string;
  /** The writer's task type (unique per run). */
  taskName: string;
  modulePath: string;
  api: ConductorClient;
  /** A client of lakeFS itself (never through the gate). */
  lakefs: LakeFsClient;
  repo: string;
  seedCommit: string;
  env: Record<string, string>;
  /** `data/part=NN/` of partition `i`. */
  partition(i: number): string;
  /** Creates `branch` at the seed commit. */
  branchFromSeed(branch: string): Promise<void>;
  /** A writer's task input: `branch` at the seed commit, narrowed to `scope` when given. */
  input(branch: string, scope: string | undefined, params: Record<string, unknown>): {
    workspace: Record<string, string>;
    params: Record<string, unknown>;
  };
  /** Registers a workflow (its name is made unique: `<taskName>_<label>`); returns the name. */
  workflow(
    label: string,
    tasks: WorkflowTaskDef[],
    output?: Record<string, unknown>,
  ): Promise<string>;
  /** Spawns `perago start` with the writer, SIGKILLed when the stack closes if still running. */
  startWorker(args?: string[]): Worker;
  /**
   * A SIMPLE writer task with reference `ref` taking its `workspace` and `params` from
   * `${<from>.workspace}` and `${<from>.params}`. @default from "workflow.input"
   */
  writerTask(ref: string, from?: string): WorkflowTaskDef;
  /**
   * A FORK_JOIN_DYNAMIC `partitions` of the tasks and inputs in `workflow.input.tasks` and
   * `.inputs`, and its JOIN `partitions_join`.
   */
  dynamicForkTasks(): WorkflowTaskDef[];
  /** The dynamic fork's workflow input: a writer for each of `refs`, with `inputOf(i)`. */
  dynamicForkInput(refs: readonly string[], inputOf: (i: number) => unknown): {
    tasks: WorkflowTaskDef[];
    inputs: Record<string, unknown>;
  };
  /** Waits until every workflow is terminal; returns them in order. */
  waitAll(ids: readonly string[], timeoutMs: number): Promise<Workflow[]>;
  /** The content of partition `scope` at `ref`. */
  readPartition(ref: string, scope: string): Promise<PartitionContent>;
  /** For each partition, how many commits since the seed on `branch` change it. */
  commitsTouching(branch: string): Promise<Map<string, number>>;
  leftoverStaging(): Promise<string[]>;
  leftoverAttemptDirs(): Promise<string[]>;
  close(): Promise<void>;
}

/** Starts the servers (or reaches the real ones), seeds the repository, writes the task. */
export async function startWritersStack(options: WritersStackOptions): Promise<WritersStack> {
  const base = await TestStack.start({
    dirPrefix: "perago-writers-",
    servers: options.servers,
    lakefs: { accessKeyId: "AKIAWRITERS", secretAccessKey: `writers-${crypto.randomUUID()}` },
  });
  try {
    const dir = base.dir;
    const real = base.real;
    const lakefsTarget = base.lakefs;
    const repo = await base.createRepository("writers");
    let workerLakeFsUrl = lakefsTarget.url;
    if (options.lakefsHook) {
      const gate = startHttpGate(lakefsTarget.url, options.lakefsHook);
      base.defer(() => gate.close());
      workerLakeFsUrl = gate.url;
    }

    const lakefs = new LakeFsClient({
      endpointUrl: lakefsTarget.url,
      accessKeyId: lakefsTarget.accessKeyId,
      secretAccessKey: lakefsTarget.secretAccessKey,
    });
    const width = Math.max(2, String(options.partitions - 1).length);
    const partition = (i: number) => `data/part=${String(i).padStart(width, "0")}/`;
    const seedBytes = new TextEncoder().encode("seed\n");
    const paths = [
      ...Array.from({ length: options.partitions }, (_, i) => `${partition(i)}log.txt`),
      "other/readme.txt",
    ];
    await forEachConcurrent(paths, 8, async (path) => {
      await lakefs.uploadObject(repo, "main", path, () => Promise.resolve(seedBytes), {
        size: seedBytes.byteLength,
      });
    });
    const seedCommit = (await lakefs.commit(repo, "main", "seed partitions")).id;

    const taskName = `writers_${uniqueSuffix()}`;
    const modulePath = await base.writeModule(
      "tasks/writer.ts",
      partitionWriterSource(taskName, {
        retries: options.retries ?? 3,
        responseSeconds: options.responseSeconds ?? 60,
      }),
    );
    const api = new ConductorClient({ serverUrl: base.conductorUrl, requestTimeoutMs: 15_000 });
    await registerTaskModules(api, [modulePath]);
    const env = base.peragoEnv({ workerIdPrefix: "writers", lakefsUrl: workerLakeFsUrl });
    const workspaceRoot = env.PERAGO_WORKSPACE_ROOT!;

    const readText = async (ref: string, path: string) => {
      try {
        return await new Response(await lakefs.getObject(repo, ref, path)).text();
      } catch {
        return undefined;
      }
    };

    return {
      label: real ? "real servers" : "demo servers",
      real,
      dir,
      workspaceRoot,
      taskName,
      modulePath,
      api,
      lakefs,
      repo,
      seedCommit,
      env,
      partition,
      async branchFromSeed(branch) {
        await lakefs.createBranch(repo, branch, seedCommit);
      },
      input(branch, scope, params) {
        return {
          workspace: {
            repository: repo,
            branch,
            ref_type: "commit",
            ref: seedCommit,
            ...(scope === undefined ? {} : { prefix: scope }),
          },
          params,
        };
      },
      async workflow(label, tasks, output = {}) {
        const name = `${taskName}_${label}`;
        await api.upsertWorkflowDefs([{
          name,
          version: 1,
          schemaVersion: 2,
          ownerEmail: "writers@example.com",
          tasks,
          outputParameters: output,
        }]);
        return name;
      },
      writerTask: (ref, from = "workflow.input") => ({
        name: taskName,
        taskReferenceName: ref,
        type: "SIMPLE",
        inputParameters: {
          workspace: "${" + from + ".workspace}",
          params: "${" + from + ".params}",
        },
      }),
      dynamicForkTasks: () => dynamicForkAndJoin("partitions", "partitions_join"),
      dynamicForkInput: (refs, inputOf) => ({
        tasks: refs.map((ref) => ({ name: taskName, taskReferenceName: ref, type: "SIMPLE" })),
        inputs: Object.fromEntries(refs.map((ref, i) => [ref, inputOf(i)])),
      }),
      startWorker(args = []) {
        return base.spawnWorker([modulePath, ...args], { env, clearEnv: true });
      },
      waitAll: (ids, timeoutMs) =>
        waitAllTerminal(api, ids, {
          timeoutMs,
          intervalMs: 300,
          concurrency: 8,
          describeTask: (task) => `${task.referenceTaskName}:${task.status}`,
        }),
      async readPartition(ref, scope) {
        const log = (await readText(ref, `${scope}log.txt`)) ?? "";
        const lines = log.split("\n").filter((line) => line !== "" && line !== "seed");
        const outs: string[] = [];
        for await (const entry of lakefs.listObjects(repo, ref, { prefix: `${scope}out/` })) {
          if (entry.path_type !== "object") continue;
          const id = entry.path.slice(`${scope}out/`.length).replace(/\.txt$/, "");
          if ((await readText(ref, entry.path)) === id) outs.push(id);
        }
        return { lines, outs: outs.sort() };
      },
      async commitsTouching(branch) {
        const counts = new Map<string, number>();
        const head = (await lakefs.getBranch(repo, branch)).commit_id;
        const commits = [];
        for await (const commit of lakefs.logCommits(repo, head, { stopAt: seedCommit })) {
          if (commit.id === seedCommit) break;
          commits.push(commit);
        }
        await forEachConcurrent(commits, 8, async (commit) => {
          const parent = commit.parents[0];
          if (parent === undefined) return;
          const touched = new Set<string>();
          for await (const entry of lakefs.diffRefs(repo, parent, commit.id, { prefix: "data/" })) {
            const scope = entry.path.match(/^data\/part=\d+\//)?.[0];
            if (scope !== undefined) touched.add(scope);
          }
          for (const scope of touched) counts.set(scope, (counts.get(scope) ?? 0) + 1);
        });
        return counts;
      },
      async leftoverStaging() {
        const names: string[] = [];
        for await (const ref of lakefs.listBranches(repo, { prefix: "perago-staging-" })) {
          names.push(ref.id);
        }
        return names;
      },
      leftoverAttemptDirs: () => leftoverAttemptDirs(workspaceRoot),
      close: () => base.close(),
      [Symbol.asyncDispose]: () => base.close(),
    };
  } catch (error) {
    await base.close();
    throw error;
  }
}
