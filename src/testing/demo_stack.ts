/**
 * `withDemoStack`: integration tests of task modules without external servers. The demo
 * Conductor and demo lakeFS run in the test's own process on loopback ports; a repository is
 * seeded from a map of files; workflows of task modules run through a real `perago start`
 * (thread mode) child process; everything is stopped and removed afterwards.
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { CONFIG_ENV_VARS } from "../config/config.ts";
import type { Workflow, WorkflowDef, WorkflowStatus, WorkflowTaskDef } from "../conductor/api.ts";
import { ConductorClient } from "../conductor/client.ts";
import { startConductorServer } from "../devstack/conductor/server.ts";
import { DEMO_ACCESS_KEY_ID, DEMO_SECRET_ACCESS_KEY } from "../devstack/credentials.ts";
import { startLakeFsServer } from "../devstack/lakefs/server.ts";
import type { LakeFsApi } from "../lakefs/api.ts";
import { LakeFsClient } from "../lakefs/client.ts";
import { LakeFsNotFoundError } from "../lakefs/errors.ts";
import { loadTask } from "../task/loader.ts";
import { buildTaskDef } from "../task/taskdef.ts";
import type { TaskDefinition } from "../task/types.ts";
import { sleep } from "../util/sleep.ts";
import type { FileContent } from "./memory_lakefs.ts";

const MAIN = new URL("../../main.ts", import.meta.url);
const PERAGO_CONFIG = new URL("../../deno.json", import.meta.url);
/** How long `perago start` may take to drain after SIGTERM before it is killed. */
const STOP_DEADLINE_MS = 20_000;
const TERMINAL: ReadonlySet<WorkflowStatus> = new Set([
  "COMPLETED",
  "FAILED",
  "TIMED_OUT",
  "TERMINATED",
]);

/** Options of {@linkcode withDemoStack}. */
export interface DemoStackOptions {
  /** The repository's files, committed on `branch` before `fn` runs. @default {} */
  files?: Readonly<Record<string, FileContent>>;
  /** Repository name (lakeFS rule: `^[a-z0-9][a-z0-9-]{2,62}$`). @default "perago-test" */
  repository?: string;
  /** @default "main" */
  branch?: string;
  /**
   * The `deno.json` that `perago start` runs with (its import map must resolve your task
   * modules' imports). @default the first `deno.json`/`deno.jsonc` from the working directory
   * upwards, else perago's own
   */
  config?: string;
}

/** Options of {@linkcode DemoStack.runWorkflow}. */
export interface RunWorkflowOptions {
  /** Each task's `params`, by task name. @default {} for every task */
  params?: Readonly<Record<string, unknown>>;
  /** Executors (`perago start -j`). @default 1 */
  concurrency?: number;
  /** Deadline for the workflow to end, in ms. @default 60_000 */
  timeoutMs?: number;
}

/** One task of a workflow run as Conductor reports it (retries are separate entries). */
export interface WorkflowTaskRun {
  /** The task's name (TaskDef). */
  name: string;
  referenceName: string;
  status: string;
  retryCount: number;
  reason: string | undefined;
  output: Record<string, unknown> | undefined;
}

/** What {@linkcode DemoStack.runWorkflow} saw. */
export interface WorkflowRun {
  workflowId: string;
  status: WorkflowStatus;
  /** The workflow output: each task's output by reference name. */
  output: Record<string, unknown>;
  reason: string | undefined;
  tasks: WorkflowTaskRun[];
  /** What `perago start` printed (for failure messages). */
  log: string;
}

/** The running stack handed to the function of {@linkcode withDemoStack}. */
export interface DemoStack {
  /**
   * The settings a worker needs, as `perago dev` prints them: `CONDUCTOR_SERVER_URL`,
   * `LAKECTL_SERVER_ENDPOINT_URL`, `LAKECTL_CREDENTIALS_ACCESS_KEY_ID`,
   * `LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY`.
   */
  readonly env: Readonly<Record<string, string>>;
  /** {@linkcode DemoStack.env} as `.env` lines. */
  readonly envText: string;
  readonly repository: string;
  readonly branch: string;
  /** The seed commit (the branch's head before any workflow). */
  readonly seedCommit: string;
  /** A lakeFS client of the demo lakeFS. */
  readonly lakefs: LakeFsApi;
  /** A Conductor client of the demo Conductor. */
  readonly conductor: ConductorClient;
  /**
   * Registers the TaskDefs of `modules` (paths relative to the working directory, or `file:`
   * URLs) and a workflow running them in order (each workspace task on the branch as the
   * previous one published it), starts `perago start --execution-mode thread` for them,
   * runs the workflow to its end, stops perago and returns what Conductor reports.
   */
  runWorkflow(
    modules: readonly (string | URL)[],
    options?: RunWorkflowOptions,
  ): Promise<WorkflowRun>;
  /** A file of the branch (or `ref`) as UTF-8 text; `undefined` when missing. */
  read(path: string, ref?: string): Promise<string | undefined>;
  /** A file of the branch (or `ref`) as bytes; `undefined` when missing. */
  readBytes(path: string, ref?: string): Promise<Uint8Array | undefined>;
  /** File paths of the branch (or `ref`) under `prefix`, sorted. */
  list(prefix?: string, ref?: string): Promise<string[]>;
}

