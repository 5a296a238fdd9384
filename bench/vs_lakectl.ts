/**
 * perago against lakeFS's own CLI on the real lakeFS: a 1-file change in a repository of
 * 1,000 files, as a user would make it.
 *
 * - perago: `perago run bench/_touch_task.ts --input ...` (a whole CLI process: Deno start-up,
 *   download of the 1,000 objects, both snapshots, the task, staging branch, fences, squash
 *   merge), cold (object cache off, a new workspace root) and warm (the host cache filled by
 *   an earlier run, and the warm pool holding the directory the previous warm run left);
 * - lakectl: `lakectl local clone` into a new directory, the edit, `lakectl local commit`;
 * - the cold perago run and lakectl's again with their files on tmpfs (`/dev/shm`, when there
 *   is one): on a disk filesystem creating a file can cost what was deleted just before (see
 *   the notes), on tmpfs it costs the same every time, which shows each side's own work.
 *
 * They alternate (each compared pair back to back, who goes first swapping every round), each
 * run changing another file of the head the previous one left. The ratios are the medians of
 * the rounds' own ratios (each pair's two sides met the same machine a second apart), so a
 * round slowed for both sides by the rest of the machine moves neither the ratio nor its
 * median the way one slow run moves a median of times. The disk is settled the same way
 * before every timed run:
 * - nothing is removed from the disk until the bench ends: a removal of 1,000 files between
 *   runs would make the next run's file creations pay for it (see the notes);
 * - the filesystem is synced (`sync -f`, untimed) before each run, so no side's run writes
 *   back the files the run before it left (the kernel's writeback would otherwise land in
 *   whichever run comes 30 s later) and the inodes others freed leave the kernel's
 *   "recently deleted" window on its shorter, clean-block course;
 * - before each disk pair, 200 files are created in a new directory beside the runs (untimed
 *   for the sides, reported as `disk_create_probe_us`): the first files created after a mass
 *   removal pay the most for it, and the probe shows what the rest of the machine left.
 * Needs the real lakeFS (`PERAGO_TEST_LAKEFS_*`, else `../shared/tools/lakefs/start.sh`) and
 * lakectl (`unpack-lakectl.sh`).
 *
 * @module
 */
import { join } from "node:path";
import { stageChanges } from "../src/lakefs/sync.ts";
import {
  type Bench,
  type BenchContext,
  type BenchResult,
  type Figure,
  median,
  pairedRatio,
  ROOT,
  runCommand,
  type Size,
  syncFilesystem,
  timeMs,
} from "./_common.ts";
import {
  benchRepoName,
  deleteRepository,
  lakectlPath,
  realLakeFs,
  type RealLakeFsTarget,
} from "./_real.ts";

const SHAPES: Record<Size, { files: number; bytes: number; rounds: number }> = {
  quick: { files: 200, bytes: 4096, rounds: 1 },
  // Six rounds: a round costs about 4 s, and the median of six paired ratios holds when
  // one or two rounds meet a disturbed disk.
  default: { files: 1_000, bytes: 4096, rounds: 6 },
  full: { files: 1_000, bytes: 4096, rounds: 10 },
};

const TASK = join(ROOT, "bench", "_touch_task.ts");

/** Files of the creation probe before each round (see {@linkcode createProbeUs}). */
const PROBE_FILES = 200;

function keyOf(i: number): string {
  return `data/d${String(Math.floor(i / 100)).padStart(2, "0")}/f${String(i).padStart(4, "0")}.txt`;
}

async function seed(lakefs: RealLakeFsTarget, repo: string, files: number, bytes: number) {
  const uploads = [];
  for (let i = 0; i < files; i++) {
    const data = new Uint8Array(bytes);
    crypto.getRandomValues(data);
    uploads.push({ key: keyOf(i), size: bytes, open: () => Promise.resolve(data) });
  }
  await stageChanges(lakefs.client, {
    repo,
    branch: "main",
    uploads,
    deletes: [],
    concurrency: 16,
  });
  await lakefs.client.commit(repo, "main", "bench vs_lakectl: seed");
}

