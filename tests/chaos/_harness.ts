/**
 * Chaos harness: the demo Conductor and lakeFS in-process (with their fault switches), or the
 * real servers (`servers` option: a real Conductor and a real lakeFS behind a fault-injecting
 * loopback proxy), a writable chaos task module in a temp dir, `deno run -A main.ts start` as
 * real child processes, and the checks and counts every scenario reports.
 *
 * The chaos task appends `<id>` to `data/log.txt` and writes `data/out/<id>.txt` on its own
 * branch `t-<id>`, so "published exactly once" is checkable: the branch head is one commit
 * on top of the seed commit and the line is in the file once.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ConductorClient } from "../../src/conductor/client.ts";
import type { Workflow } from "../../src/conductor/api.ts";
import type { ConductorServerHandle } from "../../src/devstack/conductor/server.ts";
import { FaultInjector } from "../../src/devstack/faults.ts";
import type { LakeFsServerHandle } from "../../src/devstack/lakefs/server.ts";
import { LakeFsClient } from "../../src/lakefs/client.ts";
import { stopWorker as stopPerago, type Worker } from "../_perago_process.ts";
import type { RealConductor, RealLakeFs } from "../_real_servers.ts";
import { oneTaskWorkflow, registerTaskModules, TestStack, waitAllTerminal } from "../_stack.ts";
import { leftoverAttemptDirs as leftoverEntries } from "../_workspace_root.ts";
import { waitFor } from "../../src/util/sleep.ts";

const MOD = new URL("../../mod.ts", import.meta.url).href;

/** The repository every chaos scenario writes to on the demo lakeFS (`stack.repo`). */
export const REPO = "chaos";
/** Terminal workflow states. */
export { TERMINAL } from "../_stack.ts";

/** The chaos task module's source. */
export function chaosTaskSource(
  name: string,
  options: { responseSeconds: number; retries: number; timeoutSeconds?: number },
): string {
  return `
import { defineTask, z } from "${MOD}";
export default defineTask({
  name: "${name}",
  ownerEmail: "chaos@example.com",
  description: "chaos test task: appends its id to data/log.txt",
  params: z.object({
    id: z.string().max(100),
    sleepMs: z.number().int().min(0).optional(),
    sleepOnlyFirst: z.boolean().optional(),
    gate: z.string().optional(),
    mode: z.enum(["ok", "hang", "oom", "symlink", "throw", "escape"]).optional(),
    blob: z.string().optional(),
  }),
  result: z.object({ id: z.string(), lines: z.number() }),
  workspace: { prefix: "data/" },
  controls: {
    retry: { count: ${options.retries}, logic: "FIXED", delaySeconds: 0 },
    timeout: {
      responseSeconds: ${options.responseSeconds},
      seconds: ${options.timeoutSeconds ?? 0},
      policy: "RETRY",
    },
  },
  async run(p, ctx) {
    const first = ctx.attempt.retryCount === 0;
    const wait = (ms) => new Promise((resolve, reject) => {
      const t = setTimeout(resolve, ms);
      ctx.signal.addEventListener("abort", () => { clearTimeout(t); reject(ctx.signal.reason); });
    });
    if (p.sleepMs && !(p.sleepOnlyFirst && !first)) await wait(p.sleepMs);
    // The first attempt waits until the test creates the file at p.gate (beside the module,
    // which executors may read).
    while (p.gate && first && !(await Deno.stat(p.gate).then(() => true, () => false))) {
      await wait(50);
    }
    if (p.mode === "hang" && first) {
      // Never returns on its own; honours ctx.signal (aborted at timeout.seconds).
      await new Promise((_, reject) =>
        ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)));
    }
    if (p.mode === "oom" && first) {
      const hog = [];
      for (;;) hog.push(new Array(1_000_000).fill(Math.random()));
    }
    if (p.mode === "throw") throw new Error("chaos task asked to throw");
    if (p.mode === "escape") await Deno.writeTextFile(ctx.workspace + "/../escape.txt", "x");
    const dir = ctx.workspace + "/data";
    await Deno.mkdir(dir + "/out", { recursive: true });
    if (p.mode === "symlink") await Deno.symlink("/etc/passwd", dir + "/link");
    const log = await Deno.readTextFile(dir + "/log.txt").catch(() => "");
    await Deno.writeTextFile(dir + "/log.txt", log + p.id + "\\n");
    await Deno.writeTextFile(dir + "/out/" + p.id + ".txt", p.id);
    return { id: p.id, lines: (log + p.id + "\\n").split("\\n").length - 1 };
  },
});
`;
}

