/**
 * Throughput of trivial workspace-free tasks: `perago start -j N` in process mode and in
 * thread mode (`PERAGO_EXECUTION_MODE`) against the Conductor JavaScript SDK worker
 * (`@io-orkes/conductor-javascript` 4.0.0 on Node, the legacy `TaskManager` with
 * `concurrency: N`), the same N tasks in flight on both sides.
 *
 * Each run starts one worker on a queue of the same number of waiting workflows (one task
 * each) and ends when all are completed. The sides alternate (the order rotates every round)
 * and each figure is the median of its rounds, so load on the shared machine hits every side.
 * Against the demo Conductor (in this process, a fresh one per run) and, when
 * `PERAGO_TEST_CONDUCTOR_URL` is set, against that real Conductor too (a task type unique to
 * the bench run, fewer tasks).
 *
 * Throughput is measured from the server's Task records (first `startTime` to last
 * `endTime`), so worker start-up is excluded; the per-task overhead is `endTime - startTime`
 * of each task (poll to result update; the task itself does nothing).
 *
 * The SDK is installed with npm under `bench/.js-sdk/` at bench time (not committed).
 *
 * @module
 */
import { join } from "node:path";
import { DEMO_ACCESS_KEY_ID, DEMO_SECRET_ACCESS_KEY } from "../src/devstack/credentials.ts";
import { startLakeFsServer } from "../src/devstack/lakefs/server.ts";
import { ConductorClient } from "../src/conductor/client.ts";
import { loadTask } from "../src/task/loader.ts";
import { buildTaskDef } from "../src/task/taskdef.ts";
import { waitFor } from "../src/util/sleep.ts";
import { forEachConcurrent } from "../src/util/pool.ts";
import {
  type Bench,
  type BenchContext,
  type BenchResult,
  type Figure,
  hasCommand,
  median,
  percentile,
  readJsonLine,
  ROOT,
  runCommand,
  type Size,
  type Target,
} from "./_common.ts";
import {
  completedCount,
  NOOP_MODULE,
  NOOP_TASK,
  queueWorkflows,
  startBenchConductor,
  type TaskTimes,
  taskTimes,
} from "./_conductor.ts";
import { startPerago } from "./_perago.ts";

const SDK_VERSION = "4.0.0";
const SDK_DIR = join(ROOT, "bench", ".js-sdk");
const TARGET_RATIO = 1.2;

/** A worker measured: perago in one execution mode, or the JS SDK. */
export type Side = "process" | "thread" | "jssdk";
const PERAGO_SIDES = ["process", "thread"] as const;

interface Shape {
  tasks: number;
  concurrency: number[];
  rounds: number;
  /** Tasks and rounds against a real Conductor (slower to queue and to read back). */
  realTasks: number;
  realRounds: number;
}

const SIZES: Record<Size, Shape> = {
  quick: { tasks: 300, concurrency: [2], rounds: 1, realTasks: 100, realRounds: 1 },
  default: { tasks: 2_000, concurrency: [1, 4], rounds: 3, realTasks: 300, realRounds: 2 },
  full: { tasks: 10_000, concurrency: [1, 4, 8], rounds: 5, realTasks: 2_000, realRounds: 3 },
};

/** Installs the SDK under bench/.js-sdk with npm when missing. */
async function ensureSdk(): Promise<void> {
  const marker = join(SDK_DIR, "node_modules", "@io-orkes", "conductor-javascript", "package.json");
  try {
    const pkg = JSON.parse(await Deno.readTextFile(marker));
    if (String(pkg.version).replace(/^v/, "") === SDK_VERSION) return;
  } catch { /* not installed */ }
  await Deno.mkdir(SDK_DIR, { recursive: true });
  const manifest = join(SDK_DIR, "package.json");
  await Deno.writeTextFile(manifest, JSON.stringify({ name: "bench-js-sdk", private: true }));
  // --legacy-peer-deps: the SDK's optional peers (zod 3, langchain) are not needed here.
  await runCommand("npm", [
    "install",
    "--no-audit",
    "--no-fund",
    "--legacy-peer-deps",
    `@io-orkes/conductor-javascript@${SDK_VERSION}`,
  ], { cwd: SDK_DIR });
}

/** One queue of workflows on a Conductor, ready for a worker. */
interface Batch {
  /** `.../api` of the server. */
  readonly apiUrl: string;
  readonly taskType: string;
  readonly module: string;
  /** How many of the workflows are completed. */
  completed(): Promise<number>;
  times(): Promise<TaskTimes[]>;
  close(): Promise<void>;
}

