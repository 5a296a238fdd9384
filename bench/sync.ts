/**
 * Sync: download and staging throughput of perago's `downloadPrefix` / `stageChanges` against
 * a plain parallel `fetch` client moving the same objects with the same concurrency, on the
 * same demo lakeFS server (own process, state on disk). Then the re-publish of a whole
 * attempt (`runAttempt`) after a one-file change: time per phase and objects uploaded.
 *
 * The plain client does the minimum: list pages, GET each object streamed to a file, POST
 * each file streamed; no retries, no size or MD5 check, no path safety. perago verifies the
 * size and the MD5 of every download and the size of every upload. Large downloads also run
 * a third side, the plain client hashing each body as it pipes it (MD5 checked against the
 * listing): what any verifying client pays.
 *
 * The download sides rotate (each run another goes first; the large set's six download runs
 * put each side first twice), each side's files go to a new directory kept until the set's
 * downloads end, and the filesystem is synced before each side: no side pays for the files the
 * side before it removed or left to write back. The ratios are medians of the runs' own ratios.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import process from "node:process";
import { defineTask, z } from "../mod.ts";
import { downloadPrefix } from "../src/lakefs/sync.ts";
import { MD5_LANES, md5LanesWasmBytes } from "../src/lakefs/_md5_lanes.ts";
import { runAttempt } from "../src/workspace/attempt.ts";
import { resolveInsideDir } from "../src/workspace/safe_path.ts";
import {
  type Bench,
  type BenchContext,
  type BenchResult,
  type Figure,
  mbPerSec,
  median,
  pairedRatio,
  type Size,
  syncFilesystem,
  type Target,
  timeMs,
} from "./_common.ts";
import { type LakeFsChild, startLakeFsChild } from "./_lakefs.ts";
import { uploadFiles, writeDataSet } from "./_seed.ts";

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const REPO = "bench";
const CONCURRENCY = 8;

interface DataSet {
  label: string;
  count: number;
  bytes: number;
  /** Runs of each side (median taken). */
  runs: number;
  /** Download runs of each side when not `runs`. */
  downloadRuns?: number;
}

// The demo server persists its whole mutable state (every staged entry) after each change,
// so staging many small files costs it O(n) per request: 20,000 files is one run by default.
const SIZES: Record<Size, { sets: DataSet[] }> = {
  quick: {
    sets: [
      { label: "large", count: 128, bytes: MIB, runs: 1 },
      { label: "small", count: 2_000, bytes: 4096, runs: 1 },
    ],
  },
  // Six download runs of the large set: with three download sides rotated, each goes first
  // twice. This host's cost of fresh page-cache pages swings about 2x from one download to the
  // next (the same side's client CPU 1.8 to 3.4 s a GiB), whichever side meets it: three
  // paired ratios left the median to one such swing.
  default: {
    sets: [
      { label: "large", count: 1_000, bytes: Math.floor(GIB / 1000), runs: 3, downloadRuns: 6 },
      { label: "small", count: 20_000, bytes: 4096, runs: 1 },
    ],
  },
  full: {
    sets: [
      { label: "large", count: 1_000, bytes: Math.floor(GIB / 1000), runs: 6 },
      { label: "small", count: 20_000, bytes: 4096, runs: 2 },
    ],
  },
};

/** The download sides: perago, the plain client, the plain client verifying MD5. */
type Side = "perago" | "plain" | "plain_md5";

/** A tiny work pool, written plainly (not perago's `forEachConcurrent`). */
async function plainPool<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>) {
  let next = 0;
  const workers = Array.from({ length: n }, async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  });
  await Promise.all(workers);
}

function apiUrl(lakefs: LakeFsChild, path: string, query: Record<string, string>): string {
  const search = new URLSearchParams(query).toString();
  return `${lakefs.url}/api/v1${path}?${search}`;
}

async function plainUpload(
  lakefs: LakeFsChild,
  branch: string,
  files: readonly { key: string; path: string }[],
): Promise<void> {
  await plainPool(files, CONCURRENCY, async ({ key, path }) => {
    const file = await Deno.open(path);
    const response = await fetch(
      apiUrl(lakefs, `/repositories/${REPO}/branches/${branch}/objects`, { path: key }),
      {
        method: "POST",
        body: file.readable,
        headers: {
          authorization: lakefs.authorization,
          "content-type": "application/octet-stream",
        },
      },
    );
    if (response.status !== 201) {
      throw new Error(`plain upload of ${key}: HTTP ${response.status} ${await response.text()}`);
    }
    await response.json();
  });
}

