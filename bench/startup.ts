/**
 * Start-up: from spawning `perago start` (process mode) to its first poll on the demo
 * Conductor (the server's `pollBatch` count); the memory of each process of the runtime once
 * it is polling, before any attempt (the executor's idle RSS is read from the executor the
 * supervisor spawned, with its real flags); then two tasks queued one after the other (the
 * first loads the attempt code) and the executor's memory after them. Then the floors (a bare
 * Deno, Deno with zod, Deno with the task module, each after the memory-reducing collection an
 * idle executor runs) and thread mode: the supervisor process's memory at `-j 1` and `-j 4`,
 * whose difference per added executor is what one thread-mode executor costs.
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
import { EXECUTOR_GC_GLOBAL } from "../src/runtime/idle_gc.ts";
import { DENO_RUN_CHILD_ENV, executorV8Flags } from "../src/runtime/permissions.ts";

/** zod as perago's modules and `mod.ts` load it. */
const VENDORED_ZOD = new URL("../src/vendor/zod.ts", import.meta.url).href;

const RUNS: Record<Size, number> = { quick: 2, default: 3, full: 5 };

/** Executors of the larger thread-mode worker (the smaller has 1). */
const THREAD_EXECUTORS = 4;

/** The start-up benchmark. */
export const bench: Bench = {
  name: "startup",
  description:
    "perago start to first poll; first and second attempt; idle RSS and USS; thread mode per executor",
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
    const thread = { one: [] as ThreadMemory[], many: [] as ThreadMemory[] };
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
      // Thread mode, -j 1 and -j 4 alternated in each run.
      for (let run = 0; run < runs; run++) {
        for (const concurrency of [1, THREAD_EXECUTORS]) {
          ctx.signal.throwIfAborted();
          const memory = await threadWorkerMiB(ctx, lakefs.url, concurrency);
          thread[concurrency === 1 ? "one" : "many"].push(memory);
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
    // The floor, side by side: Deno itself idle, Deno with zod as perago loads it (bundled,
    // scripts/vendor.ts; every task module imports it through mod.ts), and Deno with the benchmark's task module (what any executor loads),
    // each run as an executor is: without V8's code cache, and after the memory-reducing
    // collection an idle executor runs (idle_gc.ts).
    const bare = await idleDenoMiB("setTimeout(() => {}, 60_000);", ctx.tempDir);
    const withZod = await idleDenoMiB(
      `import ${JSON.stringify(VENDORED_ZOD)}; setTimeout(() => {}, 60_000);`,
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
        note:
          "deno run of an empty timer script, as an executor runs (no code cache, idle GC; reference)",
      },
      { name: "idle_uss_bare_deno_MiB", value: bare.ussMiB, unit: "MiB" },
      {
        name: "idle_rss_deno_with_zod_MiB",
        value: withZod.rssMiB,
        unit: "MiB",
        note:
          "deno run importing zod only (perago's bundled zod), as an executor runs (no code cache, idle GC; reference)",
      },
      {
        name: "idle_rss_deno_with_task_module_MiB",
        value: withTask.rssMiB,
        unit: "MiB",
        note:
          "deno run importing the task module only, as an executor runs (no code cache, idle GC; reference)",
      },
      { name: "idle_uss_deno_with_task_module_MiB", value: withTask.ussMiB, unit: "MiB" },
    );
    // Thread mode: what each executor (a Worker) adds to the one process, idle and after tasks.
    const perExecutor = (key: keyof ThreadMemory) =>
      (median(thread.many.map((m) => m[key])) - median(thread.one.map((m) => m[key]))) /
      (THREAD_EXECUTORS - 1);
    const threadRss = perExecutor("idleRssMiB");
    figures.push(
      {
        name: "thread_idle_rss_j1_MiB",
        value: median(thread.one.map((m) => m.idleRssMiB)),
        unit: "MiB",
        note: "thread mode -j 1: the one process (supervisor, broker, one executor Worker), idle",
      },
      {
        name: `thread_idle_rss_j${THREAD_EXECUTORS}_MiB`,
        value: median(thread.many.map((m) => m.idleRssMiB)),
        unit: "MiB",
        note: `thread mode -j ${THREAD_EXECUTORS}, idle`,
      },
      {
        name: "thread_idle_rss_per_executor_MiB",
        value: threadRss,
        unit: "MiB",
        note: `(-j ${THREAD_EXECUTORS} minus -j 1) / ${
          THREAD_EXECUTORS - 1
        }: one more executor Worker, idle`,
      },
      {
        name: "thread_idle_uss_per_executor_MiB",
        value: perExecutor("idleUssMiB"),
        unit: "MiB",
      },
      {
        name: "thread_rss_per_executor_after_attempts_MiB",
        value: perExecutor("afterRssMiB"),
        unit: "MiB",
        note: "the same, 2 s after each executor ran tasks",
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
      }, {
        name: "thread_idle_rss_per_executor_MiB",
        target: "<= 50",
        value: threadRss,
        met: threadRss <= 50,
      }],
      notes: [
        "Start-up includes Deno starting three processes (supervisor, broker, executor) from " +
        "source with a warm module cache; a `deno compile`d binary skips module loading.",
        `The executor measured is the supervisor's own child, as spawned: ${executorCommand}`,
        floorNote(bare.rssMiB, withZod.rssMiB, withTask.rssMiB, executorRss, threadRss),
      ],
    };
  },
};

