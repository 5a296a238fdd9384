// deno-lint-ignore-file no-console
/**
 * `deno task demo`: the main job out of the box. Starts the demo Conductor and lakeFS
 * servers on free loopback ports, seeds a repository, registers the example TaskDefs and a
 * workflow chaining them, runs `perago start` in process mode, shows progress, prints the
 * workflow output, then runs a second workflow whose FORK_JOIN has two writers of disjoint
 * scopes (csv_totals on `data/region=east/` and on `data/region=west/`) publish side by side
 * on one branch from one ref, prints both publications and the branch's commit log, and stops
 * everything (exit 0).
 *
 * Usage: deno task demo [--runs N] [--keep] [--conductor-url URL] [--lakefs-url URL] [--repo NAME]
 *
 * `--conductor-url` runs the same job against an external Conductor (for example a real
 * Conductor OSS server) instead of the embedded demo one; `--lakefs-url` against an external
 * lakeFS (keys from `LAKECTL_CREDENTIALS_ACCESS_KEY_ID` and
 * `LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY`; the repository, `--repo`, default "demo", must not
 * exist yet and is created with the storage namespace `local://<repo>`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath as fromFileUrl } from "node:url";
import { ConductorClient } from "../src/conductor/client.ts";
import type { Task, Workflow, WorkflowDef } from "../src/conductor/api.ts";
import { LakeFsClient } from "../src/lakefs/client.ts";
import { startConductorServer } from "../src/devstack/conductor/server.ts";
import { startLakeFsServer } from "../src/devstack/lakefs/server.ts";
import { DEMO_ACCESS_KEY_ID, DEMO_SECRET_ACCESS_KEY } from "../src/devstack/credentials.ts";
import { loadTask } from "../src/task/loader.ts";
import { buildTaskDef } from "../src/task/taskdef.ts";
import { sleep } from "../src/util/sleep.ts";
import { SAMPLE_FILES } from "../src/devstack/sample_files.ts";
import { seedSampleRepository } from "../src/cli/_seed.ts";
import { TOTALS_FILE } from "../examples/csv_totals.ts";

const ROOT = fromFileUrl(new URL("../", import.meta.url));
const MODULES = [
  "examples/normalize_text.ts",
  "examples/text_stats.ts",
  "examples/word_count.ts",
  "examples/csv_totals.ts",
];
const BRANCH = "main";
const WORKFLOW = "perago_demo";
const FORK_WORKFLOW = "perago_demo_partitions";
/** The forked writers of the second workflow: reference name -> scope. */
const PARTITIONS = { east: "data/region=east/", west: "data/region=west/" } as const;

const args = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "2" },
    keep: { type: "boolean", default: false },
    "conductor-url": { type: "string" },
    "lakefs-url": { type: "string" },
    repo: { type: "string", default: "demo" },
  },
});
const REPO = args.values.repo;
const runs = Number(args.values.runs);

function say(line: string) {
  console.log(line);
}

/** The servers the demo talks to: embedded demo ones unless URLs name external ones. */
interface DemoServers {
  conductorUrl: string;
  lakefsUrl: string;
  lakefsKeys: { accessKeyId: string; secretAccessKey: string };
  /** True when lakeFS is external (its repository's storage namespace is `local://<repo>`). */
  externalLakeFs: boolean;
  close(): Promise<void>;
}

async function startServers(): Promise<DemoServers> {
  const externalConductor = args.values["conductor-url"];
  const externalLakeFs = args.values["lakefs-url"];
  const lakefsKeys = externalLakeFs === undefined
    ? { accessKeyId: DEMO_ACCESS_KEY_ID, secretAccessKey: DEMO_SECRET_ACCESS_KEY }
    : {
      accessKeyId: Deno.env.get("LAKECTL_CREDENTIALS_ACCESS_KEY_ID") ?? "",
      secretAccessKey: Deno.env.get("LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY") ?? "",
    };
  if (lakefsKeys.accessKeyId === "" || lakefsKeys.secretAccessKey === "") {
    throw new Error(
      "--lakefs-url needs the lakeFS keys: set LAKECTL_CREDENTIALS_ACCESS_KEY_ID and " +
        "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
    );
  }
  const conductorServer = externalConductor === undefined
    ? await startConductorServer({ sweepIntervalMs: 500 })
    : undefined;
  const lakefsServer = externalLakeFs === undefined
    ? await startLakeFsServer(lakefsKeys)
    : undefined;
  return {
    conductorUrl: externalConductor ?? `${conductorServer!.url}/api`,
    lakefsUrl: externalLakeFs ?? lakefsServer!.url,
    lakefsKeys,
    externalLakeFs: externalLakeFs !== undefined,
    close: async () => {
      await Promise.allSettled([conductorServer?.close(), lakefsServer?.close()]);
    },
  };
}