/**
 * The plain client: list, GET each object piped to a new file. With `verify`, each body also
 * passes through a transform updating an MD5 (`node:crypto`), compared with the listing at
 * the end: the least a client checking what it downloaded does.
 */
async function plainDownload(
  lakefs: LakeFsChild,
  ref: string,
  prefix: string,
  dir: string,
  verify = false,
): Promise<number> {
  const keys: string[] = [];
  const checksums = new Map<string, string>();
  let after = "";
  while (true) {
    const response = await fetch(
      apiUrl(lakefs, `/repositories/${REPO}/refs/${ref}/objects/ls`, {
        amount: "1000",
        prefix,
        ...(after ? { after } : {}),
      }),
      { headers: { authorization: lakefs.authorization } },
    );
    const page = await response.json() as {
      results: { path: string; checksum: string }[];
      pagination: { has_more: boolean; next_offset: string };
    };
    for (const entry of page.results) {
      keys.push(entry.path);
      checksums.set(entry.path, entry.checksum);
    }
    if (!page.pagination.has_more) break;
    after = page.pagination.next_offset;
  }
  // One mkdir per folder; workers needing the same folder await the same promise.
  const made = new Map<string, Promise<void>>();
  await plainPool(keys, CONCURRENCY, async (key) => {
    const path = join(dir, key);
    const parent = dirname(path);
    let mkdir = made.get(parent);
    if (mkdir === undefined) {
      mkdir = Deno.mkdir(parent, { recursive: true });
      made.set(parent, mkdir);
    }
    await mkdir;
    const response = await fetch(
      apiUrl(lakefs, `/repositories/${REPO}/refs/${ref}/objects`, { path: key }),
      { headers: { authorization: lakefs.authorization } },
    );
    if (response.status !== 200 || response.body === null) {
      throw new Error(`plain download of ${key}: HTTP ${response.status}`);
    }
    const file = await Deno.open(path, { write: true, createNew: true });
    if (!verify) {
      await response.body.pipeTo(file.writable);
      return;
    }
    const md5 = createHash("md5");
    await response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          md5.update(chunk);
          controller.enqueue(chunk);
        },
      }),
    ).pipeTo(file.writable);
    if (md5.digest("hex") !== checksums.get(key)) throw new Error(`plain download of ${key}: MD5`);
  });
  return keys.length;
}

/** A writable task that rewrites one file of the workspace. */
const touchOne = defineTask({
  name: "bench_touch_one",
  ownerEmail: "bench@example.com",
  description: "rewrites one file",
  params: z.object({ path: z.string() }),
  result: z.object({ ok: z.boolean() }),
  workspace: { prefix: "/" },
  async run({ path }, ctx) {
    await Deno.writeTextFile(join(ctx.workspace!, path), `changed ${Date.now()}\n`);
    return { ok: true };
  },
});

