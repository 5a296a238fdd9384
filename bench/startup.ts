/**
 * Start-up: from spawning `perago start` (process mode) to its first poll on the demo
 * Conductor (the server's `pollBatch` count), and to the completion of a task queued before
 * the start. Also the idle RSS of each process of the runtime once it is polling.
 *
 * @module
 */
import { DEMO_ACCESS_KEY_ID, DEMO_SECRET_ACCESS_KEY } from "../src/devstack/credentials.ts";
import { startLakeFsServer } from "../src/devstack/lakefs/server.ts";
import { sleep, waitFor } from "../src/util/sleep.ts";
import {
  type Bench,
  type BenchContext,
  type BenchResult,
  type Figure,
  median,
  processMemoryMiB,
  ROOT,
  type Size,
} from "./_common.ts";
import { completedCount, NOOP_MODULE, queueWorkflows, startBenchConductor } from "./_conductor.ts";
import { startPerago } from "./_perago.ts";

const RUNS: Record<Size, number> = { quick: 2, default: 3, full: 5 };

/** The start-up benchmark. */
export const bench: Bench = {
  name: "startup",
  description: "perago start to first poll and first completed task; idle RSS",
  async run(ctx: BenchContext): Promise<BenchResult> {
    const runs = RUNS[ctx.size];
    const firstPoll: number[] = [];
    const firstTask: number[] = [];
    const rss = { supervisor: [] as number[], broker: [] as number[], executor: [] as number[] };
    const uss = { supervisor: [] as number[], broker: [] as number[], executor: [] as number[] };
    const lakefs = await startLakeFsServer({
      accessKeyId: DEMO_ACCESS_KEY_ID,
      secretAccessKey: DEMO_SECRET_ACCESS_KEY,
    });
    try {
      for (let run = 0; run < runs; run++) {
        ctx.signal.throwIfAborted();
        const conductor = await startBenchConductor();
        const dir = await Deno.makeTempDir({ dir: ctx.tempDir, prefix: "run-" });
        const ids = queueWorkflows(conductor, 1);
        conductor.stats.reset();
        const started = performance.now();
        const perago = startPerago({
          conductorUrl: `${conductor.url}/api`,
          lakefsUrl: lakefs.url,
          accessKeyId: DEMO_ACCESS_KEY_ID,
          secretAccessKey: DEMO_SECRET_ACCESS_KEY,
          modules: [NOOP_MODULE],
          concurrency: 1,
          tempDir: dir,
        });
        try {
          await waitFor(
            () => conductor.stats.count("pollBatch") + conductor.stats.count("poll") > 0,
            {
              timeoutMs: 60_000,
              intervalMs: 2,
              what: "the first poll",
              signal: ctx.signal,
            },
          ).catch((error) => {
            throw new Error(`${error.message}; perago said: ${perago.output().slice(-2000)}`);
          });
          firstPoll.push(performance.now() - started);
          await waitFor(() => completedCount(conductor, ids) === 1, {
            timeoutMs: 60_000,
            intervalMs: 2,
            what: "the first task to complete",
            signal: ctx.signal,
          });
          firstTask.push(performance.now() - started);
          // Idle: let start-up garbage settle, then read each process's RSS.
          await sleep(2000, ctx.signal);
          const roles = await perago.roles();
          const pids = {
            supervisor: [roles.supervisor],
            broker: roles.broker,
            executor: roles.executor,
          };
          for (const role of ["supervisor", "broker", "executor"] as const) {
            for (const pid of pids[role]) {
              const m = await processMemoryMiB(pid);
              if (m) {
                rss[role].push(m.rssMiB);
                uss[role].push(m.ussMiB);
              }
            }
          }
        } finally {
          await perago.stop();
          await conductor.close();
        }
      }
    } finally {
      await lakefs.close();
    }
    const figures: Figure[] = [
      {
        name: "first_poll_ms",
        value: median(firstPoll),
        unit: "ms",
        note: "spawn of `deno run -A main.ts start -j 1` to the first poll request",
      },
      {
        name: "first_task_completed_ms",
        value: median(firstTask),
        unit: "ms",
        note: "spawn to a queued task COMPLETED",
      },
    ];
    for (const role of ["supervisor", "broker", "executor"] as const) {
      if (rss[role].length > 0) {
        figures.push({
          name: `idle_rss_${role}_MiB`,
          value: median(rss[role]),
          unit: "MiB",
          note: "VmRSS 2 s after the first task",
        });
        figures.push({
          name: `idle_uss_${role}_MiB`,
          value: median(uss[role]),
          unit: "MiB",
          note: "private pages (what one more such process costs)",
        });
      }
    }
    // The floor, side by side: Deno itself idle, and Deno with zod (every task module
    // imports it through mod.ts).
    const bare = await idleDenoMiB("setTimeout(() => {}, 60_000);", ctx.tempDir);
    const withZod = await idleDenoMiB(
      'import "zod"; setTimeout(() => {}, 60_000);',
      ctx.tempDir,
    );
    figures.push(
      {
        name: "idle_rss_bare_deno_MiB",
        value: bare.rssMiB,
        unit: "MiB",
        note: "deno run of an empty timer script (reference)",
      },
      { name: "idle_uss_bare_deno_MiB", value: bare.ussMiB, unit: "MiB" },
      {
        name: "idle_rss_deno_with_zod_MiB",
        value: withZod.rssMiB,
        unit: "MiB",
        note: "deno run importing zod only (reference)",
      },
    );
    const executorRss = rss.executor.length > 0 ? median(rss.executor) : NaN;
    return {
      params: { runs, concurrency: 1, executionMode: "process", deno: "deno run (cached)" },
      figures,
      targets: [{
        name: "idle_rss_executor_MiB",
        target: "<= 50",
        value: executorRss,
        met: executorRss <= 50,
      }],
      notes: [
        "Start-up includes Deno starting three processes (supervisor, broker, executor) from " +
        "source with a warm module cache; a `deno compile`d binary skips module loading.",
      ],
    };
  },
};

/** Idle memory of a `deno run` of `source` (2 s after it started), for the references. */
async function idleDenoMiB(
  source: string,
  tempDir: string,
): Promise<{ rssMiB: number; ussMiB: number }> {
  const script = await Deno.makeTempFile({ dir: tempDir, suffix: ".ts" });
  await Deno.writeTextFile(script, source);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--config", `${ROOT}deno.json`, script],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await sleep(2000);
    const m = await processMemoryMiB(child.pid);
    return { rssMiB: m?.rssMiB ?? NaN, ussMiB: m?.ussMiB ?? NaN };
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
}
