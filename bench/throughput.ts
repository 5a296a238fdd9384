/**
 * Throughput of trivial workspace-free tasks: `perago start` (process mode, `-j N`) against
 * the Conductor JavaScript SDK worker (`@io-orkes/conductor-javascript` 4.0.0 on Node, the
 * legacy `TaskManager` with `concurrency: N`) on the same demo Conductor (in this process),
 * one after the other, each on a fresh server with the same queued workflows.
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
import { waitFor } from "../src/util/sleep.ts";
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
  taskTimes,
} from "./_conductor.ts";
import { startPerago } from "./_perago.ts";

const SDK_VERSION = "4.0.0";
const SDK_DIR = join(ROOT, "bench", ".js-sdk");

const SIZES: Record<Size, { tasks: number; concurrency: number[] }> = {
  quick: { tasks: 300, concurrency: [2] },
  default: { tasks: 2_000, concurrency: [1, 4] },
  full: { tasks: 10_000, concurrency: [1, 4, 8] },
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

interface SideResult {
  tasksPerSec: number;
  overheadMedianMs: number;
  overheadP95Ms: number;
  queueWaitMedianMs: number;
}

async function measureSide(
  who: "perago" | "jssdk",
  tasks: number,
  concurrency: number,
  ctx: BenchContext,
  lakefsUrl: string,
): Promise<SideResult> {
  const conductor = await startBenchConductor();
  const dir = await Deno.makeTempDir({ dir: ctx.tempDir, prefix: `${who}-` });
  const ids = queueWorkflows(conductor, tasks);
  let stop: () => Promise<unknown>;
  let describe: () => string;
  if (who === "perago") {
    const perago = startPerago({
      conductorUrl: `${conductor.url}/api`,
      lakefsUrl,
      accessKeyId: DEMO_ACCESS_KEY_ID,
      secretAccessKey: DEMO_SECRET_ACCESS_KEY,
      modules: [NOOP_MODULE],
      concurrency,
      tempDir: dir,
    });
    stop = () => perago.stop();
    describe = () => perago.output().slice(-2000);
  } else {
    const child = new Deno.Command("node", {
      args: [
        join(ROOT, "bench", "_js_sdk_worker.mjs"),
        SDK_DIR,
        `${conductor.url}/api`,
        NOOP_TASK,
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
    await waitFor(() => completedCount(conductor, ids) === tasks, {
      timeoutMs: Math.max(120_000, tasks * 100),
      intervalMs: 50,
      what: `${who}: ${tasks} tasks completed`,
      signal: ctx.signal,
    }).catch((error) => {
      throw new Error(
        `${error.message} (${completedCount(conductor, ids)} done); output: ${describe()}`,
      );
    });
  } finally {
    await stop();
  }
  const times = taskTimes(conductor, ids);
  await conductor.close();
  const first = Math.min(...times.map((t) => t.startTime));
  const last = Math.max(...times.map((t) => t.endTime));
  const overhead = times.map((t) => t.endTime - t.startTime);
  return {
    tasksPerSec: tasks / ((last - first) / 1000),
    overheadMedianMs: median(overhead),
    overheadP95Ms: percentile(overhead, 95),
    queueWaitMedianMs: median(times.map((t) => t.startTime - t.scheduledTime)),
  };
}

/** The throughput benchmark. */
export const bench: Bench = {
  name: "throughput",
  description: "trivial tasks/s through perago start vs the Conductor JS SDK worker",
  async run(ctx: BenchContext): Promise<BenchResult> {
    const size = SIZES[ctx.size];
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
    const lakefs = await startLakeFsServer({
      accessKeyId: DEMO_ACCESS_KEY_ID,
      secretAccessKey: DEMO_SECRET_ACCESS_KEY,
    });
    const figures: Figure[] = [];
    const targets: Target[] = [];
    try {
      for (const j of size.concurrency) {
        ctx.signal.throwIfAborted();
        const p = await measureSide("perago", size.tasks, j, ctx, lakefs.url);
        figures.push(
          { name: `j${j}_perago_tasks_per_s`, value: p.tasksPerSec, unit: "tasks/s" },
          {
            name: `j${j}_perago_overhead_median_ms`,
            value: p.overheadMedianMs,
            unit: "ms",
            note: "poll to update",
          },
          { name: `j${j}_perago_overhead_p95_ms`, value: p.overheadP95Ms, unit: "ms" },
        );
        if (!sdk) continue;
        const s = await measureSide("jssdk", size.tasks, j, ctx, lakefs.url);
        figures.push(
          { name: `j${j}_jssdk_tasks_per_s`, value: s.tasksPerSec, unit: "tasks/s" },
          {
            name: `j${j}_jssdk_overhead_median_ms`,
            value: s.overheadMedianMs,
            unit: "ms",
            note: "poll to update",
          },
          { name: `j${j}_jssdk_overhead_p95_ms`, value: s.overheadP95Ms, unit: "ms" },
          {
            name: `j${j}_ratio`,
            value: p.tasksPerSec / s.tasksPerSec,
            unit: "ratio",
            note: "perago / JS SDK tasks per second",
          },
        );
        targets.push({
          name: `j${j}_ratio`,
          target: ">= 1",
          value: p.tasksPerSec / s.tasksPerSec,
          met: p.tasksPerSec >= s.tasksPerSec,
        });
      }
    } finally {
      await lakefs.close();
    }
    notes.push(
      "The demo Conductor runs in the benchmark's process; worker and server share the two " +
        "cores. The JS SDK runs with its defaults (pollInterval 100 ms, batch poll of free " +
        "slots) and concurrency N; perago runs `perago start -j N` (one broker, N executor " +
        "processes, every task crosses two process boundaries).",
    );
    return {
      params: { tasks: size.tasks, concurrency: size.concurrency, sdk: `${SDK_VERSION} on Node` },
      figures,
      targets,
      notes,
    };
  },
};