async function measureSet(
  lakefs: LakeFsChild,
  set: DataSet,
  tempDir: string,
  signal: AbortSignal,
): Promise<{ figures: Figure[]; targets: Target[]; notes: string[]; commitId: string }> {
  const src = join(tempDir, `src-${set.label}`);
  const files = await writeDataSet(src, {
    label: set.label,
    count: set.count,
    bytes: set.bytes,
    seed: set.label === "large" ? 1 : 1e6,
  });
  const totalBytes = set.count * set.bytes;
  const head = (await lakefs.client.getBranch(REPO, "main")).commit_id;
  const runs = set.runs;

  // Staging: each run uploads everything to two fresh branches, alternating who goes first.
  const peragoUp: number[] = [];
  const plainUp: number[] = [];
  let stagedBranch = "";
  for (let run = 0; run < runs; run++) {
    signal.throwIfAborted();
    const pb = `perago-${set.label}-${run}`;
    const qb = `plain-${set.label}-${run}`;
    await lakefs.client.createBranch(REPO, pb, head);
    await lakefs.client.createBranch(REPO, qb, head);
    const order = run % 2 === 0 ? ["perago", "plain"] : ["plain", "perago"];
    for (const who of order) {
      if (who === "perago") {
        peragoUp.push(
          await timeMs(() =>
            uploadFiles(lakefs.client, REPO, pb, files, { concurrency: CONCURRENCY, signal })
          ),
        );
      } else plainUp.push(await timeMs(() => plainUpload(lakefs, qb, files)));
    }
    if (run === 0) stagedBranch = pb;
    else await lakefs.client.deleteBranch(REPO, pb);
    await lakefs.client.deleteBranch(REPO, qb);
  }
  const commit = await lakefs.client.commit(REPO, stagedBranch, `bench ${set.label}`);
  await lakefs.client.merge(REPO, stagedBranch, "main", { message: `bench ${set.label}` });
  await lakefs.client.deleteBranch(REPO, stagedBranch);

  // Download: everything at the commit into fresh directories.
  // Large objects also get a third side: the plain client verifying MD5 too.
  const sides: Side[] = set.label === "large"
    ? ["perago", "plain", "plain_md5"]
    : ["perago", "plain"];
  const downMs: Record<Side, number[]> = { perago: [], plain: [], plain_md5: [] };
  // CPU of both processes per side: what the download costs, whatever the wall clock.
  const cpu: Record<Side, { client: number[]; server: number[]; main: number[] }> = {
    perago: { client: [], server: [], main: [] },
    plain: { client: [], server: [], main: [] },
    plain_md5: { client: [], server: [], main: [] },
  };
  // Every side meets the disk in the same state: each download goes to a new directory kept
  // until the set's downloads end (a side creating its files right after the previous side
  // removed as many pays for the removal: see syncFilesystem), and the filesystem is synced
  // before each one (no side writes back the gigabyte the side before it left).
  const downDirs: string[] = [];
  for (let run = 0; run < (set.downloadRuns ?? runs); run++) {
    signal.throwIfAborted();
    // Each run rotates who goes first.
    const order = [...sides.slice(run % sides.length), ...sides.slice(0, run % sides.length)];
    for (const who of order) {
      const dir = join(tempDir, `down-${who}-${set.label}-${run}`);
      await Deno.mkdir(dir, { recursive: true });
      downDirs.push(dir);
      await syncFilesystem(dir);
      const clientBefore = process.cpuUsage();
      const mainBefore = mainThreadCpuMs();
      const serverBefore = await processCpuMs(lakefs.pid);
      if (who === "perago") {
        let n = 0;
        // As an attempt resolves its keys: each new file created exclusively (no lstat of
        // it first), each folder checked once.
        const checkedDirs = new Set<string>();
        downMs.perago.push(
          await timeMs(async () => {
            n = (await downloadPrefix(lakefs.client, {
              repo: REPO,
              ref: commit.id,
              prefix: `${set.label}/`,
              concurrency: CONCURRENCY,
              signal,
              resolvePath: (key) => resolveInsideDir(dir, key, checkedDirs, { createsNew: true }),
            })).length;
          }),
        );
        if (n !== set.count) throw new Error(`perago downloaded ${n} of ${set.count}`);
      } else {
        let n = 0;
        downMs[who].push(
          await timeMs(async () =>
            n = await plainDownload(lakefs, commit.id, `${set.label}/`, dir, who === "plain_md5")
          ),
        );
        if (n !== set.count) throw new Error(`plain downloaded ${n} of ${set.count}`);
      }
      const client = process.cpuUsage(clientBefore);
      cpu[who].client.push((client.user + client.system) / 1000);
      cpu[who].main.push(mainThreadCpuMs() - mainBefore);
      cpu[who].server.push(
        (await processCpuMs(lakefs.pid)) - serverBefore,
      );
    }
  }
  for (const dir of downDirs) await Deno.remove(dir, { recursive: true });
  const up = { perago: median(peragoUp), plain: median(plainUp) };
  const down = { perago: median(downMs.perago), plain: median(downMs.plain) };
  // The target's ratio: the median of the runs' own ratios (each run's sides back to back).
  const downRatio = pairedRatio(downMs.plain, downMs.perago);
  const l = set.label;
  const desc = `${set.count} files x ${set.bytes} B`;
  const figures: Figure[] = [
    {
      name: `${l}_download_perago_MBps`,
      value: mbPerSec(totalBytes, down.perago),
      unit: "MB/s",
      note: `downloadPrefix, ${desc}`,
    },
    { name: `${l}_download_plain_MBps`, value: mbPerSec(totalBytes, down.plain), unit: "MB/s" },
    {
      name: `${l}_download_ratio`,
      value: downRatio,
      unit: "ratio",
      note: `median of the runs' ratios (plain's time over perago's): ${
        downMs.plain.map((plain, i) => (plain / downMs.perago[i]!).toFixed(3)).join(", ")
      }; ratio of the median times ${(down.plain / down.perago).toFixed(3)}`,
    },
    {
      name: `${l}_download_perago_client_cpu_ms`,
      value: median(cpu.perago.client),
      unit: "ms",
      note: "CPU of the downloading process (user + system), perago",
    },
    { name: `${l}_download_plain_client_cpu_ms`, value: median(cpu.plain.client), unit: "ms" },
    {
      name: `${l}_download_perago_main_thread_cpu_ms`,
      value: median(cpu.perago.main),
      unit: "ms",
      note: "of the process's CPU, its main thread's (the one reading the network); plain: " +
        `${Math.round(median(cpu.plain.main))} ms. The rest is the file writes on the ` +
        "blocking pool and, for perago, the hashing worker",
    },
    {
      name: `${l}_download_server_cpu_ms_perago_plain`,
      value: median(cpu.perago.server),
      unit: "ms",
      note: `demo server CPU serving perago's download; plain: ${
        Math.round(median(cpu.plain.server))
      } ms`,
    },
    ...(downMs.plain_md5.length === 0 ? [] : [
      {
        name: `${l}_download_ratio_ceiling`,
        value: downloadCeiling(
          totalBytes,
          down.plain,
          median(cpu.plain.client) + median(cpu.plain.server),
        ),
        unit: "ratio",
        note: "the most a verifying client can reach here: plain's wall against the plain " +
          "client's and the server's CPU plus MD5 of every byte (md5_one_core_MBps), spread " +
          "over every core",
      },
      {
        name: `${l}_download_ratio_ceiling_lanes`,
        value: downloadCeiling(
          totalBytes,
          down.plain,
          median(cpu.plain.client) + median(cpu.plain.server),
          md5LanesSpeed(),
        ),
        unit: "ratio",
        note: "the same with MD5 at the many-lane module's speed (md5_lanes_one_core_MBps), " +
          "what perago's hashing workers run",
      },
      {
        name: `${l}_download_ratio_at_plain_cpu_rate`,
        value: (median(cpu.plain.client) + median(cpu.plain.server)) /
          (median(cpu.plain.client) + median(cpu.plain.server) +
            totalBytes / (md5Speed() * 1e6) * 1000),
        unit: "ratio",
        note: "the same for a verifying client given CPU at the rate the plain side got it " +
          "(a loaded host): plain's CPU against plain's CPU plus MD5 of every byte",
      },
      {
        name: `${l}_download_plain_md5_MBps`,
        value: mbPerSec(totalBytes, median(downMs.plain_md5)),
        unit: "MB/s",
        note: "the plain client also hashing every body (MD5) and checking it against the listing",
      },
      {
        name: `${l}_download_ratio_vs_plain_md5`,
        value: pairedRatio(downMs.plain_md5, downMs.perago),
        unit: "ratio",
        note: "perago against the plain client that verifies too (median of the runs' ratios)",
      },
      {
        name: `${l}_download_plain_md5_client_cpu_ms`,
        value: median(cpu.plain_md5.client),
        unit: "ms",
      },
    ]),
    {
      name: `${l}_download_perago_files_per_s`,
      value: set.count / (down.perago / 1000),
      unit: "files/s",
    },
    {
      name: `${l}_stage_perago_MBps`,
      value: mbPerSec(totalBytes, up.perago),
      unit: "MB/s",
      note: `stageChanges, ${desc}`,
    },
    { name: `${l}_stage_plain_MBps`, value: mbPerSec(totalBytes, up.plain), unit: "MB/s" },
    { name: `${l}_stage_ratio`, value: up.plain / up.perago, unit: "ratio" },
    {
      name: `${l}_stage_perago_files_per_s`,
      value: set.count / (up.perago / 1000),
      unit: "files/s",
    },
  ];
  const targets: Target[] = [
    {
      name: `${l}_download_ratio`,
      target: l === "large" ? ">= 0.9" : ">= 0.8",
      value: downRatio,
      met: downRatio >= (l === "large" ? 0.9 : 0.8),
    },
    {
      name: `${l}_stage_ratio`,
      target: ">= 0.8",
      value: up.plain / up.perago,
      met: up.plain / up.perago >= 0.8,
    },
  ];
  await Deno.remove(src, { recursive: true });
  return { figures, targets, notes: [], commitId: commit.id };
}

