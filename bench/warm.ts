/**
 * Warm attempts: the same writable task re-run after a 1-file change in a repository of
 * 21,000 objects (1,000 x 1 MiB and 20,000 x 4 KiB, as the sync benchmark), three ways in one
 * run, each starting from the branch head the previous one published:
 *
 * 1. cold, no cache: every object downloaded (what perago did before the host cache);
 * 2. cold, filling the host cache and the warm pool (both empty at the start): every object
 *    downloaded and added, and the attempt directory kept in the warm pool afterwards;
 * 3. warm: the attempt takes that directory from the warm pool and keeps every file of it
 *    that matches the listing (all but the one the previous run changed, whose checksum the
 *    pool computed), the host cache behind it for the rest.
 *
 * Each is a whole `runAttempt` (download, both snapshots, task, stage, fence, squash merge),
 * timed per phase, with the client's CPU and the load average; the attempt directory is removed
 * (or described for the warm pool) after the attempt returns (`removeDirInBackground`, as
 * `perago run` does) and before the next run, timed apart; each run's pool is then closed, as
 * a `perago run` process exiting. After the warm run, creating as many new files under the workspace root is
 * timed twice (right after that removal, then again) as the filesystem's floor. All of it is
 * measured twice, alternated: with the workspace root (and the host cache under it) on the
 * disk, then on /dev/shm when that is a tmpfs (figures prefixed `tmpfs_`), so perago's own cost
 * shows apart from the disk's file creation. `--full` repeats the three twice (the cache emptied
 * before each cold fill) and takes medians. The demo lakeFS runs in a child process; with
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
import { WARM_POOL_DIR_NAME, WarmPool } from "../src/workspace/warm_pool.ts";
import {
  type Bench,
  type BenchContext,
  type BenchResult,
  type Figure,
  median,
  type Size,
  type Target,
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
  /** Files kept from a directory of the warm pool (neither copied nor downloaded). */
  kept: number;
  /** The background removal of the attempt directory after the attempt returned, ms. */
  removalMs: number;
}

const PHASES = [
  "open",
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
  objects: number,
  signal: AbortSignal,
): Promise<RunResult> {
  const cacheDir = objectCacheDir(root);
  if (kind === "cold_fill") {
    await Deno.remove(cacheDir, { recursive: true }).catch(() => {});
    await Deno.remove(join(root, WARM_POOL_DIR_NAME), { recursive: true }).catch(() => {});
  }
  // A new instance each run: a new `perago run` or executor process keeps nothing in memory.
  const cache = kind === "cold_nocache"
    ? undefined
    : new ObjectCache({ dir: cacheDir, maxBytes: 5 * 1024 * MIB });
  // The cold fill leaves its directory in the warm pool; the warm run takes it.
  const pool = kind === "cold_nocache" ? undefined : new WarmPool({ root, maxDirs: 2 });
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
    ...(pool === undefined ? {} : { warmPool: pool }),
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
  // As when a `perago run` process exits: its directory becomes claimable (this bench's task
  // leaves nothing running once it returned).
  await pool?.close();
  if (outcome.status !== "COMPLETED") {
    throw new Error(`${kind} attempt ${outcome.status}: ${outcome.reasonForIncompletion}`);
  }
  // Marks in order: download, snapshot (before), run, snapshot (after, then fence #1 and the
  // upload plan), stage, publish, cleanup; each phase runs to the next mark.
  const order = marks.map(([phase]) => phase).join(",");
  if (order !== "download,snapshot,run,snapshot,stage,publish,cleanup") {
    throw new Error(`${kind}: unexpected phases ${order}`);
  }
  // "open" runs from the start to the first mark: the input checks and the attempt directory
  // (for the warm run: taking it from the warm pool and checking every file of it).
  const times = [started, ...marks.map(([, at]) => at), ended];
  const phases: Record<string, number> = {};
  PHASES.forEach((name, i) => phases[name] = times[i + 1]! - times[i]!);
  const stats = cache?.stats;
  return {
    totalMs: ended - started,
    phases,
    fromCache: stats?.hits ?? 0,
    downloaded: stats === undefined ? NaN : stats.misses,
    kept: stats === undefined ? 0 : objects - stats.hits - stats.misses,
    cpuMs: (used.user + used.system) / 1000,
    load,
    removalMs,
  };
}