/** Options of {@linkcode startChaosStack}. */
export interface ChaosStackOptions {
  /** responseTimeoutSeconds of the chaos task. @default 30 */
  responseSeconds?: number;
  /** retry.count of the chaos task. @default 10 */
  retries?: number;
  /** timeout.seconds of the chaos task. @default 0 */
  timeoutSeconds?: number;
  /** The demo Conductor's sweeper period. @default 200 */
  sweepIntervalMs?: number;
  /**
   * Fault injector of lakeFS (e.g. one that kills executors): the demo server's, or the
   * proxy's in front of a real lakeFS.
   */
  lakefsFaults?: FaultInjector;
  /**
   * Fault injector of Conductor: the demo server's, or the proxy's in front of a real one
   * (which every client of the scenario then goes through).
   */
  conductorFaults?: FaultInjector;
  /**
   * Real servers to use instead of the demo ones (from `tests/_real_servers.ts`): names are
   * made unique per run, lakeFS is reached through a fault-injecting loopback proxy.
   */
  servers?: { conductor: RealConductor; lakefs: RealLakeFs };
}

/** A workspace-free task (no fence, no lakeFS): sleeps, then returns its id. */
export function freeTaskSource(name: string, responseSeconds: number): string {
  return `
import { defineTask, z } from "${MOD}";
export default defineTask({
  name: "${name}",
  ownerEmail: "chaos@example.com",
  description: "chaos test task without a workspace",
  params: z.object({ id: z.string(), sleepMs: z.number().int().min(0).optional() }),
  result: z.object({ id: z.string() }),
  controls: {
    retry: { count: 3, logic: "FIXED", delaySeconds: 0 },
    timeout: { responseSeconds: ${responseSeconds}, seconds: 0 },
  },
  async run(p, ctx) {
    if (p.sleepMs) await new Promise((resolve, reject) => {
      const t = setTimeout(resolve, p.sleepMs);
      ctx.signal.addEventListener("abort", () => { clearTimeout(t); reject(ctx.signal.reason); });
    });
    return { id: p.id };
  },
});
`;
}

/** A running chaos stack; `await using` closes it when the scope ends. */
export interface ChaosStack extends AsyncDisposable {
  dir: string;
  workspaceRoot: string;
  logRoot: string;
  modulePath: string;
  /** The workspace-free task's module (served by every worker too). */
  freeModulePath: string;
  taskName: string;
  /** Whether the stack runs on real servers. */
  real: boolean;
  /** The demo Conductor (undefined on real servers). */
  conductor: ConductorServerHandle | undefined;
  /** The demo lakeFS (undefined on real servers). */
  lakefsServer: LakeFsServerHandle | undefined;
  /** The repository the tasks write to. */
  repo: string;
  api: ConductorClient;
  lakefs: LakeFsClient;
  /** The per-run lakeFS secret and fake Conductor secret (must never be logged). */
  secrets: string[];
  env: Record<string, string>;
  seedCommit: string;
  /** Creates branch `t-<id>` from the seed and starts a workflow on it. */
  startTask(
    id: string,
    params?: Record<string, unknown>,
    options?: { ref?: string; branchExists?: boolean },
  ): Promise<string>;
  /** Creates branch `t-<id>` from the seed with extra objects committed; returns the commit. */
  branchWith(id: string, files: Record<string, string>): Promise<string>;
  /** Starts a workflow of the workspace-free task. */
  startFree(id: string, params?: Record<string, unknown>): Promise<string>;
  /** Waits until every workflow is terminal; returns them. */
  waitAll(ids: readonly string[], timeoutMs: number): Promise<Workflow[]>;
  /**
   * Starts `perago start <module> <free module> ...args` in the stack's dir, killed when the
   * stack closes if still running.
   */
  startWorker(args?: string[], env?: Record<string, string>): Worker;
  close(): Promise<void>;
}