/** One `perago run` process; `cache` is the object cache bound ("0": off). */
async function peragoRun(
  lakefs: RealLakeFsTarget,
  repo: string,
  path: string,
  dir: string,
  cache: string,
): Promise<void> {
  const input = join(dir, `input-${crypto.randomUUID()}.json`);
  await Deno.writeTextFile(
    input,
    JSON.stringify({
      workspace: { repository: repo, branch: "main", ref_type: "commit" },
      params: { path },
    }),
  );
  await runCommand(
    Deno.execPath(),
    ["run", "-A", join(ROOT, "main.ts"), "run", TASK, "-i", input],
    {
      cwd: dir,
      env: {
        ...baseEnv(lakefs),
        PERAGO_WORKSPACE_ROOT: join(dir, "ws"),
        PERAGO_LOG_ROOT: join(dir, "logs"),
        PERAGO_OBJECT_CACHE_MAX_SIZE: cache,
      },
    },
  );
}

/**
 * `lakectl local clone`, the edit, `lakectl local commit`, in a new directory of `dir`, kept
 * (the bench removes them all at its end).
 */
async function lakectlRun(
  lakectl: string,
  lakefs: RealLakeFsTarget,
  repo: string,
  path: string,
  dir: string,
): Promise<void> {
  const checkout = join(dir, `clone-${crypto.randomUUID()}`);
  const env = baseEnv(lakefs);
  const flags = ["--no-progress", "--pre-sign=false"];
  await runCommand(lakectl, ["local", "clone", `lakefs://${repo}/main/`, checkout, ...flags], {
    env,
  });
  await Deno.writeTextFile(join(checkout, path), `changed ${crypto.randomUUID()}\n`);
  await runCommand(lakectl, [
    "local",
    "commit",
    checkout,
    "-m",
    "bench vs_lakectl: lakectl",
    ...flags,
  ], { env });
  // The checkout stays until the bench ends (it is inside the run's directory): removing its
  // 1,000 files here would be timed as lakectl's, and on an ext4 without a journal the next
  // run's file creations, on either side, would pay for the inodes it freed.
}

/** CPU time of a side's processes, ms. */
interface Cpu {
  user: number;
  sys: number;
}

/**
 * User and system CPU of this process's children that have ended (`cutime`, `cstime` of
 * /proc/self/stat, in USER_HZ ticks: 100 a second on Linux), so the difference around one run
 * is the CPU of the processes it ran; `undefined` off Linux.
 */
async function childCpuMs(): Promise<Cpu | undefined> {
  try {
    const stat = await Deno.readTextFile("/proc/self/stat");
    // The fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // cutime and cstime are fields 16 and 17 of the whole line (3rd is the first after it).
    return { user: Number(fields[13]) * 10, sys: Number(fields[14]) * 10 };
  } catch {
    return undefined;
  }
}

/** `run` timed, with the CPU of the processes it ran. */
async function timed(run: () => Promise<void>): Promise<{ ms: number; cpu?: Cpu }> {
  const before = await childCpuMs();
  const ms = await timeMs(run);
  const after = await childCpuMs();
  return before === undefined || after === undefined
    ? { ms }
    : { ms, cpu: { user: after.user - before.user, sys: after.sys - before.sys } };
}

function baseEnv(lakefs: RealLakeFsTarget): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/tmp",
    ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
    NO_COLOR: "1",
    LAKECTL_SERVER_ENDPOINT_URL: lakefs.url,
    LAKECTL_CREDENTIALS_ACCESS_KEY_ID: lakefs.accessKeyId,
    LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: lakefs.secretAccessKey,
  };
}

/** The runs measured: the three of the comparison, and the two cold ones again on tmpfs. */
type Kind = "perago_cold" | "perago_warm" | "lakectl" | "perago_cold_tmpfs" | "lakectl_tmpfs";

/**
 * A new directory on tmpfs (`/dev/shm`), where creating a file costs the same whatever was
 * deleted before; `undefined` when there is none to write to.
 */
async function tmpfsDir(): Promise<string | undefined> {
  try {
    if (!(await Deno.stat("/dev/shm")).isDirectory) return undefined;
    return await Deno.makeTempDir({ dir: "/dev/shm", prefix: "perago-bench-vs-lakectl-" });
  } catch {
    return undefined;
  }
}