/** Where the runs go: a fresh demo Conductor per run, or one shared real Conductor. */
export interface ServerKind {
  readonly label: string;
  queue(tasks: number): Promise<Batch>;
}

/** A fresh demo Conductor per run. */
export function demoServer(): ServerKind {
  return {
    label: "demo Conductor (in the bench process, a fresh one per run)",
    async queue(tasks) {
      const conductor = await startBenchConductor();
      const ids = queueWorkflows(conductor, tasks);
      return {
        apiUrl: `${conductor.url}/api`,
        taskType: NOOP_TASK,
        module: NOOP_MODULE,
        completed: () => Promise.resolve(completedCount(conductor, ids)),
        times: () => Promise.resolve(taskTimes(conductor, ids)),
        close: () => conductor.close(),
      };
    },
  };
}

/** The no-op task under a name unique to the run (a real Conductor may be shared). */
async function uniqueNoopModule(dir: string, name: string): Promise<string> {
  const path = join(dir, `${name}.ts`);
  const mod = new URL("../mod.ts", import.meta.url).href;
  await Deno.writeTextFile(
    path,
    `import { defineTask, z } from "${mod}";
export default defineTask({
  name: "${name}",
  ownerEmail: "bench@example.com",
  description: "returns its input number (benchmark task)",
  params: z.object({ n: z.number().int() }),
  result: z.object({ n: z.number().int() }),
  run: ({ n }) => ({ n }),
});
`,
  );
  return path;
}

/**
 * The real Conductor at `url`. Every run gets a task type and workflow of its own: a worker
 * stopped after its run may leave a batch poll waiting on the server (the server notices the
 * hang-up only when it answers), which would take the next run's first tasks for nobody.
 */
export function realServer(url: string, dir: string): ServerKind {
  const api = new ConductorClient({ serverUrl: url });
  const apiUrl = `${url.replace(/\/+$/, "").replace(/\/api$/, "")}/api`;
  const stamp = Date.now().toString(36);
  let runs = 0;
  return {
    label: `real Conductor at ${url}`,
    async queue(tasks) {
      const taskType = `bench_noop_${stamp}_${++runs}`;
      const workflow = `${taskType}_flow`;
      const module = await uniqueNoopModule(dir, taskType);
      const { task } = await loadTask(module);
      await api.registerTaskDefs([{ ...buildTaskDef(task), responseTimeoutSeconds: 600 }]);
      await api.upsertWorkflowDefs([{
        name: workflow,
        version: 1,
        schemaVersion: 2,
        ownerEmail: "bench@example.com",
        tasks: [{
          name: taskType,
          taskReferenceName: "noop",
          type: "SIMPLE",
          inputParameters: { params: { n: "${workflow.input.n}" } },
        }],
        outputParameters: { n: "${noop.output.result.n}" },
      }]);
      const ids: string[] = new Array(tasks);
      await forEachConcurrent(Array.from({ length: tasks }, (_, i) => i), 8, async (n) => {
        ids[n] = await api.startWorkflow(workflow, { n });
      });
      const done = new Map<string, TaskTimes>();
      const queued = async () => {
        const response = await fetch(
          `${apiUrl}/tasks/queue/sizes?taskType=${encodeURIComponent(taskType)}`,
        );
        const sizes = await response.json() as Record<string, number>;
        return sizes[taskType] ?? 0;
      };
      const readBack = async () => {
        const pending = ids.filter((id) => !done.has(id));
        await forEachConcurrent(pending, 8, async (id) => {
          const flow = await api.getWorkflow(id);
          if (flow.status !== "COMPLETED") return;
          const t = flow.tasks[0]!;
          done.set(id, {
            status: t.status,
            scheduledTime: Number(t.scheduledTime ?? 0),
            startTime: Number(t.startTime ?? 0),
            endTime: Number(t.endTime ?? 0),
          });
        });
      };
      return {
        apiUrl,
        taskType,
        module,
        // Reading every workflow back loads the server: only once the queue is empty.
        async completed() {
          if (await queued() > 0) return 0;
          await readBack();
          return done.size;
        },
        times: () => Promise.resolve(ids.map((id) => done.get(id)!)),
        close: () => Promise.resolve(),
      };
    },
  };
}