/**
 * Starts the demo servers (or takes the real ones), writes and registers the chaos task,
 * seeds the repository.
 */
export async function startChaosStack(options: ChaosStackOptions = {}): Promise<ChaosStack> {
  const real = options.servers;
  const base = await TestStack.start({
    dirPrefix: "perago-chaos-",
    servers: real ?? "demo",
    conductor: {
      sweepIntervalMs: options.sweepIntervalMs ?? 200,
      ...(options.conductorFaults ? { faults: options.conductorFaults } : {}),
    },
    lakefs: {
      accessKeyId: "AKIACHAOS",
      secretAccessKey: `chaos-lakefs-secret-${crypto.randomUUID()}`,
      // Behind a fault-injecting proxy on the real servers, even without faults.
      faults: options.lakefsFaults ?? new FaultInjector(),
    },
  });
  // Faults off before anything closes, however the test ends.
  base.defer(() => {
    options.lakefsFaults?.reset();
    options.conductorFaults?.reset();
  });
  try {
    return await chaosStackOn(base, options);
  } catch (error) {
    await base.close();
    throw error;
  }
}

async function chaosStackOn(base: TestStack, options: ChaosStackOptions): Promise<ChaosStack> {
  // A real Conductor OSS has no token endpoint: no Conductor credentials there.
  const conductorSecret = base.real ? undefined : `chaos-conductor-secret-${crypto.randomUUID()}`;
  const taskName = base.uniqueName("chaos");
  const modulePath = await base.writeModule(
    "tasks/chaos.ts",
    chaosTaskSource(taskName, {
      responseSeconds: options.responseSeconds ?? 30,
      retries: options.retries ?? 10,
      ...(options.timeoutSeconds ? { timeoutSeconds: options.timeoutSeconds } : {}),
    }),
  );
  const freeModulePath = await base.writeModule(
    "tasks/free.ts",
    freeTaskSource(`${taskName}_free`, options.responseSeconds ?? 30),
  );
  const api = new ConductorClient({ serverUrl: base.conductorUrl });
  await registerTaskModules(api, [modulePath, freeModulePath]);
  await api.upsertWorkflowDefs([oneTaskWorkflow(
    `${taskName}_free_wf`,
    { taskName: `${taskName}_free`, ref: "free", inputs: { params: "${workflow.input.params}" } },
    { result: "${free.output.result}" },
    "chaos@example.com",
  )]);
  await api.upsertWorkflowDefs([oneTaskWorkflow(
    `${taskName}_wf`,
    {
      taskName,
      ref: "chaos",
      inputs: { workspace: "${workflow.input.workspace}", params: "${workflow.input.params}" },
    },
    { workspace: "${chaos.output.workspace}", result: "${chaos.output.result}" },
    "chaos@example.com",
  )]);
  const lakefs = new LakeFsClient({
    endpointUrl: base.lakefs.url,
    accessKeyId: base.lakefs.accessKeyId,
    secretAccessKey: base.lakefs.secretAccessKey,
  });
  const repo = await base.createRepository("chaos", base.real ? {} : { name: REPO });
  await lakefs.uploadObject(
    repo,
    "main",
    "data/log.txt",
    () => Promise.resolve(new TextEncoder().encode("seed\n")),
  );
  const seedCommit = (await lakefs.commit(repo, "main", "seed")).id;
  const env = base.peragoEnv({
    workerIdPrefix: "chaos",
    ...(conductorSecret === undefined
      ? {}
      : { extra: { CONDUCTOR_AUTH_KEY: "chaos-key-id", CONDUCTOR_AUTH_SECRET: conductorSecret } }),
  });
  const secretAccessKey = base.lakefs.secretAccessKey;
  return {
    dir: base.dir,
    workspaceRoot: env.PERAGO_WORKSPACE_ROOT!,
    logRoot: env.PERAGO_LOG_ROOT!,
    modulePath,
    freeModulePath,
    taskName,
    real: base.real,
    conductor: base.conductorServer,
    lakefsServer: base.lakefsServer,
    repo,
    api,
    lakefs,
    secrets: conductorSecret === undefined ? [secretAccessKey] : [secretAccessKey, conductorSecret],
    env,
    seedCommit,
    async startTask(id, params = {}, options = {}) {
      const branch = `t-${id}`;
      if (!options.branchExists) await lakefs.createBranch(repo, branch, seedCommit);
      return await api.startWorkflow(`${taskName}_wf`, {
        workspace: { repository: repo, branch, ref_type: "commit", ref: options.ref ?? seedCommit },
        params: { id, ...params },
      });
    },
    async branchWith(id, files) {
      const branch = `t-${id}`;
      await lakefs.createBranch(repo, branch, seedCommit);
      for (const [path, text] of Object.entries(files)) {
        await lakefs.uploadObject(
          repo,
          branch,
          path,
          () => Promise.resolve(new TextEncoder().encode(text)),
        );
      }
      return (await lakefs.commit(repo, branch, `objects for ${id}`)).id;
    },
    startFree: (id, params = {}) =>
      api.startWorkflow(`${taskName}_free_wf`, { params: { id, ...params } }),
    waitAll: (ids, timeoutMs) => waitAllTerminal(api, ids, { timeoutMs, intervalMs: 250 }),
    startWorker: (args = [], extraEnv = {}) =>
      base.spawnWorker([modulePath, freeModulePath, ...args], {
        env: { ...env, ...extraEnv },
        clearEnv: true,
      }),
    close: () => base.close(),
    [Symbol.asyncDispose]: () => base.close(),
  };
}

