/**
 * Warm attempts: the same writable task re-run after a 1-file change in a repository of
 * 21,000 objects (1,000 x 1 MiB and 20,000 x 4 KiB, as the sync benchmark), three ways in one
 * run, each starting from the branch head the previous one published:
 *
 * 1. cold, no cache: every object downloaded (what perago did before the host cache);
 * 2. cold, filling the host cache (empty at the start): every object downloaded and added;
 * 3. warm: the cache holds every object but the one the previous run changed.
 *
 * Each is a whole `runAttempt` (download, both snapshots, task, stage, fence, squash merge),
 * timed per phase, with the client's CPU and the load average; the attempt directory is removed
 * after the attempt returns (`removeDirInBackground`, as `perago run` does) and before the next
 * run, timed apart. After the warm run, creating as many new files under the workspace root is
 * timed twice (right after that removal, then again) as the filesystem's floor. `--full` repeats the three twice (the cache emptied before each cold
 * fill) and takes medians. The demo lakeFS runs in a child process; with
 * `PERAGO_BENCH_REAL_LAKEFS=1` the bench uses the real lakeFS of `PERAGO_TEST_LAKEFS_*`.
 *
 * @module
 */
import { join } from "node:path";
import process from "node:process";
import { defineTask, z } from "../mod.ts";
import { ObjectCache, objectCacheDir } from "../src/lakefs/object_cache.ts";
import { type AttemptPhase, runAttempt } from "../src/workspace/attempt.ts";
import { trashedDirsRemoved } from "../src/workspace/attempt_dir.ts";
import {
  type Bench,
  type BenchContext,
  type BenchResult,
  type Figure,
  median,
  type Size,
} from "./_common.ts";
import { type LakeFsTarget, startLakeFsTarget } from "./_lakefs.ts";
import { uploadFiles, writeDataSet } from "./_seed.ts";

const MIB = 1024 * 1024;
const CONCURRENCY = 8;

interface Shape {
  large: number;
  small: number;
  rounds: number;
}

const SHAPES: Record<Size, Shape> = {
  quick: { large: 100, small: 2_000, rounds: 1 },
  default: { large: 1_000, small: 20_000, rounds: 1 },
  full: { large: 1_000, small: 20_000, rounds: 2 },
};

/** A writable task that rewrites one file of the workspace. */
const touchOne = defineTask({
  name: "bench_warm_touch",
  ownerEmail: "bench@example.com",
  description: "rewrites one file",
  params: z.object({ path: z.string() }),
  result: z.object({ ok: z.boolean() }),
  workspace: { prefix: "/" },
  async run({ path }, ctx) {
    await Deno.writeTextFile(join(ctx.workspace!, path), `changed ${crypto.randomUUID()}\n`);
    return { ok: true };
  },
});

/** Uploads the data set and commits it to `main`. */
async function seed(target: LakeFsTarget, shape: Shape, tempDir: string, signal: AbortSignal) {
  const src = join(tempDir, "src");
  const sets = [
    { label: "large", count: shape.large, bytes: Math.floor(1024 * MIB / 1000), seed: 1 },
    { label: "small", count: shape.small, bytes: 4096, seed: 1e6 },
  ];
  for (const set of sets) {
    const dir = join(src, set.label);
    const files = await writeDataSet(dir, set);
    await uploadFiles(target.client, target.repo, "main", files, { concurrency: 16, signal });
    await Deno.remove(dir, { recursive: true });
  }
  await target.client.commit(target.repo, "main", "bench warm: seed");
}

type Kind = "cold_nocache" | "cold_fill" | "warm";

interface RunResult {
  totalMs: number;
  phases: Record<string, number>;
  fromCache: number;
  downloaded: number;
  /** CPU of this process (the client: perago's attempt) during the run, ms. */
  cpuMs: number;
  /** 1-minute load average when the run started. */
  load: number;
  /** The background removal of the attempt directory after the attempt returned, ms. */
  removalMs: number;
}

const PHASES = [
  "download",
  "snapshot_before",
  "run",
  "snapshot_after",
  "stage",
  "publish",
  "cleanup",
] as const;

/** The 1-minute load average (0 where /proc is missing). */
function loadAverage(): number {
  try {
    return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
  } catch {
    return 0;
  }
}

/**
 * Creates `count` new 4 KiB files in a new folder under `root` (100 a folder, one sync call
 * each, as the download writes small objects) and returns the ms it took; the folder is left
 * for the caller to remove.
 */
