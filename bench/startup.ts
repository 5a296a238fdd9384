/**
 * Start-up: from spawning `perago start` (process mode) to its first poll on the demo
 * Conductor (the server's `pollBatch` count); the memory of each process of the runtime once
 * it is polling, before any attempt (the executor's idle RSS is read from the executor the
 * supervisor spawned, with its real flags); then two tasks queued one after the other (the
 * first loads the attempt code) and the executor's memory after them.
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
  description: "perago start to first poll; first and second attempt; idle RSS and USS",
  async run(ctx: BenchContext): Promise<BenchResult> {
    const runs = RUNS[ctx.size];
    const firstPoll: number[] = [];
    const firstAttempt: number[] = [];
    const secondAttempt: number[] = [];
    const rss = { supervisor: [] as number[], broker: [] as number[], executor: [] as number[] };
    const uss = { supervisor: [] as number[], broker: [] as number[], executor: [] as number[] };
    const afterRss: number[] = [];
    const afterUss: number[] = [];
    let executorCommand = "";
    const lakefs = await startLakeFsServer({
      accessKeyId: DEMO_ACCESS_KEY_ID,
      secretAccessKey: DEMO_SECRET_ACCESS_KEY,
    });
    try {
      for (let run = 0; run < runs; run++) {
        ctx.signal.throwIfAborted();
        const conductor = await startBenchConductor();
        const dir = await Deno.makeTempDir({ dir: ctx.tempDir, prefix: "run-" });
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
          // Idle: the executor has loaded its task modules and waits for work; no attempt
          // has run yet. Let start-up garbage settle, then read each process's memory.
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
          if (roles.executor[0] !== undefined) {
            executorCommand = await executorCommandLine(roles.executor[0], dir);
          }
          // Two attempts one after the other on the idle worker: the first loads the
          // attempt code, the second shows what an attempt costs without it.
          for (const times of [firstAttempt, secondAttempt]) {
            const queued = performance.now();
            const ids = queueWorkflows(conductor, 1);
            await waitFor(() => completedCount(conductor, ids) === 1, {
              timeoutMs: 60_000,
              intervalMs: 2,
              what: "the task to complete",
              signal: ctx.signal,
            });
            times.push(performance.now() - queued);
          }
          await sleep(2000, ctx.signal);
          for (const pid of roles.executor) {
            const m = await processMemoryMiB(pid);
            if (m) {
              afterRss.push(m.rssMiB);
              afterUss.push(m.ussMiB);
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
        name: "first_attempt_ms",
        value: median(firstAttempt),
        unit: "ms",
        note: "a task queued on the idle worker to COMPLETED (loads the attempt code)",
      },
      {
        name: "second_attempt_ms",
        value: median(secondAttempt),
        unit: "ms",
        note: "the next task queued, to COMPLETED",
      },
    ];
    for (const role of ["supervisor", "broker", "executor"] as const) {
      if (rss[role].length > 0) {
        figures.push({
          name: `idle_rss_${role}_MiB`,
          value: median(rss[role]),
          unit: "MiB",
          note: "VmRSS 2 s after the first poll, before any attempt",
        });
        figures.push({
          name: `idle_uss_${role}_MiB`,
          value: median(uss[role]),
          unit: "MiB",
          note: "private pages (what one more such process costs)",
        });
      }
    }
    if (afterRss.length > 0) {
      figures.push(
        {
          name: "rss_executor_after_attempts_MiB",
          value: median(afterRss),
          unit: "MiB",
          note: "VmRSS 2 s after its two attempts",
        },
        { name: "uss_executor_after_attempts_MiB", value: median(afterUss), unit: "MiB" },
      );
    }
    // The floor, side by side: Deno itself idle, Deno with zod (every task module imports it
    // through mod.ts), and Deno with the benchmark's task module (what any executor loads).
    const bare = await idleDenoMiB("setTimeout(() => {}, 60_000);", ctx.tempDir);
    const withZod = await idleDenoMiB(
      'import "zod"; setTimeout(() => {}, 60_000);',
      ctx.tempDir,
    );
    const withTask = await idleDenoMiB(
      `import ${JSON.stringify(NOOP_MODULE)}; setTimeout(() => {}, 60_000);`,
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
      {
        name: "idle_rss_deno_with_task_module_MiB",
        value: withTask.rssMiB,
        unit: "MiB",
        note: "deno run importing the task module only (reference)",
      },
      { name: "idle_uss_deno_with_task_module_MiB", value: withTask.ussMiB, unit: "MiB" },
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
        `The executor measured is the supervisor's own child, as spawned: ${executorCommand}`,
      ],
    };
  },
};

/** The executor's command line with the run's temp directory shortened to `<run>`. */
async function executorCommandLine(pid: number, runDir: string): Promise<string> {
  const text = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => "");
  return text.split("\0").filter((arg) => arg !== "").join(" ").replaceAll(runDir, "<run>")
    .replaceAll(ROOT.replace(/\/+$/, ""), "<perago>");
}

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