/** What one task's branch shows. */
export interface PublishCheck {
  /** Commits on top of the seed commit (1 = published once). */
  commits: number;
  /** How often the id's line is in `data/log.txt`. */
  lines: number;
  /** Whether `data/out/<id>.txt` holds the id. */
  outFile: boolean;
}

/** Reads branch `t-<id>`: commits above the seed and occurrences of the id. */
export async function checkPublished(stack: ChaosStack, id: string): Promise<PublishCheck> {
  const branch = `t-${id}`;
  let commits = 0;
  let ref = (await stack.lakefs.getBranch(stack.repo, branch)).commit_id;
  while (ref !== stack.seedCommit && commits < 50) {
    const commit = await stack.lakefs.getCommit(stack.repo, ref);
    commits++;
    const parent = commit.parents[0];
    if (parent === undefined) break;
    ref = parent;
  }
  const text = await readObject(stack, branch, "data/log.txt");
  const lines = (text ?? "").split("\n").filter((line) => line === id).length;
  const out = await readObject(stack, branch, `data/out/${id}.txt`);
  return { commits, lines, outFile: out === id };
}

async function readObject(stack: ChaosStack, ref: string, path: string) {
  try {
    return await new Response(await stack.lakefs.getObject(stack.repo, ref, path)).text();
  } catch {
    return undefined;
  }
}

/**
 * The counts of one scenario's row: every workflow is counted once. Lost: it did not
 * complete, or (a writable task) its id is not on its branch. Duplicated: it has more than
 * one COMPLETED task, or (a writable task) its branch has more than one commit or line of
 * its id. Passed: `ok`, by default completed once and, for a writable task, published
 * exactly once with its out file. What did not pass is described in `problems`.
 */
export class Tally {
  passed = 0;
  lost = 0;
  duplicated = 0;
  readonly problems: string[] = [];