async function measureRepublish(
  lakefs: LakeFsChild,
  set: DataSet,
  tempDir: string,
  signal: AbortSignal,
): Promise<Figure[]> {
  const ref = (await lakefs.client.getBranch(REPO, "main")).commit_id;
  const marks: Record<string, number> = {};
  const started = performance.now();
  await lakefs.resetStats();
  const attempt = {
    workflowInstanceId: "wf-bench",
    taskId: "task-bench",
    retryCount: 0,
    referenceTaskName: "touch",
    seq: 1,
    iteration: 0,
    taskDefName: touchOne.name,
  };
  const outcome = await runAttempt({
    task: touchOne,
    input: {
      workspace: { repository: REPO, branch: "main", ref_type: "commit", ref },
      params: { path: `${set.label}/g0000/f000000.bin` },
    },
    attempt,
    workspaceRoot: join(tempDir, "ws"),
    ownerWorkerId: "bench",
    failureReasonMaxLength: 500,
    lakefs: lakefs.client,
    syncConcurrency: CONCURRENCY,
    signal,
    loadCurrentAttempt: () =>
      Promise.resolve({
        status: "IN_PROGRESS",
        workflowInstanceId: attempt.workflowInstanceId,
        taskId: attempt.taskId,
        retryCount: 0,
      }),
    onPhase: (phase) => marks[phase] = performance.now(),
  });
  const total = performance.now() - started;
  if (outcome.status !== "COMPLETED") {
    throw new Error(`re-publish attempt ${outcome.status}: ${outcome.reasonForIncompletion}`);
  }
  const stats = await lakefs.stats();
  const phase = (from: string, to: string) => (marks[to] ?? NaN) - (marks[from] ?? NaN);
  const l = set.label;
  // The whole repository holds both data sets; the attempt's prefix is "/" (everything).
  return [
    {
      name: `republish_total_ms`,
      value: total,
      unit: "ms",
      note: "runAttempt, one file rewritten, prefix / (both data sets)",
    },
    { name: `republish_download_ms`, value: phase("download", "run"), unit: "ms" },
    {
      name: `republish_run_ms`,
      value: phase("run", "stage"),
      unit: "ms",
      note: "includes both snapshots",
    },
    { name: `republish_stage_ms`, value: phase("stage", "publish"), unit: "ms" },
    { name: `republish_publish_ms`, value: phase("publish", "cleanup"), unit: "ms" },
    {
      name: `republish_objects_uploaded`,
      value: stats.uploadObject ?? 0,
      unit: "objects",
      note: `server count; ${l} set changed by one file`,
    },
    { name: `republish_objects_deleted`, value: stats.deleteObjects ?? 0, unit: "requests" },
  ];
}