/** Finds the deno.json a `deno test` in `dir` uses: the nearest one upwards. */
function findConfig(dir: string): string | undefined {
  for (let current = resolve(dir);; current = dirname(current)) {
    for (const name of ["deno.json", "deno.jsonc"]) {
      const path = join(current, name);
      try {
        if (Deno.statSync(path).isFile) return path;
      } catch {
        // not here
      }
    }
    if (dirname(current) === current) return undefined;
  }
}

function modulePath(module: string | URL): string {
  const text = module instanceof URL ? module.href : module;
  return text.startsWith("file:") ? fromFileUrl(text) : resolve(text);
}

/** A running `perago start` with its output collected. */
interface PeragoProcess {
  output(): string;
  exited: Promise<Deno.CommandStatus>;
  stop(): Promise<void>;
}

function spawnPerago(
  modules: readonly string[],
  options: { concurrency: number; config: string; cwd: string; env: Record<string, string> },
): PeragoProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-worker-options",
      "--config",
      options.config,
      fromFileUrl(MAIN),
      "start",
      ...modules,
      "--execution-mode",
      "thread",
      "-j",
      String(options.concurrency),
    ],
    cwd: options.cwd,
    env: options.env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const decoder = new TextDecoder();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  };
  const exited = Promise.all([pump(child.stdout), pump(child.stderr)]).then(() => child.status);
  const kill = (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  };
  return {
    output: () => text,
    exited,
    async stop() {
      // SIGTERM drains (running attempts finish and report); SIGKILL after a deadline.
      kill("SIGTERM");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<"late">((resolve) => {
        timer = setTimeout(() => resolve("late"), STOP_DEADLINE_MS);
      });
      try {
        if (await Promise.race([exited, late]) === "late") kill("SIGKILL");
        await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** The environment of `perago start`: this one without perago's variables, plus `extra`. */
function childEnv(extra: Record<string, string>): Record<string, string> {
  const drop = new Set(CONFIG_ENV_VARS.filter((name) => !["TMPDIR", "TMP", "TEMP"].includes(name)));
  const env = Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([name]) => !drop.has(name)),
  );
  return { ...env, ...extra };
}

function workflowDef(name: string, tasks: readonly TaskDefinition[]): WorkflowDef {
  const references = tasks.map((task, i) =>
    tasks.findIndex((other) => other.name === task.name) === i ? task.name : `${task.name}_${i}`
  );
  let previousWorkspace: string | undefined;
  const steps = tasks.map((task, i): WorkflowTaskDef => {
    const reference = references[i]!;
    const params = `\${workflow.input.params_${i}}`;
    if (task.workspace === undefined) {
      return {
        name: task.name,
        taskReferenceName: reference,
        type: "SIMPLE",
        inputParameters: { params },
      };
    }
    const workspace = previousWorkspace ?? {
      repository: "${workflow.input.repository}",
      branch: "${workflow.input.branch}",
      ref_type: "commit",
      ref: "${workflow.input.ref}",
    };
    previousWorkspace = `\${${reference}.output.workspace}`;
    return {
      name: task.name,
      taskReferenceName: reference,
      type: "SIMPLE",
      inputParameters: { workspace, params },
    };
  });
  return {
    name,
    version: 1,
    schemaVersion: 2,
    ownerEmail: tasks[0]!.ownerEmail,
    description: "perago/testing workflow",
    tasks: steps,
    outputParameters: Object.fromEntries(
      references.map((reference) => [reference, `\${${reference}.output}`]),
    ),
  };
}

let workflowSeq = 0;

/**
 * Starts the demo Conductor and demo lakeFS on loopback ports in this process, seeds a
 * repository from `files`, runs `fn` with the {@linkcode DemoStack}, then stops both servers
 * and removes every temporary directory, also when `fn` throws. Nothing is left running:
 * `deno test`'s sanitizers pass.
 *
 * Requires `--allow-net` (loopback), `--allow-read`/`--allow-write` (temporary directories,
 * task modules), `--allow-run` (`perago start` as a child `deno` process) and `--allow-env`
 * (passed on to that child); `-A` covers them.
 *
 * @example
 * ```ts ignore
 * import assert from "node:assert/strict";
 * import { withDemoStack } from "perago/testing";
 *
 * // tasks/normalize.ts and tasks/stats.ts are your task modules.
 * Deno.test("normalize then count", async () => {
 *   await withDemoStack(async (stack) => {
 *     const run = await stack.runWorkflow(["tasks/normalize.ts", "tasks/stats.ts"]);
 *     assert.equal(run.status, "COMPLETED", run.log);
 *     assert.equal(await stack.read("docs/a.txt"), "a\n");
 *   }, { files: { "docs/a.txt": "a  \r\n" } });
 * });
 * ```
 */
export async function withDemoStack<T>(
  fn: (stack: DemoStack) => Promise<T>,
  options: DemoStackOptions = {},
): Promise<T> {
  const repository = options.repository ?? "perago-test";
  const branch = options.branch ?? "main";
  const config = options.config ?? findConfig(Deno.cwd()) ?? fromFileUrl(PERAGO_CONFIG);
  const dir = await Deno.makeTempDir({ prefix: "perago-demo-stack-" });
  const stops: (() => Promise<void>)[] = [
    () => Deno.remove(dir, { recursive: true }).catch(() => {}),
  ];
  try {
    const conductorServer = await startConductorServer({ port: 0, sweepIntervalMs: 200 });
    stops.push(() => conductorServer.close());
    const lakefsServer = await startLakeFsServer({
      port: 0,
      accessKeyId: DEMO_ACCESS_KEY_ID,
      secretAccessKey: DEMO_SECRET_ACCESS_KEY,
    });
    stops.push(() => lakefsServer.close());
    const env = {
      CONDUCTOR_SERVER_URL: `${conductorServer.url}/api`,
      LAKECTL_SERVER_ENDPOINT_URL: lakefsServer.url,
      LAKECTL_CREDENTIALS_ACCESS_KEY_ID: DEMO_ACCESS_KEY_ID,
      LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: DEMO_SECRET_ACCESS_KEY,
    };
    const lakefs = new LakeFsClient({
      endpointUrl: lakefsServer.url,
      accessKeyId: DEMO_ACCESS_KEY_ID,
      secretAccessKey: DEMO_SECRET_ACCESS_KEY,
    });
    const conductor = new ConductorClient({ serverUrl: conductorServer.url });
    const seedCommit = await seed(lakefs, repository, branch, options.files ?? {});

    const stack: DemoStack = {
      env,
      envText: Object.entries(env).map(([name, value]) => `${name}=${value}\n`).join(""),
      repository,
      branch,
      seedCommit,
      lakefs,
      conductor,
      runWorkflow: (modules, runOptions = {}) =>
        runWorkflow({
          modules,
          options: runOptions,
          conductor,
          lakefs,
          repository,
          branch,
          config,
          dir,
          env,
        }),
      ...branchReader(lakefs, repository, branch),
    };
    return await fn(stack);
  } finally {
    for (const stop of stops.reverse()) await stop();
  }
}

/** The reading side of a {@linkcode DemoStack}: files of `branch` (or another ref). */
function branchReader(
  lakefs: LakeFsClient,
  repository: string,
  branch: string,
): Pick<DemoStack, "readBytes" | "read" | "list"> {
  const readBytes = async (path: string, ref = branch) => {
    let body: ReadableStream<Uint8Array>;
    try {
      body = await lakefs.getObject(repository, ref, path);
    } catch (error) {
      if (error instanceof LakeFsNotFoundError) return undefined;
      throw error;
    }
    return new Uint8Array(await new Response(body).arrayBuffer());
  };
  return {
    readBytes,
    async read(path, ref) {
      const bytes = await readBytes(path, ref);
      return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
    },
    async list(prefix = "", ref = branch) {
      const paths: string[] = [];
      for await (const entry of lakefs.listObjects(repository, ref, { prefix })) {
        if (entry.path_type === "object") paths.push(entry.path);
      }
      return paths.sort((a, b) => a < b ? -1 : a > b ? 1 : 0);
    },
  };
}

async function seed(
  lakefs: LakeFsApi,
  repository: string,
  branch: string,
  files: Readonly<Record<string, FileContent>>,
): Promise<string> {
  await lakefs.createRepository(repository, `local://${repository}`, branch);
  for (const [path, content] of Object.entries(files)) {
    const bytes = typeof content === "string" ? new TextEncoder().encode(content) : content;
    await lakefs.uploadObject(repository, branch, path, () => Promise.resolve(bytes), {
      size: bytes.byteLength,
    });
  }
  const commit = await lakefs.commit(repository, branch, "seed files", { allowEmpty: true });
  return commit.id;
}

async function runWorkflow(context: {
  modules: readonly (string | URL)[];
  options: RunWorkflowOptions;
  conductor: ConductorClient;
  lakefs: LakeFsApi;
  repository: string;
  branch: string;
  config: string;
  dir: string;
  env: Record<string, string>;
}): Promise<WorkflowRun> {
  const { modules, options, conductor } = context;
  if (modules.length === 0) throw new TypeError("runWorkflow: give at least one task module");
  const concurrency = options.concurrency ?? 1;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(
      `runWorkflow: concurrency must be a whole number >= 1 (got ${concurrency})`,
    );
  }
  const { tasks, served, name, run } = await registerWorkflow(conductor, modules);

  const cwd = join(context.dir, `run-${run}`);
  await Deno.mkdir(cwd, { recursive: true });
  const perago = spawnPerago(served, {
    concurrency,
    config: context.config,
    cwd,
    env: childEnv({
      ...context.env,
      PERAGO_WORKSPACE_ROOT: join(cwd, "workspaces"),
      PERAGO_LOG_ROOT: join(cwd, "logs"),
      PERAGO_WORKER_ID_PREFIX: "test",
      NO_COLOR: "1",
    }),
  });
  let exitedEarly = false;
  perago.exited.then(() => exitedEarly = true);
  try {
    const head = await context.lakefs.getBranch(context.repository, context.branch);
    const input: Record<string, unknown> = {
      repository: context.repository,
      branch: context.branch,
      ref: head.commit_id,
    };
    tasks.forEach((task, i) => input[`params_${i}`] = options.params?.[task.name] ?? {});
    const workflowId = await conductor.startWorkflow(name, input);
    const workflow = await waitForWorkflow(
      conductor,
      workflowId,
      options.timeoutMs ?? 60_000,
      { output: () => perago.output(), exited: () => exitedEarly },
    );
    await perago.stop(); // before reading its output: the drain lines come last
    return workflowRun(workflowId, workflow, perago.output());
  } finally {
    await perago.stop();
  }
}