async function main(): Promise<number> {
  const started = performance.now();
  const tempDir = await Deno.makeTempDir({ prefix: "perago-demo-" });
  const servers = await startServers();
  say(`demo stack: Conductor ${servers.conductorUrl}, lakeFS ${servers.lakefsUrl}`);
  const conductor = new ConductorClient({ serverUrl: servers.conductorUrl });
  const lakefs = new LakeFsClient({ endpointUrl: servers.lakefsUrl, ...servers.lakefsKeys });
  let worker: Deno.ChildProcess | undefined;
  let exitCode = 1;
  try {
    // 1. A repository with sample files, committed on main.
    const seeded = await seedSampleRepository(lakefs, {
      repo: REPO,
      branch: BRANCH,
      storageNamespace: servers.externalLakeFs
        ? `local://${REPO}`
        : `local://${tempDir}/lakefs-storage`,
    });
    say(`seeded lakeFS repository "${REPO}" with ${Object.keys(SAMPLE_FILES).length} files`);
    // 2. TaskDefs from the examples (what `perago extract` writes) and the workflows.
    await registerWorkflows(conductor);
    // 3. perago start, in process mode, as an operator would run it.
    const logFile = `${tempDir}/perago-start.log`;
    worker = await startPerago(servers, tempDir, logFile);
    say(`perago start: ${MODULES.length} task modules, 2 executors (log: ${logFile})`);
    // 4. Run the workflow (twice by default: the second run shows the no-op path).
    const ref = await runChain(conductor, worker, seeded.id, logFile);
    if (ref === undefined) return 1;
    // 5. Writers side by side: a FORK_JOIN of two csv_totals tasks on one branch, one ref.
    if (!await runPartitions(conductor, lakefs, worker, ref, logFile)) return 1;
    // 6. The branch's history: one commit per change, none for a no-op.
    await printHistory(lakefs);
    exitCode = 0;
    return 0;
  } finally {
    if (worker) {
      try {
        worker.kill("SIGTERM");
      } catch { /* already gone */ }
      const status = await worker.status;
      say(`\nperago start stopped (exit ${status.code})`);
    }
    await servers.close();
    if (!args.values.keep && exitCode === 0) {
      await Deno.remove(tempDir, { recursive: true }).catch(() => {});
    } else {
      say(`kept ${tempDir} (logs, workspaces)`);
    }
    say(`demo finished in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
}

/** Registers the examples' TaskDefs, the chained workflow and the partitions workflow. */
async function registerWorkflows(conductor: ConductorClient): Promise<void> {
  const names: string[] = [];
  for (const module of MODULES) {
    const { task } = await loadTask(`${ROOT}${module}`);
    const taskDef = buildTaskDef(task);
    // POST creates; a server that already has it (a second run, a shared server) takes PUT.
    await conductor.registerTaskDefs([taskDef]).catch(() => conductor.updateTaskDef(taskDef));
    names.push(task.name);
  }
  const [normalize, stats, words, totals] = names as [string, string, string, string];
  await conductor.upsertWorkflowDefs([
    chainWorkflow(normalize, stats, words),
    partitionsWorkflow(totals),
  ]);
  say(`registered ${names.length} TaskDefs and workflows "${WORKFLOW}", "${FORK_WORKFLOW}"`);
}

/** The chained workflow: normalize, then stats on its published ref, and words. */
function chainWorkflow(normalize: string, stats: string, words: string): WorkflowDef {
  return {
    name: WORKFLOW,
    version: 1,
    schemaVersion: 2,
    ownerEmail: "demo@perago.dev",
    tasks: [
      {
        name: normalize,
        taskReferenceName: "normalize",
        type: "SIMPLE",
        inputParameters: {
          workspace: {
            repository: "${workflow.input.repository}",
            branch: "${workflow.input.branch}",
            ref_type: "commit",
            ref: "${workflow.input.ref}",
          },
          params: {},
        },
      },
      {
        name: stats,
        taskReferenceName: "stats",
        type: "SIMPLE",
        inputParameters: { workspace: "${normalize.output.workspace}", params: {} },
      },
      {
        name: words,
        taskReferenceName: "words",
        type: "SIMPLE",
        inputParameters: { params: { text: "${workflow.input.greeting}" } },
      },
    ],
    outputParameters: {
      published: "${normalize.output.workspace.ref}",
      normalized: "${normalize.output.result}",
      stats: "${stats.output.result}",
      words: "${words.output.result}",
    },
  };
}

/**
 * Two writers of one task on one branch from one ref, each narrowed to its own partition
 * by workspace.prefix: disjoint scopes, so both publish whichever merges first.
 */
function partitionsWorkflow(totals: string): WorkflowDef {
  return {
    name: FORK_WORKFLOW,
    version: 1,
    schemaVersion: 2,
    ownerEmail: "demo@perago.dev",
    tasks: [
      {
        name: "partitions",
        taskReferenceName: "partitions",
        type: "FORK_JOIN",
        forkTasks: Object.entries(PARTITIONS).map(([ref, prefix]) => [{
          name: totals,
          taskReferenceName: ref,
          type: "SIMPLE",
          inputParameters: {
            workspace: {
              repository: "${workflow.input.repository}",
              branch: "${workflow.input.branch}",
              ref_type: "commit",
              ref: "${workflow.input.ref}",
              prefix,
            },
            params: {},
          },
        }]),
      },
      {
        name: "partitions_join",
        taskReferenceName: "partitions_join",
        type: "JOIN",
        joinOn: Object.keys(PARTITIONS),
      },
    ],
    outputParameters: Object.fromEntries(
      Object.keys(PARTITIONS).map((ref) => [ref, "${" + ref + ".output.workspace.ref}"]),
    ),
  };
}

/** `perago start` of the examples, its console appended to `logFile`. */
async function startPerago(
  servers: DemoServers,
  tempDir: string,
  logFile: string,
): Promise<Deno.ChildProcess> {
  const worker = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}main.ts`, "start", ...MODULES, "-j", "2"],
    cwd: ROOT,
    env: {
      CONDUCTOR_SERVER_URL: servers.conductorUrl,
      LAKECTL_SERVER_ENDPOINT_URL: servers.lakefsUrl,
      LAKECTL_CREDENTIALS_ACCESS_KEY_ID: servers.lakefsKeys.accessKeyId,
      LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: servers.lakefsKeys.secretAccessKey,
      PERAGO_WORKSPACE_ROOT: `${tempDir}/workspaces`,
      PERAGO_LOG_ROOT: `${tempDir}/logs`,
      PERAGO_EXECUTION_MODE: "process",
      NO_COLOR: "1",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // The worker's own console goes to a file: the demo shows progress, not log lines.
  for (const stream of [worker.stdout, worker.stderr]) {
    const file = await Deno.open(logFile, { create: true, append: true });
    void stream.pipeTo(file.writable).catch(() => {});
  }
  return worker;
}

/** Runs the chained workflow `runs` times; returns the last published ref (undefined: failed). */
async function runChain(
  conductor: ConductorClient,
  worker: Deno.ChildProcess,
  seeded: string,
  logFile: string,
): Promise<string | undefined> {
  let ref = seeded;
  for (let run = 1; run <= runs; run++) {
    const workflowId = await conductor.startWorkflow(WORKFLOW, {
      repository: REPO,
      branch: BRANCH,
      ref,
      greeting: "perago publishes only while it owns the task",
    });
    say(`\nworkflow run ${run}: ${workflowId}`);
    const workflow = await follow(conductor, workflowId, worker);
    say(`  status ${workflow.status}`);
    say(`  output ${JSON.stringify(workflow.output)}`);
    if (workflow.status !== "COMPLETED") {
      say(`  reason ${workflow.reasonForIncompletion ?? "(none)"}`);
      say(`  see ${logFile}`);
      return undefined;
    }
    ref = String((workflow.output as { published?: string }).published ?? ref);
  }
  return ref;
}

/** Runs the partitions workflow from `ref` and shows both publications; false: it failed. */
async function runPartitions(
  conductor: ConductorClient,
  lakefs: LakeFsClient,
  worker: Deno.ChildProcess,
  ref: string,
  logFile: string,
): Promise<boolean> {
  const forkId = await conductor.startWorkflow(FORK_WORKFLOW, {
    repository: REPO,
    branch: BRANCH,
    ref,
  });
  say(`\nworkflow ${FORK_WORKFLOW}: ${forkId}`);
  say(
    `  FORK_JOIN: csv_totals on ${Object.values(PARTITIONS).join(" and ")} of ` +
      `${REPO}/${BRANCH}, both from ${ref.slice(0, 12)}`,
  );
  const forked = await follow(conductor, forkId, worker);
  say(`  status ${forked.status}`);
  if (forked.status !== "COMPLETED") {
    say(`  reason ${forked.reasonForIncompletion ?? "(none)"}`);
    say(`  see ${logFile}`);
    return false;
  }
  for (const name of Object.keys(PARTITIONS)) {
    const published = String((forked.output as Record<string, unknown>)[name]);
    const parent = (await lakefs.getCommit(REPO, published)).parents[0] ?? "";
    const onto = parent === ref
      ? "the input ref"
      : "the other writer's commit: merged onto the moved head";
    say(
      `  publication ${name}: commit ${published.slice(0, 12)}, parent ${parent.slice(0, 12)} ` +
        `(${onto})`,
    );
  }
  const head = (await lakefs.getBranch(REPO, BRANCH)).commit_id;
  say(`  both partitions' totals at the head ${head.slice(0, 12)} of ${REPO}/${BRANCH}:`);
  for (const prefix of Object.values(PARTITIONS)) {
    const path = `${prefix}${TOTALS_FILE}`;
    const text = await new Response(await lakefs.getObject(REPO, head, path)).text();
    say(`    ${path} ${JSON.stringify(JSON.parse(text))}`);
  }
  return true;
}

/** Prints the last ten commits of the branch. */
async function printHistory(lakefs: LakeFsClient): Promise<void> {
  say(`\ncommit log of ${REPO}/${BRANCH}:`);
  let commitId: string | undefined = (await lakefs.getBranch(REPO, BRANCH)).commit_id;
  for (let i = 0; commitId && i < 10; i++) {
    const commit = await lakefs.getCommit(REPO, commitId);
    say(`  ${commit.id.slice(0, 12)}  ${commit.message}`);
    commitId = commit.parents[0];
  }
}

/** Follows a workflow to its end, printing each task once it finishes. */
async function follow(
  conductor: ConductorClient,
  workflowId: string,
  worker: Deno.ChildProcess,
): Promise<Workflow> {
  const shown = new Set<string>();
  let exited = false;
  worker.status.then(() => exited = true);
  const deadline = Date.now() + 120_000;
  while (true) {
    const workflow = await conductor.getWorkflow(workflowId);
    for (const task of workflow.tasks) {
      if (shown.has(task.taskId) || !isDone(task)) continue;
      shown.add(task.taskId);
      say(`  ${describeTask(task)}`);
    }
    if (workflow.status !== "RUNNING") return workflow;
    if (exited) throw new Error("perago start exited while the workflow was running");
    if (Date.now() > deadline) throw new Error(`workflow ${workflowId} did not finish in 120 s`);
    await sleep(200);
  }
}

function isDone(task: Task): boolean {
  return !["SCHEDULED", "IN_PROGRESS"].includes(task.status);
}

function describeTask(task: Task): string {
  if (task.taskType === "FORK") return `${task.referenceTaskName.padEnd(10)} FORK ${task.status}`;
  if (task.taskType === "JOIN") {
    const joined = Object.keys(task.outputData ?? {}).join(", ");
    return `${task.referenceTaskName.padEnd(10)} JOIN ${task.status} (joined ${joined})`;
  }
  const ms = (task.endTime ?? 0) - (task.startTime ?? 0);
  const output = task.outputData ?? {};
  const result = (output.result ?? {}) as Record<string, unknown>;
  const workspace = output.workspace as { ref?: string } | undefined;
  const scope = (task.inputData.workspace as { prefix?: string } | undefined)?.prefix;
  const changed = typeof result.filesNormalized === "number"
    ? `, ${result.filesNormalized} files changed`
    : typeof result.written === "number"
    ? `, scope ${scope}, ${result.written} totals written`
    : "";
  const ref = workspace?.ref ? `, commit ${workspace.ref.slice(0, 12)}` : "";
  const reason = task.reasonForIncompletion ? `: ${task.reasonForIncompletion}` : "";
  return `${task.referenceTaskName.padEnd(10)} attempt ${task.retryCount + 1}  ${task.status}` +
    ` in ${ms} ms${changed}${ref}${reason}`;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