/** Median user and system CPU of each side, when measured. */
function cpuFigures(cpu: Record<Kind, Cpu[]>): Figure[] {
  const figures: Figure[] = [];
  for (const [kind, runs] of Object.entries(cpu)) {
    if (runs.length === 0) continue;
    for (const part of ["user", "sys"] as const) {
      figures.push({
        name: `${kind}_cpu_${part}_ms`,
        value: median(runs.map((run) => run[part])),
        unit: "ms",
        note: `${part === "user" ? "user" : "system"} CPU of the side's processes`,
      });
    }
  }
  return figures;
}

/** The cold comparison again with both sides' files on tmpfs, when it ran. */
function tmpfsFigures(times: Record<Kind, number[]>): Figure[] {
  if (times.perago_cold_tmpfs.length === 0 || times.lakectl_tmpfs.length === 0) return [];
  const perago = median(times.perago_cold_tmpfs);
  const lakectl = median(times.lakectl_tmpfs);
  return [
    {
      name: "perago_cold_tmpfs_ms",
      value: perago,
      unit: "ms",
      note: "perago run cold, its workspace and log roots on tmpfs",
    },
    {
      name: "lakectl_tmpfs_ms",
      value: lakectl,
      unit: "ms",
      note: "lakectl clone + edit + commit, its checkout on tmpfs",
    },
    {
      name: "perago_cold_vs_lakectl_tmpfs_ratio",
      value: pairedRatio(times.perago_cold_tmpfs, times.lakectl_tmpfs),
      unit: "ratio",
      note: "the same comparison where file creation costs nothing for either side (median " +
        "of the rounds' ratios)",
    },
  ];
}

/**
 * Microseconds per file of creating `files` new 4 KiB files, one after the other, in a new
 * directory of `dir` (kept until the bench ends, like the runs' files): what creating a file
 * costs on that filesystem right now, after whatever the rest of the machine removed.
 */
function createProbeUs(dir: string, files: number): number {
  const probe = Deno.makeTempDirSync({ dir, prefix: "probe" });
  const data = new Uint8Array(4096);
  const started = performance.now();
  for (let i = 0; i < files; i++) {
    Deno.writeFileSync(join(probe, `f${i}`), data, { createNew: true });
  }
  return (performance.now() - started) * 1000 / files;
}