/** Registers the modules' TaskDefs and a workflow running their tasks in order. */
async function registerWorkflow(conductor: ConductorClient, modules: readonly (string | URL)[]) {
  const paths = modules.map(modulePath);
  const tasks: TaskDefinition[] = [];
  for (const path of paths) tasks.push((await loadTask(path)).task);
  // A module listed twice is served once; the workflow still runs it twice.
  const served = [...new Set(paths)];
  await conductor.registerTaskDefs(
    [...new Map(tasks.map((task) => [task.name, buildTaskDef(task)])).values()],
  );
  const run = ++workflowSeq;
  const name = `perago_test_${Deno.pid}_${run}`;
  await conductor.upsertWorkflowDefs([workflowDef(name, tasks)]);
  return { tasks, served, name, run };
}

/** Polls the workflow until it ends; fails when perago stopped first or the time is up. */
async function waitForWorkflow(
  conductor: ConductorClient,
  workflowId: string,
  timeoutMs: number,
  perago: { output(): string; exited(): boolean },
): Promise<Workflow> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const workflow = await conductor.getWorkflow(workflowId);
    if (TERMINAL.has(workflow.status)) return workflow;
    if (perago.exited()) {
      throw new Error(
        `runWorkflow: perago start exited before workflow ${workflowId} ended:\n` +
          perago.output(),
      );
    }
    if (Date.now() > deadline) {
      throw new Error(
        `runWorkflow: workflow ${workflowId} still ${workflow.status} after ${timeoutMs} ms; ` +
          `raise timeoutMs or check the tasks. perago start printed:\n${perago.output()}`,
      );
    }
    await sleep(50);
  }
}

/** What {@linkcode DemoStack.runWorkflow} tells about an ended workflow. */
function workflowRun(workflowId: string, workflow: Workflow, log: string): WorkflowRun {
  return {
    workflowId,
    status: workflow.status,
    output: workflow.output ?? {},
    reason: workflow.reasonForIncompletion,
    tasks: workflow.tasks.map((task) => ({
      name: task.taskDefName,
      referenceName: task.referenceTaskName,
      status: task.status,
      retryCount: task.retryCount,
      reason: task.reasonForIncompletion,
      output: task.outputData,
    })),
    log,
  };
}