/** A workspace root the runs use, on one filesystem. */
interface BenchFileSystem {
  /** Prefix of this filesystem's figure names (`""` for the disk, `tmpfs_`). */
  prefix: string;
  label: string;
  /** The filesystem type (from /proc/mounts, else "unknown"). */
  type: string;
  root: string;
  dispose(): Promise<void>;
}

/** The filesystem type of the mount holding `path` (longest mount point prefix of /proc/mounts). */
async function fileSystemType(path: string): Promise<string> {
  try {
    const real = await Deno.realPath(path);
    let best = { point: "", type: "unknown" };
    for (const line of (await Deno.readTextFile("/proc/mounts")).split("\n")) {
      const [, point, type] = line.split(" ");
      if (point === undefined || type === undefined) continue;
      const inside = real === point || real.startsWith(point.endsWith("/") ? point : `${point}/`);
      if (inside && point.length >= best.point.length) best = { point, type };
    }
    return best.type;
  } catch {
    return "unknown";
  }
}

/**
 * The workspace roots to measure: one under the bench's scratch directory (the disk), and one
 * on /dev/shm when it is a tmpfs (skipped with a note otherwise).
 */
async function benchFileSystems(tempDir: string): Promise<BenchFileSystem[]> {
  const disk = join(tempDir, "ws");
  await Deno.mkdir(disk, { recursive: true });
  const found: BenchFileSystem[] = [{
    prefix: "",
    label: "disk",
    type: await fileSystemType(disk),
    root: disk,
    dispose: () => Promise.resolve(),
  }];
  if (await fileSystemType("/dev/shm") === "tmpfs") {
    const root = await Deno.makeTempDir({ dir: "/dev/shm", prefix: "perago-bench-warm-" });
    found.push({
      prefix: "tmpfs_",
      label: "tmpfs",
      type: "tmpfs",
      root,
      dispose: () => Deno.remove(root, { recursive: true }).catch(() => {}),
    });
  }
  return found;
}

/** The runs and floors measured on one filesystem. */
interface Trial {
  results: Record<Kind, RunResult[]>;
  floors: { afterDelete: number; again: number }[];
}

function emptyTrial(): Trial {
  return { results: { cold_nocache: [], cold_fill: [], warm: [] }, floors: [] };
}

function trialTotal(trial: Trial, kind: Kind): number {
  return median(trial.results[kind].map((r) => r.totalMs));
}

