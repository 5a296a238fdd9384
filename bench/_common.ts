// deno-lint-ignore-file no-console
/**
 * Shared helpers of the benchmark scripts: arguments, machine facts, timing, the printed
 * table, the results file, test data and child-process helpers.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { join } from "node:path";

/** Repository root (absolute, with a trailing slash). */
export const ROOT = fileURLToPath(new URL("../", import.meta.url));
/** Where results go. */
export const RESULTS_DIR = join(ROOT, "bench", "results");

/** Size preset of a run. */
export type Size = "quick" | "default" | "full";

/** Options every benchmark receives from `bench/main.ts`. */
export interface BenchContext {
  /** Size preset (`--quick`, default, `--full`). */
  readonly size: Size;
  /** Scratch directory, removed by `main.ts` when the benchmark ends. */
  readonly tempDir: string;
  /** Cancels the run (SIGINT). */
  readonly signal: AbortSignal;
}

/** One measured figure. */
export interface Figure {
  /** Short name, e.g. `sha256_large_perago_GBps`. */
  readonly name: string;
  readonly value: number;
  /** Unit, e.g. `GB/s`, `ms`, `MiB`, `ratio`. */
  readonly unit: string;
  /** What the figure is, in a few words. */
  readonly note?: string;
}

/** A target a benchmark checks. */
export interface Target {
  readonly name: string;
  /** Human-readable target, e.g. `>= 0.8`. */
  readonly target: string;
  readonly value: number;
  readonly met: boolean;
}

/** What one benchmark returns. */
export interface BenchResult {
  /** Parameters of the run (sizes, concurrency...). */
  readonly params: Record<string, unknown>;
  readonly figures: Figure[];
  readonly targets: Target[];
  /** Remarks: what limits the figures, what was skipped and why. */
  readonly notes: string[];
}

/** A benchmark: a name and a function. */
export interface Bench {
  readonly name: string;
  readonly description: string;
  run(ctx: BenchContext): Promise<BenchResult>;
}

/** Facts about the machine, written into every results file. */
export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  memTotalMiB: number;
  memAvailableMiB: number;
  deno: string;
  v8: string;
  os: string;
  date: string;
  /** Load average over 1, 5 and 15 minutes when the results were written (other work on the host). */
  loadAverage: number[];
}

function meminfoMiB(text: string, key: string): number {
  const match = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text);
  return match ? Math.round(Number(match[1]) / 1024) : 0;
}

/** Reads the machine facts (Linux `/proc`; zeros elsewhere). */
export async function machineInfo(): Promise<MachineInfo> {
  const meminfo = await Deno.readTextFile("/proc/meminfo").catch(() => "");
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? "unknown";
  return {
    nproc: navigator.hardwareConcurrency,
    cpuModel: model.trim(),
    memTotalMiB: meminfoMiB(meminfo, "MemTotal"),
    memAvailableMiB: meminfoMiB(meminfo, "MemAvailable"),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    os: `${Deno.build.os}-${Deno.build.arch}`,
    date: new Date().toISOString(),
    loadAverage: Deno.loadavg().map((load) => Math.round(load * 100) / 100),
  };
}

/** Milliseconds `fn` took. */
export async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

/** Median of a non-empty list. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("median of nothing");
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Percentile (nearest rank) of a non-empty list; `p` in 0..100. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new RangeError("percentile of nothing");
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** Rounds for display and JSON (3 significant decimals at most). */
export function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** MB/s (10^6 bytes per second) of `bytes` moved in `ms`. */
export function mbPerSec(bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1000);
}

/** Prints a benchmark's figures and targets as a small table. */
export function printResult(name: string, result: BenchResult): void {
  const rows = result.figures.map((f) => [f.name, String(round(f.value)), f.unit, f.note ?? ""]);
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length), 4));
  console.log(`\n== ${name} ${JSON.stringify(result.params)}`);
  for (const row of rows) {
    console.log(
      `  ${row[0]!.padEnd(widths[0]!)}  ${row[1]!.padStart(widths[1]!)} ${
        row[2]!.padEnd(widths[2]!)
      }  ${row[3]}`,
    );
  }
  for (const t of result.targets) {
    console.log(`  target ${t.name} ${t.target}: ${round(t.value)} ${t.met ? "MET" : "MISSED"}`);
  }
  for (const note of result.notes) console.log(`  note: ${note}`);
}