/** The sync benchmark. */
export const bench: Bench = {
  name: "sync",
  description: "download/stage MB/s vs plain fetch; re-publish after a 1-file change",
  async run(ctx: BenchContext): Promise<BenchResult> {
    const size = SIZES[ctx.size];
    const lakefs = await startLakeFsChild(join(ctx.tempDir, "lakefs-data"));
    try {
      await lakefs.client.createRepository(REPO, `local://${REPO}`, "main");
      const figures: Figure[] = [];
      const targets: Target[] = [];
      for (const set of size.sets) {
        const result = await measureSet(lakefs, set, ctx.tempDir, ctx.signal);
        figures.push(...result.figures);
        targets.push(...result.targets);
      }
      figures.push(...await measureRepublish(lakefs, size.sets[0]!, ctx.tempDir, ctx.signal));
      figures.push({
        name: "md5_one_core_MBps",
        value: md5Speed(),
        unit: "MB/s",
        note: "node:crypto MD5 of 256 MiB in memory, one thread",
      });
      figures.push({
        name: "md5_lanes_one_core_MBps",
        value: md5LanesSpeed(),
        unit: "MB/s",
        note: `perago's many-lane MD5 (WebAssembly SIMD), ${MD5_LANES} buffers of 1 MiB at ` +
          "once, 256 MiB in all, one thread",
      });
      return {
        params: {
          sets: size.sets.map((s) =>
            `${s.count} x ${s.bytes} B, ${s.runs} run(s)` +
            (s.downloadRuns === undefined ? "" : `, ${s.downloadRuns} download runs`)
          ),
          concurrency: CONCURRENCY,
          server: "demo lakeFS, own process, data dir on local disk",
        },
        figures,
        targets,
        notes: [
          "Both clients talk to the same demo lakeFS server, which runs in its own Deno " +
          "process and writes every upload to disk (MD5 computed as it streams); on this " +
          "2-core machine the server and the client share two cores.",
          "perago verifies the size and MD5 of every download: objects up to 256 KiB in " +
          "memory as they arrive, larger ones read over kept-alive connections straight into " +
          "slots of memory shared with a worker thread, each slot written to its file and then " +
          "hashed by the worker with every other download's slots at once in WebAssembly SIMD " +
          "lanes (nothing read back); " +
          "the plain client checks nothing, its plain_md5 variant hashes each body as it pipes " +
          "it to the file. large_download_ratio_ceiling is what the CPU allows any verifying " +
          "client.",
        ],
      };
    } finally {
      await lakefs.close();
    }
  },
};