  /** Counts workflow `wf`, named `label` in problems; `check` for a writable task. */
  count(label: string, wf: Workflow, check?: PublishCheck, ok?: boolean): void {
    const completions = wf.tasks.filter((t) => t.status === "COMPLETED").length;
    this.add(
      {
        lost: wf.status !== "COMPLETED" || (check !== undefined && check.lines === 0),
        duplicated: completions > 1 ||
          (check !== undefined && (check.commits > 1 || check.lines > 1)),
        passed: ok ?? (wf.status === "COMPLETED" && completions === 1 &&
          (check === undefined || (check.commits === 1 && check.lines === 1 && check.outFile))),
      },
      () =>
        `${label}: ${wf.status} ${JSON.stringify(check ?? {})} ${
          wf.tasks.map((t) => `${t.status}:${t.reasonForIncompletion ?? ""}`).join(" | ")
        }`,
    );
  }

  /**
   * Counts one run the scenario judged itself (e.g. a partition, a pair of racing writers);
   * `problem` describes it when it did not pass.
   */
  add(outcome: { lost: boolean; duplicated: boolean; passed: boolean }, problem: () => string) {
    if (outcome.lost) this.lost++;
    if (outcome.duplicated) this.duplicated++;
    if (outcome.passed) this.passed++;
    else this.problems.push(problem());
  }

  /**
   * Throws an AssertionError unless every run passed. Its message is `what` the scenario
   * promises, then `context` (say, the tail of the worker's output), then each problem: last,
   * so that a shortened log still shows them.
   */
  assertAllPassed(what: string, context?: string): void {
    if (this.problems.length === 0) return;
    throw new assert.AssertionError({
      message: [
        what,
        ...(context === undefined ? [] : [context]),
        `${this.problems.length} run(s) did not pass:`,
        ...this.problems,
      ].join("\n"),
      actual: this.problems,
      expected: [],
      operator: "deepStrictEqual",
    });
  }

  /** The table row of the scenario, started at `startedMs`, over `runs` workflows. */
  row(scenario: string, runs: number, startedMs: number, note?: string): Row {
    return {
      scenario,
      runs,
      passed: this.passed,
      lost: this.lost,
      duplicated: this.duplicated,
      seconds: (Date.now() - startedMs) / 1000,
      ...(note === undefined ? {} : { note }),
    };
  }
}

/** Staging branches still in the repository. */
export async function leftoverStaging(stack: ChaosStack): Promise<string[]> {
  const names: string[] = [];
  for await (const ref of stack.lakefs.listBranches(stack.repo, { prefix: "perago-staging-" })) {
    names.push(ref.id);
  }
  return names;
}

/** Entries of the workspace root other than the supervisor lock and the host's object cache. */
export function leftoverAttemptDirs(stack: ChaosStack): Promise<string[]> {
  return leftoverEntries(stack.workspaceRoot);
}

/** Every log file under the log root, with its text. */
export async function readLogFiles(root: string): Promise<{ path: string; text: string }[]> {
  const found: { path: string; text: string }[] = [];
  const walk = async (dir: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch {
      return;
    }
    for (const entry of entries) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile) found.push({ path, text: await Deno.readTextFile(path) });
    }
  };
  await walk(root);
  return found;
}

/** Asserts no secret occurs in the stack's logs, the worker's output or the given texts. */
export async function findSecretLeaks(
  stack: ChaosStack,
  texts: readonly string[],
): Promise<string[]> {
  const leaks: string[] = [];
  const files = await readLogFiles(stack.logRoot);
  for (const secret of stack.secrets) {
    for (const file of files) if (file.text.includes(secret)) leaks.push(file.path);
    texts.forEach((text, i) => {
      if (text.includes(secret)) leaks.push(`text #${i}`);
    });
  }
  return leaks;
}

export type { Worker } from "../_perago_process.ts";
export { tail } from "../_perago_process.ts";

/**
 * Starts `deno run -A main.ts start <module> <free module> ...args` in the stack's dir; it is
 * SIGKILLed when the stack closes if still running.
 */
export function startWorker(
  stack: ChaosStack,
  args: string[] = [],
  env: Record<string, string> = {},
): Worker {
  return stack.startWorker(args, env);
}

/** Stops a worker (SIGTERM) and returns its exit code; SIGKILL after 30 s. */
export function stopWorker(worker: Worker, timeoutMs = 30_000): Promise<number> {
  return stopPerago(worker, timeoutMs);
}