/** The figures of one filesystem's trial, named with its prefix. */
function trialFigures(fs: BenchFileSystem, trial: Trial, floorCount: number): Figure[] {
  const { prefix } = fs;
  const where = `workspace root on ${fs.label} (${fs.type})`;
  const figures: Figure[] = [];
  const total = (kind: Kind) => trialTotal(trial, kind);
  for (const kind of ["cold_nocache", "cold_fill", "warm"] as const) {
    const runs = trial.results[kind];
    figures.push({
      name: `${prefix}${kind}_total_ms`,
      value: total(kind),
      unit: "ms",
      note: `runAttempt, prefix /, one file rewritten; ${where}`,
    });
    for (const phase of PHASES) {
      figures.push({
        name: `${prefix}${kind}_${phase}_ms`,
        value: median(runs.map((r) => r.phases[phase]!)),
        unit: "ms",
        ...(phase === "snapshot_after"
          ? { note: "snapshot after the task, fence #1 and the upload plan" }
          : phase === "open"
          ? { note: "the attempt directory made, or taken from the warm pool and walked" }
          : {}),
      });
    }
    figures.push(
      {
        name: `${prefix}${kind}_client_cpu_ms`,
        value: median(runs.map((r) => r.cpuMs)),
        unit: "ms",
        note: "user + system CPU of the bench process (the attempt; the server is apart)",
      },
      {
        name: `${prefix}${kind}_background_removal_ms`,
        value: median(runs.map((r) => r.removalMs)),
        unit: "ms",
        note: "removing the attempt directory after the attempt returned, or describing it " +
          "for the warm pool (cold fill, warm): not in the total",
      },
      {
        name: `${prefix}${kind}_load_average`,
        value: median(runs.map((r) => r.load)),
        unit: "load",
        note: "1-minute load average at the start of the run (2 cores)",
      },
    );
  }
  const last = trial.results.warm[trial.results.warm.length - 1]!;
  figures.push(
    {
      name: `${prefix}create_floor_after_delete_ms`,
      value: median(trial.floors.map((f) => f.afterDelete)),
      unit: "ms",
      note: `${floorCount} new 4 KiB files under the ${where}, created right after ` +
        "the warm run removed its attempt directory, as the next attempt would",
    },
    {
      name: `${prefix}create_floor_again_ms`,
      value: median(trial.floors.map((f) => f.again)),
      unit: "ms",
      note: `${floorCount} more new files at once after that, nothing removed in between`,
    },
    { name: `${prefix}warm_objects_from_cache`, value: last.fromCache, unit: "objects" },
    { name: `${prefix}warm_objects_downloaded`, value: last.downloaded, unit: "objects" },
    {
      name: `${prefix}warm_objects_kept`,
      value: last.kept,
      unit: "objects",
      note: "files kept in the directory taken from the warm pool",
    },
    {
      name: `${prefix}warm_vs_cold_ratio`,
      value: total("warm") / total("cold_nocache"),
      unit: "ratio",
      note: `warm total / cold total without cache; ${where}`,
    },
    {
      name: `${prefix}warm_vs_cold_fill_ratio`,
      value: total("warm") / total("cold_fill"),
      unit: "ratio",
      note: "warm total / cold total filling the cache",
    },
    {
      name: `${prefix}cold_fill_overhead_ratio`,
      value: total("cold_fill") / total("cold_nocache"),
      unit: "ratio",
      note: "what filling the cache adds to a cold run",
    },
  );
  return figures;
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
      const fileSystems = await benchFileSystems(ctx.tempDir);
      const trials = fileSystems.map((fs) => ({ fs, trial: emptyTrial() }));
      let n = 0;
      const floorCount = shape.large + shape.small;
      try {
        for (let round = 0; round < shape.rounds; round++) {
          // The filesystems alternate within a round (same server, same data set).
          for (const { fs, trial } of trials) {
            for (const kind of ["cold_nocache", "cold_fill", "warm"] as const) {
              ctx.signal.throwIfAborted();
              trial.results[kind].push(
                await runOnce(target, fs.root, kind, n++, floorCount, ctx.signal),
              );
            }
            // What creating that many files costs here right after an attempt's removal, and
            // then again with nothing removed in between (the filesystem's part of every run).
            const afterDelete = createFiles(fs.root, "floor-a", floorCount);
            const again = createFiles(fs.root, "floor-b", floorCount);
            trial.floors.push({ afterDelete, again });
            for (const name of ["floor-a", "floor-b"]) {
              await Deno.remove(join(fs.root, name), { recursive: true });
            }
          }
        }
      } finally {
        for (const fs of fileSystems) await fs.dispose();
      }
      const figures: Figure[] = [];
      const targets: Target[] = [];
      for (const { fs, trial } of trials) {
        figures.push(...trialFigures(fs, trial, floorCount));
        const ratio = trialTotal(trial, "warm") / trialTotal(trial, "cold_nocache");
        targets.push({
          name: `${fs.prefix}warm_vs_cold_ratio`,
          target: "<= 0.10",
          value: ratio,
          met: ratio <= 0.1,
        });
      }
      figures.push({
        name: "seed_ms",
        value: seedMs,
        unit: "ms",
        note: "upload + commit of the data set",
      });
      return {
        params: {
          objects: `${shape.large} x ~1 MiB + ${shape.small} x 4 KiB`,
          rounds: shape.rounds,
          concurrency: CONCURRENCY,
          server: target.label,
          workspace_roots: fileSystems.map((fs) => `${fs.label}: ${fs.type}`).join("; "),
        },
        figures,
        targets,
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
          "tmpfs_*: the same three runs with the workspace root (and the host cache under it) " +
          "on a tmpfs (/dev/shm), where creating a file costs no inode scan: perago's own cost, " +
          "apart from the disk's.",
        ],
      };
    } finally {
      await target.close();
    }
  },
};