/** User + system CPU of this process's main thread in ms (Linux `/proc/self/task/<pid>/stat`). */
function mainThreadCpuMs(): number {
  let stat = "";
  try {
    stat = Deno.readTextFileSync(`/proc/self/task/${Deno.pid}/stat`);
  } catch {
    return NaN;
  }
  return statCpuMs(stat);
}

/** User + system CPU of a process in ms (Linux `/proc/<pid>/stat`). */
async function processCpuMs(pid: number): Promise<number> {
  return statCpuMs(await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => ""));
}

/** utime + stime of a `/proc` stat line in ms (100 ticks a second); NaN for an empty line. */
function statCpuMs(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * The best download ratio a client verifying MD5 can reach on this host: the plain side's
 * CPU (client and server) plus MD5 of every byte, on all cores at once, against the plain
 * side's wall time. Capped at 1 when the plain side leaves more idle CPU than MD5 needs.
 */
function downloadCeiling(
  bytes: number,
  plainMs: number,
  plainCpuMs: number,
  md5MBps = md5Speed(),
): number {
  const md5Ms = bytes / (md5MBps * 1e6) * 1000;
  const cores = navigator.hardwareConcurrency ?? 1;
  return Math.min(1, plainMs / Math.max(plainMs, (plainCpuMs + md5Ms) / cores));
}

/**
 * MB/s of the many-lane MD5 module perago's hashing workers run (a 1 MiB buffer per lane, all
 * at once), on one core.
 */
function md5LanesSpeed(): number {
  const pages = (MD5_LANES + 1) * 16;
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const { md5lanes } = new WebAssembly.Instance(
    new WebAssembly.Module(md5LanesWasmBytes(pages)),
    { env: { memory } },
  ).exports as { md5lanes: (...args: number[]) => void };
  const state = MD5_LANES * MIB;
  const buffers = Array.from({ length: MD5_LANES }, (_, i) => i * MIB);
  md5lanes(state, ...buffers, MIB / 64);
  const rounds = Math.round(256 / MD5_LANES);
  const started = performance.now();
  for (let i = 0; i < rounds; i++) md5lanes(state, ...buffers, MIB / 64);
  return mbPerSec(rounds * MD5_LANES * MIB, performance.now() - started);
}

/** MB/s of node:crypto MD5 on this machine, now. */
function md5Speed(): number {
  const block = new Uint8Array(1024 * 1024);
  crypto.getRandomValues(block.subarray(0, 65536));
  const hash = createHash("md5");
  const started = performance.now();
  for (let i = 0; i < 256; i++) hash.update(block);
  hash.digest("hex");
  return mbPerSec(256 * 1024 * 1024, performance.now() - started);
}