/** What one run of one side measured. */
export interface RunResult {
  tasksPerSec: number;
  overheadMedianMs: number;
  overheadP95Ms: number;
}

/** One run: `tasks` workflows queued on `server`, one worker of `side` at `-j concurrency`. */
export async function runSide(
  side: Side,
  server: ServerKind,
  tasks: number,
  concurrency: number,
  ctx: BenchContext,
  lakefsUrl: string,
): Promise<RunResult> {
  const batch = await server.queue(tasks);
  const dir = await Deno.makeTempDir({ dir: ctx.tempDir, prefix: `${side}-` });
  let stop: () => Promise<unknown>;
  let describe: () => string;
  if (side !== "jssdk") {
    const perago = startPerago({
      conductorUrl: batch.apiUrl,
      lakefsUrl,
      accessKeyId: DEMO_ACCESS_KEY_ID,
      secretAccessKey: DEMO_SECRET_ACCESS_KEY,
      modules: [batch.module],
      concurrency,
      tempDir: dir,
      env: { PERAGO_EXECUTION_MODE: side },
    });
    stop = () => perago.stop();
    describe = () => perago.output().slice(-2000);
  } else {
    const child = new Deno.Command("node", {
      args: [
        join(ROOT, "bench", "_js_sdk_worker.mjs"),
        SDK_DIR,
        batch.apiUrl,
        batch.taskType,
        String(concurrency),
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    await readJsonLine(child.stdout, 60_000);
    stop = async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 10_000);
      await child.status;
      clearTimeout(timer);
    };
    describe = () => "";
  }
  try {
    await waitFor(async () => await batch.completed() === tasks, {
      timeoutMs: Math.max(120_000, tasks * 100),
      intervalMs: 50,
      what: `${side}: ${tasks} tasks completed`,
      signal: ctx.signal,
    }).catch(async (error) => {
      throw new Error(
        `${error.message} (${await batch.completed()} done); output: ${describe()}`,
      );
    });
  } finally {
    await stop();
  }
  const times = await batch.times();
  await batch.close();
  const first = Math.min(...times.map((t) => t.startTime));
  const last = Math.max(...times.map((t) => t.endTime));
  const overhead = times.map((t) => t.endTime - t.startTime);
  return {
    tasksPerSec: tasks / ((last - first) / 1000),
    overheadMedianMs: median(overhead),
    overheadP95Ms: percentile(overhead, 95),
  };
}

/**
 * Runs every side `rounds` times at each concurrency, alternated (the order rotates every
 * round), and adds the medians and ratios to `out`, and the targets `withTargets`. `prefix`
 * names the server.
 */
async function measure(
  server: ServerKind,
  prefix: string,
  withTargets: boolean,
  sides: readonly Side[],
  shape: { tasks: number; concurrency: number[]; rounds: number },
  ctx: BenchContext,
  lakefsUrl: string,
  out: { figures: Figure[]; targets: Target[]; log: string[] },
): Promise<void> {
  for (const j of shape.concurrency) {
    const runs = new Map<Side, RunResult[]>(sides.map((side) => [side, []]));
    for (let round = 0; round < shape.rounds; round++) {
      const order = sides.map((_, i) => sides[(i + round) % sides.length]!);
      for (const side of order) {
        ctx.signal.throwIfAborted();
        const result = await runSide(side, server, shape.tasks, j, ctx, lakefsUrl);
        runs.get(side)!.push(result);
        out.log.push(`${prefix}j${j} round ${round + 1} ${side}: ${result.tasksPerSec.toFixed(1)}`);
      }
    }
    const medianOf = (side: Side) => median(runs.get(side)!.map((r) => r.tasksPerSec));
    for (const side of sides) {
      const list = runs.get(side)!;
      figures(out.figures, `${prefix}j${j}_${side}`, {
        tasksPerSec: medianOf(side),
        overheadMedianMs: median(list.map((r) => r.overheadMedianMs)),
        overheadP95Ms: median(list.map((r) => r.overheadP95Ms)),
      }, list.map((r) => Math.round(r.tasksPerSec)));
    }
    if (!sides.includes("jssdk")) continue;
    for (const mode of PERAGO_SIDES) {
      if (!sides.includes(mode)) continue;
      const ratio = medianOf(mode) / medianOf("jssdk");
      out.figures.push({
        name: `${prefix}j${j}_${mode}_ratio`,
        value: ratio,
        unit: "ratio",
        note: `perago (${mode} mode) / JS SDK, medians`,
      });
      if (!withTargets) continue;
      out.targets.push({
        name: `${prefix}j${j}_${mode}_ratio`,
        target: `>= ${TARGET_RATIO}`,
        value: ratio,
        met: ratio >= TARGET_RATIO,
      });
    }
  }
}

function figures(out: Figure[], name: string, r: RunResult, each: number[]): void {
  out.push(
    {
      name: `${name}_tasks_per_s`,
      value: r.tasksPerSec,
      unit: "tasks/s",
      note: `median of [${each.join(", ")}]`,
    },
    {
      name: `${name}_overhead_median_ms`,
      value: r.overheadMedianMs,
      unit: "ms",
      note: "poll to update",
    },
    { name: `${name}_overhead_p95_ms`, value: r.overheadP95Ms, unit: "ms" },
  );
}

async function loadAverage(): Promise<string> {
  return (await Deno.readTextFile("/proc/loadavg").catch(() => "?")).split(" ").slice(0, 3)
    .join(" ");
}

/** The throughput benchmark. */
export const bench: Bench = {
  name: "throughput",
  description: "trivial tasks/s through perago start (process, thread) vs the Conductor JS SDK",
  async run(ctx: BenchContext): Promise<BenchResult> {
    const shape = SIZES[ctx.size];
    const notes: string[] = [];
    let sdk = await hasCommand("node") && await hasCommand("npm");
    if (sdk) {
      try {
        await ensureSdk();
      } catch (error) {
        sdk = false;
        notes.push(`JS SDK not measured: npm install failed: ${(error as Error).message}`);
      }
    } else notes.push("JS SDK not measured: node/npm not on PATH");
    const sides: Side[] = sdk ? ["process", "thread", "jssdk"] : ["process", "thread"];
    // No task touches lakeFS; `perago start` is given the demo one all the same.
    const lakefs = await startLakeFsServer({
      accessKeyId: DEMO_ACCESS_KEY_ID,
      secretAccessKey: DEMO_SECRET_ACCESS_KEY,
    });
    const out = { figures: [] as Figure[], targets: [] as Target[], log: [] as string[] };
    const loadBefore = await loadAverage();
    const realUrl = Deno.env.get("PERAGO_TEST_CONDUCTOR_URL")?.trim() || undefined;
    try {
      await measure(demoServer(), "", true, sides, shape, ctx, lakefs.url, out);
      if (realUrl !== undefined) {
        const real = realServer(realUrl, ctx.tempDir);
        // No target there: the real server's own time per task is most of it.
        await measure(
          real,
          "real_",
          false,
          sides,
          {
            tasks: shape.realTasks,
            concurrency: shape.concurrency,
            rounds: shape.realRounds,
          },
          ctx,
          lakefs.url,
          out,
        );
        notes.push(
          `real_*: ${real.label}, ${shape.realTasks} tasks per run (a task type of its own ` +
            "each); no target (the server's " +
            "own time per task is the ceiling of both sides)",
        );
      } else notes.push("real Conductor not measured: PERAGO_TEST_CONDUCTOR_URL is not set");
    } finally {
      await lakefs.close();
    }
    const loadAfter = await loadAverage();
    notes.push(
      `load average (1, 5, 15 min) before ${loadBefore}, after ${loadAfter}`,
      `runs (tasks/s): ${out.log.join("; ")}`,
      "The demo Conductor runs in the benchmark's process; worker and server share the two " +
        "cores. The JS SDK runs with its defaults (pollInterval 100 ms, batch poll of free " +
        "slots, each result sent with update-v2, whose answer is the next task) and " +
        "concurrency N; perago runs `perago start -j N` (a broker and N executors: processes " +
        "in process mode, each executor taking its tasks from the broker over a Unix socket " +
        "of its own; Workers of one process in thread mode, the broker in the supervisor).",
    );
    return {
      params: {
        tasks: shape.tasks,
        concurrency: shape.concurrency,
        rounds: shape.rounds,
        ...(realUrl === undefined
          ? {}
          : { realTasks: shape.realTasks, realRounds: shape.realRounds }),
        sdk: `${SDK_VERSION} on Node`,
        loadAverage: { before: loadBefore, after: loadAfter },
      },
      figures: out.figures,
      targets: out.targets,
      notes,
    };
  },
};