/** Writes `bench/results/<name>.json` and returns its path. */
export async function writeResult(
  name: string,
  size: Size,
  result: BenchResult,
): Promise<string> {
  await Deno.mkdir(RESULTS_DIR, { recursive: true });
  const path = join(RESULTS_DIR, `${name}.json`);
  const body = {
    benchmark: name,
    size,
    machine: await machineInfo(),
    params: result.params,
    figures: Object.fromEntries(
      result.figures.map((f) => [f.name, { value: round(f.value), unit: f.unit, note: f.note }]),
    ),
    targets: result.targets.map((t) => ({ ...t, value: round(t.value) })),
    notes: result.notes,
  };
  await Deno.writeTextFile(path, JSON.stringify(body, null, 2) + "\n");
  return path;
}

const MIB = 1024 * 1024;

/**
 * Writes a file of `bytes` pseudo-random bytes, distinct per `(seed, offset)`: a 1 MiB random
 * block whose first 16 bytes of every 4 KiB page are replaced by the seed and page number, so
 * no two files (or pages) share content and a content-addressed store cannot deduplicate them.
 */
export async function writeDataFile(path: string, bytes: number, seed: number): Promise<void> {
  const block = randomBlock();
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    let written = 0;
    let page = 0;
    const view = new DataView(block.buffer);
    while (written < bytes) {
      const n = Math.min(MIB, bytes - written);
      for (let off = 0; off < n; off += 4096) {
        view.setFloat64(off, seed);
        view.setFloat64(off + 8, page++);
      }
      const chunk = block.subarray(0, n);
      let done = 0;
      while (done < n) done += await file.write(chunk.subarray(done));
      written += n;
    }
  } finally {
    file.close();
  }
}

let cachedBlock: Uint8Array<ArrayBuffer> | undefined;
function randomBlock(): Uint8Array<ArrayBuffer> {
  if (cachedBlock === undefined) {
    cachedBlock = new Uint8Array(MIB);
    for (let off = 0; off < MIB; off += 65536) {
      crypto.getRandomValues(cachedBlock.subarray(off, off + 65536));
    }
  }
  return new Uint8Array(cachedBlock);
}

/** Writes `count` files of `bytes` each as `dir/<group>/f<i>.bin` (100 files a folder). */
export async function writeManyFiles(
  dir: string,
  count: number,
  bytes: number,
  seedBase: number,
): Promise<string[]> {
  const paths: string[] = [];
  for (let i = 0; i < count; i++) {
    const group = `g${String(Math.floor(i / 100)).padStart(4, "0")}`;
    if (i % 100 === 0) await Deno.mkdir(join(dir, group), { recursive: true });
    const path = join(dir, group, `f${String(i).padStart(6, "0")}.bin`);
    await writeDataFile(path, bytes, seedBase + i);
    paths.push(path);
  }
  return paths;
}

/** Reads every file once (to warm the page cache) and returns the total bytes. */
export async function warmFiles(paths: readonly string[]): Promise<number> {
  let total = 0;
  const buffer = new Uint8Array(MIB);
  for (const path of paths) {
    const file = await Deno.open(path);
    try {
      while (true) {
        const n = await file.read(buffer);
        if (n === null) break;
        total += n;
      }
    } finally {
      file.close();
    }
  }
  return total;
}

/** Every regular file below `dir` (absolute paths, sorted). */
export async function listFilesRecursive(dir: string): Promise<string[]> {
  const out: string[] = [];
  const pending = [dir];
  while (pending.length > 0) {
    const current = pending.pop()!;
    for await (const entry of Deno.readDir(current)) {
      const path = join(current, entry.name);
      if (entry.isDirectory) pending.push(path);
      else if (entry.isFile) out.push(path);
    }
  }
  return out.sort();
}