function createFiles(root: string, name: string, count: number): number {
  const dir = join(root, name);
  const data = new Uint8Array(4096).fill(1);
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    if (i % 100 === 0) Deno.mkdirSync(join(dir, String(i / 100)), { recursive: true });
    Deno.writeFileSync(join(dir, String(Math.floor(i / 100)), `f${i}`), data, { createNew: true });
  }
  return performance.now() - started;
}

async function runOnce(
  target: LakeFsTarget,
  root: string,
  kind: Kind,
  n: number,
  signal: AbortSignal,
): Promise<RunResult> {
  const cacheDir = objectCacheDir(root);
  if (kind === "cold_fill") await Deno.remove(cacheDir, { recursive: true }).catch(() => {});
  // A new instance each run: a new `perago run` or executor process keeps nothing in memory.
  const cache = kind === "cold_nocache"
    ? undefined
    : new ObjectCache({ dir: cacheDir, maxBytes: 5 * 1024 * MIB });
  const ref = (await target.client.getBranch(target.repo, "main")).commit_id;
  const attempt = {
    workflowInstanceId: `wf-warm-${n}`,
    taskId: `task-warm-${n}`,
    retryCount: 0,
    referenceTaskName: "touch",
    seq: 1,
    iteration: 0,
    taskDefName: touchOne.name,
  };
  const marks: [AttemptPhase, number][] = [];
  const load = loadAverage();
  const cpu = process.cpuUsage();
  const started = performance.now();
  const outcome = await runAttempt({
    task: touchOne,
    input: {
      workspace: { repository: target.repo, branch: "main", ref_type: "commit", ref },
      params: { path: `small/g0000/f${String(n).padStart(6, "0")}.bin` },
    },
    attempt,
    workspaceRoot: root,
    ownerWorkerId: "bench",
    failureReasonMaxLength: 500,
    lakefs: target.client,
    syncConcurrency: CONCURRENCY,
    ...(cache === undefined ? {} : { downloadCache: cache }),
    signal,
    loadCurrentAttempt: () =>
      Promise.resolve({
        status: "IN_PROGRESS",
        workflowInstanceId: attempt.workflowInstanceId,
        taskId: attempt.taskId,
        retryCount: 0,
      }),
    onPhase: (phase) => marks.push([phase, performance.now()]),
    // As `perago run` does: the directory is removed after the attempt returns.
    removeDirInBackground: true,
  });
  const ended = performance.now();
  const used = process.cpuUsage(cpu);
  // Each run starts once the previous one's directory is gone (timed apart).
  await trashedDirsRemoved();
  const removalMs = performance.now() - ended;
  if (outcome.status !== "COMPLETED") {
    throw new Error(`${kind} attempt ${outcome.status}: ${outcome.reasonForIncompletion}`);
  }
  // Marks in order: download, snapshot (before), run, snapshot (after, then fence #1 and the
  // upload plan), stage, publish, cleanup; each phase runs to the next mark.
  const order = marks.map(([phase]) => phase).join(",");
  if (order !== "download,snapshot,run,snapshot,stage,publish,cleanup") {
    throw new Error(`${kind}: unexpected phases ${order}`);
  }
  const times = [...marks.map(([, at]) => at), ended];
  const phases: Record<string, number> = {};
  PHASES.forEach((name, i) => phases[name] = times[i + 1]! - times[i]!);
  const stats = cache?.stats;
  return {
    totalMs: ended - started,
    phases,
    fromCache: stats?.hits ?? 0,
    downloaded: stats === undefined ? NaN : stats.misses,
    cpuMs: (used.user + used.system) / 1000,
    load,
    removalMs,
  };
}