/** Waits for the supervisor to be running; for a line in a worker's output. */
export { waitForOutput, waitRunning } from "../_perago_process.ts";

/** An integer from an env variable, else the default. */
export function envInt(name: string, fallback: number): number {
  const raw = Deno.env.get(name);
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive integer, got ${raw}`);
  }
  return value;
}

/** One row of the final table. */
export interface Row {
  scenario: string;
  runs: number;
  passed: number;
  lost: number;
  duplicated: number;
  seconds: number;
  note?: string;
}

/**
 * Where rows are collected: one file per `deno test` process (every test file of a run
 * shares its pid, `--parallel` or not), read by `zz_table_test.ts`.
 */
export function rowsPath(): string {
  const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
  return `${tmp}/perago-chaos-rows-${Deno.pid}.jsonl`;
}

/** A line of the rows file: a table row, or a chaos test file whose tests are over. */
type RowsLine = Row | { fileDone: string };

function appendLine(line: RowsLine): void {
  Deno.writeTextFileSync(rowsPath(), JSON.stringify(line) + "\n", { append: true });
}

function readLines(): RowsLine[] {
  try {
    return Deno.readTextFileSync(rowsPath()).split("\n").filter((line) => line !== "")
      .map((line) => JSON.parse(line));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

/** The test file that prints the table. */
const TABLE_FILE = "zz_table_test.ts";

// Every chaos test file imports this module. Once its tests are over (passed or failed) it
// says so in the rows file: under `deno test --parallel` the table test runs beside the
// scenarios, so it waits for these lines instead of trusting the order of the files.
Deno.test.afterAll(() => {
  const file = Deno.mainModule.slice(Deno.mainModule.lastIndexOf("/") + 1);
  // The table's own file is no scenario: its line would come after the table removed the
  // rows file, and leave a new one behind in the temporary directory after every run.
  if (file !== TABLE_FILE) appendLine({ fileDone: file });
});

/** Adds a row to the table `zz_table_test.ts` prints once every chaos test file is over. */
export function record(row: Row): void {
  appendLine(row);
}

/** The chaos scenario files: every `*_test.ts` in this folder but the table's own. */
export function scenarioFiles(): string[] {
  const names = [...Deno.readDirSync(new URL(".", import.meta.url))].map((entry) => entry.name);
  return names.filter((name) => name.endsWith("_test.ts") && name !== TABLE_FILE).sort();
}

/**
 * Waits until every chaos scenario file of this folder has finished in this `deno test`
 * process, then reads and removes the rows. A scenario file that is not part of the run (a
 * subset of the folder was given) never finishes: the wait ends at `timeoutMs` naming it.
 */
export async function takeRows(timeoutMs: number): Promise<Row[]> {
  const expected = scenarioFiles();
  const missing = () => {
    const done = new Set(readLines().flatMap((line) => "fileDone" in line ? [line.fileDone] : []));
    return expected.filter((name) => !done.has(name));
  };
  await waitFor(() => missing().length === 0, {
    timeoutMs,
    intervalMs: 200,
    what: "every chaos scenario file to finish in this deno test run " +
      "(run the folder as a whole: deno test -A tests/chaos/)",
  }).catch((error) => {
    throw new Error(`${error.message}; not finished: ${missing().join(", ")}`);
  });
  const rows = readLines().filter((line): line is Row => "scenario" in line);
  Deno.removeSync(rowsPath());
  return rows;
}

/** Writes the table to stdout. */
export function printTable(rows: readonly Row[]): void {
  const head = ["scenario", "runs", "passed", "lost", "duplicated", "seconds", "note"];
  const body = rows.map((r) => [
    r.scenario,
    String(r.runs),
    String(r.passed),
    String(r.lost),
    String(r.duplicated),
    r.seconds.toFixed(1),
    r.note ?? "",
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ");
  const text = [
    "",
    "perago chaos suite",
    line(head),
    widths.map((w) => "-".repeat(w)).join("-|-"),
    ...body.map(line),
    "",
  ].join("\n");
  Deno.stdout.writeSync(new TextEncoder().encode(text + "\n"));
}
