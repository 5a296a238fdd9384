/**
 * Snapshot hashing: SHA-256 throughput of perago's `snapshotDir` against `sha256sum` on the
 * same files, warm page cache, runs alternated, median of the runs.
 *
 * Two data sets: a few large files (1 GiB in 4 files by default) and many small files
 * (10,000 of 4 KiB). `sha256sum` is run as an operator would (`xargs -0 sha256sum`, one
 * process at a time); a second reference runs one `sha256sum` per core (`xargs -P nproc`).
 *
 * @module
 */
import { join } from "node:path";
import { snapshotDir } from "../src/workspace/snapshot.ts";
import {
  type Bench,
  type BenchContext,
  type BenchResult,
  type Figure,
  hasCommand,
  listFilesRecursive,
  median,
  runCommand,
  type Size,
  type Target,
  timeMs,
  warmFiles,
  writeDataFile,
  writeManyFiles,
} from "./_common.ts";

const MIB = 1024 * 1024;

const SIZES: Record<Size, { largeFiles: number; largeBytes: number; small: number; runs: number }> =
  {
    quick: { largeFiles: 4, largeBytes: 64 * MIB, small: 2_000, runs: 3 },
    default: { largeFiles: 4, largeBytes: 256 * MIB, small: 10_000, runs: 3 },
    full: { largeFiles: 8, largeBytes: 512 * MIB, small: 50_000, runs: 5 },
  };
const SMALL_BYTES = 4096;

async function sha256sum(paths: readonly string[], parallel: number): Promise<void> {
  const list = new TextEncoder().encode(paths.join("\0") + "\0");
  const args = parallel > 1
    ? ["-0", "-P", String(parallel), "-n", String(Math.ceil(paths.length / parallel)), "sha256sum"]
    : ["-0", "sha256sum"];
  const { stdout } = await runCommand("xargs", args, { stdin: list });
  const lines = stdout.split("\n").filter((l) => l !== "").length;
  if (lines !== paths.length) {
    throw new Error(`sha256sum hashed ${lines} files, expected ${paths.length}`);
  }
}

async function opensslSha256(paths: readonly string[]): Promise<void> {
  const list = new TextEncoder().encode(paths.join("\0") + "\0");
  const { stdout } = await runCommand("xargs", ["-0", "openssl", "dgst", "-sha256"], {
    stdin: list,
  });
  const lines = stdout.split("\n").filter((l) => l !== "").length;
  if (lines !== paths.length) {
    throw new Error(`openssl hashed ${lines} files, expected ${paths.length}`);
  }
}

async function measureSet(
  label: string,
  dir: string,
  runs: number,
  signal: AbortSignal,
): Promise<{ figures: Figure[]; ratio: number }> {
  const paths = await listFilesRecursive(dir);
  const bytes = await warmFiles(paths);
  const nproc = navigator.hardwareConcurrency;
  const perago: number[] = [];
  const perago1: number[] = [];
  const plain: number[] = [];
  const plainParallel: number[] = [];
  const openssl: number[] = [];
  const withOpenssl = await hasCommand("openssl");
  // Warm-up of both (JIT, caches), not counted.
  await snapshotDir(dir, { signal });
  await sha256sum(paths, 1);
  for (let i = 0; i < runs; i++) {
    signal.throwIfAborted();
    // Alternate the order so neither side always runs on a "second" warm cache.
    const order = i % 2 === 0 ? ["perago", "plain"] : ["plain", "perago"];
    for (const who of order) {
      if (who === "perago") {
        let count = 0;
        perago.push(
          await timeMs(async () => {
            count = (await snapshotDir(dir, { signal })).length;
          }),
        );
        if (count !== paths.length) throw new Error(`snapshot saw ${count} of ${paths.length}`);
      } else plain.push(await timeMs(() => sha256sum(paths, 1)));
    }
    perago1.push(await timeMs(() => snapshotDir(dir, { signal, concurrency: 1 })));
    plainParallel.push(await timeMs(() => sha256sum(paths, nproc)));
    if (withOpenssl) openssl.push(await timeMs(() => opensslSha256(paths)));
  }
  const gbps = (ms: number) => bytes / 1e9 / (ms / 1000);
  const p = median(perago);
  const s = median(plain);
  const figures: Figure[] = [
    {
      name: `${label}_perago_GBps`,
      value: gbps(p),
      unit: "GB/s",
      note: `snapshotDir (concurrency 8), ${paths.length} files, ${(bytes / MIB).toFixed(0)} MiB`,
    },
    { name: `${label}_sha256sum_GBps`, value: gbps(s), unit: "GB/s", note: "xargs sha256sum" },
    { name: `${label}_ratio`, value: s / p, unit: "ratio", note: "perago / sha256sum" },
    {
      name: `${label}_perago_c1_GBps`,
      value: gbps(median(perago1)),
      unit: "GB/s",
      note: "snapshotDir, concurrency 1",
    },
    {
      name: `${label}_sha256sum_parallel_GBps`,
      value: gbps(median(plainParallel)),
      unit: "GB/s",
      note: `xargs -P ${nproc} sha256sum`,
    },
  ];
  if (withOpenssl) {
    const o = median(openssl);
    figures.push(
      { name: `${label}_openssl_GBps`, value: gbps(o), unit: "GB/s", note: "xargs openssl dgst" },
      { name: `${label}_ratio_openssl`, value: o / p, unit: "ratio", note: "perago / openssl" },
    );
  }
  return { figures, ratio: s / p };
}

/** The snapshot benchmark. */
export const bench: Bench = {
  name: "snapshot",
  description: "SHA-256 of snapshotDir vs sha256sum (large and small files)",
  async run(ctx: BenchContext): Promise<BenchResult> {
    const size = SIZES[ctx.size];
    const largeDir = join(ctx.tempDir, "large");
    const smallDir = join(ctx.tempDir, "small");
    await Deno.mkdir(largeDir, { recursive: true });
    await Deno.mkdir(smallDir, { recursive: true });
    for (let i = 0; i < size.largeFiles; i++) {
      await writeDataFile(join(largeDir, `big${i}.bin`), size.largeBytes, 1_000_000 + i);
    }
    await writeManyFiles(smallDir, size.small, SMALL_BYTES, 2_000_000);
    const large = await measureSet("large", largeDir, size.runs, ctx.signal);
    const small = await measureSet("small", smallDir, size.runs, ctx.signal);
    const targets: Target[] = [
      { name: "large_ratio", target: ">= 0.8", value: large.ratio, met: large.ratio >= 0.8 },
      { name: "small_ratio", target: ">= 0.8", value: small.ratio, met: small.ratio >= 0.8 },
    ];
    return {
      params: {
        largeFiles: size.largeFiles,
        largeFileMiB: size.largeBytes / MIB,
        smallFiles: size.small,
        smallFileBytes: SMALL_BYTES,
        runs: size.runs,
        cache: "warm",
      },
      figures: [...large.figures, ...small.figures],
      targets,
      notes: [
        "perago hashes large files with node:crypto createHash in 1 MiB chunks on the JS " +
        "thread (one core; Web Crypto cannot digest incrementally), small files (<= 1 MiB) " +
        "read whole with one Deno.readFile and digested with Web Crypto, 8 in flight. " +
        "GNU coreutils " +
        "sha256sum does not use the CPU's SHA extensions (about 0.28 GB/s here); openssl " +
        "does, so it is listed as a second, harder reference. Times include the directory " +
        "walk and lstat for perago and process start-up for the tools.",
      ],
    };
  },
};
