/**
 * Memory: the peak RSS of a process that downloads and then stages one large object (2 GiB by
 * default) with perago's sync code, against its idle RSS with the same modules loaded, read
 * from `/proc/<pid>/status` (VmRSS, VmHWM) in a child process. The idle RSS of a real
 * executor is in the start-up benchmark.
 *
 * @module
 */
import { join } from "node:path";
import {
  type Bench,
  type BenchContext,
  type BenchResult,
  readJsonLine,
  type Size,
  writeDataFile,
} from "./_common.ts";
import { startLakeFsChild } from "./_lakefs.ts";

const MIB = 1024 * 1024;
// The file is uploaded twice (seed, then staged back), both through perago's node:http
// streaming upload; the default is 256 MiB, `--full` runs 2 GiB.
const BYTES: Record<Size, number> = { quick: 64 * MIB, default: 256 * MIB, full: 2048 * MIB };
const REPO = "membench";

interface Mem {
  rssMiB: number;
  hwmMiB: number;
}

/** The memory benchmark. */
export const bench: Bench = {
  name: "memory",
  description: "peak RSS while downloading and staging one large file vs idle RSS",
  async run(ctx: BenchContext): Promise<BenchResult> {
    const bytes = BYTES[ctx.size];
    const lakefs = await startLakeFsChild(join(ctx.tempDir, "lakefs-data"));
    const started = performance.now();
    const seedMs = () => performance.now() - started;
    try {
      await lakefs.client.createRepository(REPO, `local://${REPO}`, "main");
      const source = join(ctx.tempDir, "big.bin");
      await writeDataFile(source, bytes, 42);
      // Seeded through perago's streaming upload (node:http): a plain fetch upload of a
      // stream to the demo server ran at 0.5-7 MB/s here, too slow for 2 GiB.
      await lakefs.client.uploadObject(
        REPO,
        "main",
        "data/big.bin",
        async () => (await Deno.open(source)).readable,
        { size: bytes },
      );
      await Deno.remove(source);
      const commit = await lakefs.client.commit(REPO, "main", "big file");
      const seeded = seedMs();
      await lakefs.client.createBranch(REPO, "restage", commit.id);
      const dir = join(ctx.tempDir, "attempt");
      await Deno.mkdir(dir);
      const spawnChild = (mode: string) =>
        new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            new URL("./_memory_child.ts", import.meta.url).pathname,
            lakefs.url,
            lakefs.accessKeyId,
            lakefs.secretAccessKey,
            REPO,
            commit.id,
            "data/",
            dir,
            "restage",
            mode,
          ],
          stdin: "null",
          stdout: "piped",
          stderr: "inherit",
        }).spawn();
      const plainChild = spawnChild("plain");
      const plain = await readJsonLine(plainChild.stdout, 600_000) as {
        idle: Mem;
        afterDownload: Mem;
        downloadMs: number;
      };
      await plainChild.status;
      await Deno.remove(join(dir, "plain.bin"));
      const child = spawnChild("perago");
      const report = await readJsonLine(child.stdout, 600_000) as {
        idle: Mem;
        afterDownload: Mem;
        afterStage: Mem;
        downloadMs: number;
        stageMs: number;
      };
      const status = await child.status;
      if (!status.success) throw new Error(`memory child exited ${status.code}`);
      const peak = Math.max(report.afterDownload.hwmMiB, report.afterStage.hwmMiB);
      const growth = peak - report.idle.rssMiB;
      return {
        params: { fileMiB: bytes / MIB, concurrency: 8, server: "demo lakeFS, own process" },
        figures: [
          {
            name: "idle_rss_MiB",
            value: report.idle.rssMiB,
            unit: "MiB",
            note: "child with client + sync modules loaded",
          },
          {
            name: "peak_download_MiB",
            value: report.afterDownload.hwmMiB,
            unit: "MiB",
            note: "VmHWM after downloadPrefix",
          },
          {
            name: "peak_stage_MiB",
            value: report.afterStage.hwmMiB,
            unit: "MiB",
            note: "VmHWM after stageChanges (whole run)",
          },
          { name: "peak_over_idle_MiB", value: growth, unit: "MiB" },
          {
            name: "plain_fetch_download_peak_over_idle_MiB",
            value: plain.afterDownload.hwmMiB - plain.idle.rssMiB,
            unit: "MiB",
            note: "reference: fetch(...).body.pipeTo(file) of the same object",
          },
          {
            name: "plain_fetch_download_MBps",
            value: bytes / 1e6 / (plain.downloadMs / 1000),
            unit: "MB/s",
          },
          {
            name: "seed_upload_MBps",
            value: bytes / 1e6 / (seeded / 1000),
            unit: "MB/s",
            note: "perago upload of the test file (and file write)",
          },
          {
            name: "download_MBps",
            value: bytes / 1e6 / (report.downloadMs / 1000),
            unit: "MB/s",
            note: "one object, one stream",
          },
          {
            name: "stage_MBps",
            value: bytes / 1e6 / (report.stageMs / 1000),
            unit: "MB/s",
            note: "one object, one stream",
          },
        ],
        targets: [{
          name: "peak_over_idle_MiB",
          target: "<= 64",
          value: growth,
          met: growth <= 64,
        }],
        notes: [],
      };
    } finally {
      await lakefs.close();
    }
  },
};