/** Runs a command to completion; throws with its stderr when it fails. */
export async function runCommand(
  cmd: string,
  args: readonly string[],
  options: { cwd?: string; stdin?: Uint8Array; env?: Record<string, string> } = {},
): Promise<{ stdout: string; stderr: string }> {
  const child = new Deno.Command(cmd, {
    args: [...args],
    stdin: options.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.env ? { env: options.env } : {}),
  }).spawn();
  // Write stdin while stdout is drained: a child that fills its stdout pipe stops reading.
  const writing = options.stdin
    ? (async () => {
      const writer = child.stdin.getWriter();
      await writer.write(options.stdin);
      await writer.close();
    })()
    : Promise.resolve();
  const [out] = await Promise.all([child.output(), writing]);
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${out.code}): ${stderr.slice(0, 2000)}`);
  }
  return { stdout, stderr };
}

/**
 * Writes back what the filesystem holding `path` has pending (`sync -f`, coreutils), untimed
 * before a measured run: the run then neither writes back what the run before it left (the
 * kernel's writeback would land in whichever run comes some 30 s later) nor meets inode
 * tables still dirty from a removal (on ext4 without a journal a freed inode is skipped for
 * 360 s while its table block is dirty, 60 s once written). A no-op where `sync -f` is
 * missing.
 */
export async function syncFilesystem(path: string): Promise<void> {
  await runCommand("sync", ["-f", path]).catch(() => {});
}

/**
 * The median of the rounds' own ratios `a[i] / b[i]` (round i ran its two sides back to
 * back): drift that slows both sides of a round, such as a disk or a core taken by another
 * process, leaves that round's ratio alone, where it moves a ratio of medians.
 */
export function pairedRatio(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) throw new RangeError(`pairedRatio: ${a.length} against ${b.length}`);
  return median(a.map((value, i) => value / b[i]!));
}

/** Whether a command exists on PATH. */
export async function hasCommand(cmd: string): Promise<boolean> {
  try {
    await runCommand("sh", ["-c", `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Memory of a process in MiB (Linux), or undefined when it is gone: VmRSS and VmHWM, and from
 * `smaps_rollup` the PSS and the USS (private pages: what the process costs on its own; the
 * Deno binary's code pages are shared by every Deno process and count in RSS each time).
 */
export async function processMemoryMiB(
  pid: number | "self",
): Promise<{ rssMiB: number; hwmMiB: number; pssMiB: number; ussMiB: number } | undefined> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const rollup = await Deno.readTextFile(`/proc/${pid}/smaps_rollup`).catch(() => "");
    const kb = (text: string, key: string) =>
      Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1]);
    return {
      rssMiB: kb(status, "VmRSS") / 1024,
      hwmMiB: kb(status, "VmHWM") / 1024,
      pssMiB: kb(rollup, "Pss") / 1024,
      ussMiB: (kb(rollup, "Private_Clean") + kb(rollup, "Private_Dirty")) / 1024,
    };
  } catch {
    return undefined;
  }
}

/**
 * Reads the first line of a child's stdout as JSON (within `timeoutMs`); the rest of the
 * stream is drained in the background so the child never blocks on a full pipe.
 */
export async function readJsonLine(
  stream: ReadableStream<Uint8Array>,
  timeoutMs: number,
): Promise<unknown> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`child printed no JSON line within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    while (!buffered.includes("\n")) {
      const { done, value } = await Promise.race([reader.read(), timeout]);
      if (done) throw new Error(`child exited before printing its JSON line: ${buffered}`);
      buffered += value;
    }
  } finally {
    clearTimeout(timer);
  }
  void (async () => {
    try {
      while (!(await reader.read()).done) { /* drain */ }
    } catch { /* closed */ }
  })();
  return JSON.parse(buffered.slice(0, buffered.indexOf("\n")));
}