/** What the floors say about the 50 MiB target, from the figures of this run. */
function floorNote(
  bareMiB: number,
  zodMiB: number,
  taskMiB: number,
  executorMiB: number,
  threadMiB: number,
): string {
  const floors = `a Deno holding only the task module holds ${round1(taskMiB)} MiB (zod alone ` +
    `${round1(zodMiB)}, an empty script ${round1(bareMiB)}) with the executor's flags and idle ` +
    "collection";
  const own = `the executor's own code (its protocol, logging, lane and attempt loop) holds ` +
    `${round1(executorMiB - taskMiB)} MiB above that`;
  const verdict = taskMiB > 50
    ? `so an executor process, which must load its task module, cannot be under 50 MiB (${own})`
    : `which leaves ${round1(50 - taskMiB)} MiB under 50 MiB for the executor's own code; ${own}`;
  return `The floor of a process-mode executor: ${floors}, ${verdict}; a thread-mode executor ` +
    `adds ${round1(threadMiB)} MiB to its process.`;
}

/** `value` to one decimal. */
function round1(value: number): string {
  return value.toFixed(1);
}

/** The executor's command line with the run's temp directory shortened to `<run>`. */
async function executorCommandLine(pid: number, runDir: string): Promise<string> {
  const text = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => "");
  return text.split("\0").filter((arg) => arg !== "").join(" ").replaceAll(runDir, "<run>")
    .replaceAll(ROOT.replace(/\/+$/, ""), "<perago>");
}

/** Memory of a thread-mode worker (one process), idle and after tasks. */
interface ThreadMemory {
  idleRssMiB: number;
  idleUssMiB: number;
  afterRssMiB: number;
}

/**
 * `perago start -j <concurrency>` in thread mode: its process's memory 2 s after the first
 * poll, and 2 s after two tasks per executor (each executor Worker loads its attempt code).
 */
async function threadWorkerMiB(
  ctx: BenchContext,
  lakefsUrl: string,
  concurrency: number,
): Promise<ThreadMemory> {
  const conductor = await startBenchConductor();
  const dir = await Deno.makeTempDir({ dir: ctx.tempDir, prefix: "thread-" });
  const perago = startPerago({
    conductorUrl: `${conductor.url}/api`,
    lakefsUrl,
    accessKeyId: DEMO_ACCESS_KEY_ID,
    secretAccessKey: DEMO_SECRET_ACCESS_KEY,
    modules: [NOOP_MODULE],
    concurrency,
    tempDir: dir,
    env: { PERAGO_EXECUTION_MODE: "thread" },
  });
  try {
    await waitFor(() => conductor.stats.count("pollBatch") + conductor.stats.count("poll") > 0, {
      timeoutMs: 60_000,
      intervalMs: 2,
      what: "the first poll in thread mode",
      signal: ctx.signal,
    }).catch((error) => {
      throw new Error(`${error.message}; perago said: ${perago.output().slice(-2000)}`);
    });
    await sleep(2000, ctx.signal);
    const idle = await processMemoryMiB(perago.child.pid);
    const ids = queueWorkflows(conductor, 2 * concurrency);
    await waitFor(() => completedCount(conductor, ids) === ids.length, {
      timeoutMs: 60_000,
      intervalMs: 2,
      what: "the thread-mode tasks to complete",
      signal: ctx.signal,
    });
    await sleep(2000, ctx.signal);
    const after = await processMemoryMiB(perago.child.pid);
    return {
      idleRssMiB: idle?.rssMiB ?? NaN,
      idleUssMiB: idle?.ussMiB ?? NaN,
      afterRssMiB: after?.rssMiB ?? NaN,
    };
  } finally {
    await perago.stop();
    await conductor.close();
  }
}

/**
 * Idle memory of a `deno run` of `source` (2 s after it started), for the references: run as
 * an executor is (its V8 flags, `--no-code-cache`, its environment's `DENO_NO_UPDATE_CHECK`),
 * and after 1 s it runs the memory-reducing collection an idle executor runs (idle_gc.ts).
 */
async function idleDenoMiB(
  source: string,
  tempDir: string,
): Promise<{ rssMiB: number; ussMiB: number }> {
  const script = await Deno.makeTempFile({ dir: tempDir, suffix: ".ts" });
  await Deno.writeTextFile(
    script,
    `${source}
setTimeout(() => (globalThis as unknown as { [k: string]: (o: unknown) => void })` +
      `[${JSON.stringify(EXECUTOR_GC_GLOBAL)}]({ type: "major", execution: "sync", ` +
      `flavor: "last-resort" }), 1000);
`,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      `${ROOT}deno.json`,
      `--v8-flags=${executorV8Flags(0)}`,
      "--no-code-cache",
      script,
    ],
    env: DENO_RUN_CHILD_ENV,
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