/** The warm-attempt benchmark. */
export const bench: Bench = {
  name: "warm",
  description: "re-run after a 1-file change in 21,000 objects: cold vs warm host cache",
  async run(ctx: BenchContext): Promise<BenchResult> {
    const shape = SHAPES[ctx.size];
    const real = Deno.env.get("PERAGO_BENCH_REAL_LAKEFS") === "1";
    const target = await startLakeFsTarget("warm", real);
    try {
      const seedStarted = performance.now();
      await seed(target, shape, ctx.tempDir, ctx.signal);
      const seedMs = performance.now() - seedStarted;
      const root = join(ctx.tempDir, "ws");
      const results: Record<Kind, RunResult[]> = { cold_nocache: [], cold_fill: [], warm: [] };
      let n = 0;
      const floors: { afterDelete: number; again: number }[] = [];
      const floorCount = shape.large + shape.small;
      for (let round = 0; round < shape.rounds; round++) {
        for (const kind of ["cold_nocache", "cold_fill", "warm"] as const) {
          ctx.signal.throwIfAborted();
          results[kind].push(await runOnce(target, root, kind, n++, ctx.signal));
        }
        // What creating that many files costs here right after an attempt's removal, and
        // then again with nothing removed in between (the filesystem's part of every run).
        const afterDelete = createFiles(root, "floor-a", floorCount);
        const again = createFiles(root, "floor-b", floorCount);
        floors.push({ afterDelete, again });
        for (const name of ["floor-a", "floor-b"]) {
          await Deno.remove(join(root, name), { recursive: true });
        }
      }
      const figures: Figure[] = [];
      const total = (kind: Kind) => median(results[kind].map((r) => r.totalMs));
      for (const kind of ["cold_nocache", "cold_fill", "warm"] as const) {
        figures.push({
          name: `${kind}_total_ms`,
          value: total(kind),
          unit: "ms",
          note: "runAttempt, prefix /, one file rewritten",
        });
        for (const phase of PHASES) {
          figures.push({
            name: `${kind}_${phase}_ms`,
            value: median(results[kind].map((r) => r.phases[phase]!)),
            unit: "ms",
            ...(phase === "snapshot_after"
              ? { note: "snapshot after the task, fence #1 and the upload plan" }
              : {}),
          });
        }
        figures.push(
          {
            name: `${kind}_client_cpu_ms`,
            value: median(results[kind].map((r) => r.cpuMs)),
            unit: "ms",
            note: "user + system CPU of the bench process (the attempt; the server is apart)",
          },
          {
            name: `${kind}_background_removal_ms`,
            value: median(results[kind].map((r) => r.removalMs)),
            unit: "ms",
            note: "removing the attempt directory after the attempt returned (not in the total)",
          },
          {
            name: `${kind}_load_average`,
            value: median(results[kind].map((r) => r.load)),
            unit: "load",
            note: "1-minute load average at the start of the run (2 cores)",
          },
        );
      }
      figures.push(
        {
          name: "create_floor_after_delete_ms",
          value: median(floors.map((f) => f.afterDelete)),
          unit: "ms",
          note: `${floorCount} new 4 KiB files under the workspace root, created right after ` +
            "the warm run removed its attempt directory, as the next attempt would",
        },
        {
          name: "create_floor_again_ms",
          value: median(floors.map((f) => f.again)),
          unit: "ms",
          note: `${floorCount} more new files at once after that, nothing removed in between`,
        },
      );
      const last = results.warm[results.warm.length - 1]!;
      figures.push(
        { name: "warm_objects_from_cache", value: last.fromCache, unit: "objects" },
        { name: "warm_objects_downloaded", value: last.downloaded, unit: "objects" },
        {
          name: "warm_vs_cold_ratio",
          value: total("warm") / total("cold_nocache"),
          unit: "ratio",
          note: "warm total / cold total without cache",
        },
        {
          name: "warm_vs_cold_fill_ratio",
          value: total("warm") / total("cold_fill"),
          unit: "ratio",
          note: "warm total / cold total filling the cache",
        },
        {
          name: "cold_fill_overhead_ratio",
          value: total("cold_fill") / total("cold_nocache"),
          unit: "ratio",
          note: "what filling the cache adds to a cold run",
        },
        { name: "seed_ms", value: seedMs, unit: "ms", note: "upload + commit of the data set" },
      );
      const ratio = total("warm") / total("cold_nocache");
      return {
        params: {
          objects: `${shape.large} x ~1 MiB + ${shape.small} x 4 KiB`,
          rounds: shape.rounds,
          concurrency: CONCURRENCY,
          server: target.label,
        },
        figures,
        targets: [{
          name: "warm_vs_cold_ratio",
          target: "<= 0.10",
          value: ratio,
          met: ratio <= 0.1,
        }],
        notes: [
          "Each run starts at the head the previous run published, so each is a re-run after a " +
          "1-file change; the warm run downloads that one object and copies the rest.",
          "The warm run still lists every object and creates every file; the snapshot before " +
          "the task takes the SHA-256 the download knew, the one after reads only the files " +
          "whose ctime is not older than a stamp taken before the task; staging, fences and " +
          "the merge are the cold run's.",
          "Each attempt directory is removed after its attempt returns (as `perago run` does), " +
          "before the next run starts: *_background_removal_ms, not in the totals.",
          "create_floor_*: on an ext4 without a journal the kernel skips (and checks one by " +
          "one) inodes freed in the last minute when it allocates one, so creating files right " +
          "after a removal of as many costs far more than in a fresh place; every run here " +
          "follows such a removal (the seed's, then the previous run's).",
        ],
      };
    } finally {
      await target.close();
    }
  },
};