/** The vs_lakectl benchmark. */
export const bench: Bench = {
  name: "vs_lakectl",
  description: "perago run of a 1-file change in 1,000 files vs lakectl local clone + commit",
  async run(ctx: BenchContext): Promise<BenchResult> {
    const shape = SHAPES[ctx.size];
    const lakectl = await lakectlPath();
    const lakefs = await realLakeFs(ctx.tempDir);
    const repo = benchRepoName("vs-lakectl");
    const shm = await tmpfsDir();
    try {
      await lakefs.client.createRepository(repo, `local://${repo}`, "main");
      await seed(lakefs, repo, shape.files, shape.bytes);
      const warmDir = join(ctx.tempDir, "warm");
      await Deno.mkdir(warmDir, { recursive: true });
      let n = 0;
      const next = () => keyOf((n++ * 37) % shape.files);
      // Fills the host cache of the warm runs (not measured).
      await peragoRun(lakefs, repo, next(), warmDir, "1GB");
      const times: Record<Kind, number[]> = {
        perago_cold: [],
        perago_warm: [],
        lakectl: [],
        perago_cold_tmpfs: [],
        lakectl_tmpfs: [],
      };
      const cpu: Record<Kind, Cpu[]> = {
        perago_cold: [],
        perago_warm: [],
        lakectl: [],
        perago_cold_tmpfs: [],
        lakectl_tmpfs: [],
      };
      // Each compared pair runs back to back, the side going first alternating by round: the
      // cost of creating a file on the disk drifts with what the filesystem freed in the last
      // minutes (the seeding, other processes), so the two sides of a pair meet the same state.
      const groups: Kind[][] = [
        ["perago_cold", "lakectl"],
        ["perago_warm"],
        ...(shm === undefined ? [] : [["perago_cold_tmpfs", "lakectl_tmpfs"] as Kind[]]),
      ];
      const probes: number[] = [];
      for (let round = 0; round < shape.rounds; round++) {
        const order = groups.flatMap((group) => round % 2 === 0 ? group : [...group].reverse());
        await syncFilesystem(ctx.tempDir);
        probes.push(createProbeUs(ctx.tempDir, PROBE_FILES));
        for (const kind of order) {
          ctx.signal.throwIfAborted();
          const path = next();
          const onTmpfs = kind.endsWith("_tmpfs");
          const dir = kind === "perago_warm" ? warmDir : await Deno.makeTempDir({
            dir: (onTmpfs ? shm : undefined) ?? ctx.tempDir,
            prefix: kind,
          });
          await syncFilesystem(ctx.tempDir);
          const run = await timed(() =>
            kind.startsWith("lakectl")
              ? lakectlRun(lakectl, lakefs, repo, path, dir)
              : peragoRun(lakefs, repo, path, dir, kind === "perago_warm" ? "1GB" : "0")
          );
          times[kind].push(run.ms);
          if (run.cpu !== undefined) cpu[kind].push(run.cpu);
        }
      }
      const m = {
        cold: median(times.perago_cold),
        warm: median(times.perago_warm),
        lakectl: median(times.lakectl),
      };
      const coldRatio = pairedRatio(times.perago_cold, times.lakectl);
      const figures: Figure[] = [
        {
          name: "perago_cold_ms",
          value: m.cold,
          unit: "ms",
          note: "perago run (whole process), object cache off",
        },
        {
          name: "perago_warm_ms",
          value: m.warm,
          unit: "ms",
          note: "perago run (whole process), host cache filled by earlier runs, the warm " +
            "pool holding the previous warm run's directory",
        },
        {
          name: "lakectl_ms",
          value: m.lakectl,
          unit: "ms",
          note: "lakectl local clone + edit + lakectl local commit",
        },
        ...cpuFigures(cpu),
        ...tmpfsFigures(times),
        {
          name: "disk_create_probe_us",
          value: median(probes),
          unit: "us",
          note: `creating a 4 KiB file on the disk before each round (${PROBE_FILES} files; ` +
            `max ${Math.round(Math.max(...probes))} us): some 20 us on a settled ext4 here, ` +
            "up to 1,000 us after a mass removal",
        },
        {
          name: "perago_cold_vs_lakectl_ratio_of_medians",
          value: m.cold / m.lakectl,
          unit: "ratio",
          note: "median time over median time (the target takes the rounds' own ratios)",
        },
        {
          name: "perago_cold_vs_lakectl_ratio",
          value: coldRatio,
          unit: "ratio",
          note: "median of the rounds' ratios (each pair back to back)",
        },
        {
          name: "perago_warm_vs_lakectl_ratio",
          value: pairedRatio(times.perago_warm, times.lakectl),
          unit: "ratio",
          note: "median of the rounds' ratios",
        },
      ];
      return {
        params: {
          files: `${shape.files} x ${shape.bytes} B`,
          rounds: shape.rounds,
          server: lakefs.label,
          lakectl: "1.84.0, parallelism 25 (its default), --pre-sign=false (local block store)",
        },
        figures,
        targets: [
          {
            name: "perago_cold_vs_lakectl_ratio",
            target: "<= 1.0",
            value: coldRatio,
            met: coldRatio <= 1.0,
          },
        ],
        notes: [
          "perago does more than lakectl here: a staging branch, two fences, a squash merge " +
          "and the branch check after it; lakectl commits straight onto the branch.",
          "perago's time includes Deno starting and loading perago from source (a compiled " +
          "binary skips the module loading).",
          "CPU figures are of each side's own processes (user / system, median of the rounds); " +
          "lakeFS's CPU is not in them. Both sides create every file of the repository: on an " +
          "ext4 without a journal each creation scans past the inodes freed in the last minute " +
          "or so (the kernel avoids reusing them), so system time, and wall time with it, grows " +
          "with what was deleted just before on that filesystem (60 s after the deletion, 360 s " +
          "while the inode table block is unwritten), and the first creations after a mass " +
          "removal pay the most. The bench removes nothing there until it ends, syncs the " +
          "filesystem before every run (no run writes back the previous one's files), creates " +
          "a probe of files before each round (disk_create_probe_us shows what the rest of the " +
          "machine left), and runs each compared pair back to back, its ratio the median of the " +
          "rounds' ratios, so both sides meet the same state; what other processes free during " +
          "a run still moves it.",
        ],
      };
    } finally {
      if (shm !== undefined) await Deno.remove(shm, { recursive: true }).catch(() => {});
      await deleteRepository(lakefs, repo);
      await lakefs.close();
    }
  },
};
