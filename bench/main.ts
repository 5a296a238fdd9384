// deno-lint-ignore-file no-console
/**
 * `deno task bench`: runs the benchmarks (all, or `--only <name>[,<name>]`), prints a table
 * per benchmark and writes `bench/results/<name>.json`.
 *
 * Usage: `deno run -A bench/main.ts [--quick | --full] [--only snapshot,sync,...] [--keep]`
 *
 * - `--quick`: small sizes (a smoke run, well under a minute each).
 * - default: the sizes of bench/README.md's performance table (they fit a 2-core machine in
 *   a few minutes).
 * - `--full`: larger sizes (several GiB of scratch space, many minutes).
 * - `--keep`: keep the scratch directories (printed) instead of removing them.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type Bench, machineInfo, printResult, type Size, writeResult } from "./_common.ts";

const BENCHES: Record<string, () => Promise<Bench>> = {
  snapshot: async () => (await import("./snapshot.ts")).bench,
  sync: async () => (await import("./sync.ts")).bench,
  memory: async () => (await import("./memory.ts")).bench,
  throughput: async () => (await import("./throughput.ts")).bench,
  startup: async () => (await import("./startup.ts")).bench,
  warm: async () => (await import("./warm.ts")).bench,
  vs_lakectl: async () => (await import("./vs_lakectl.ts")).bench,
  start_vs_run: async () => (await import("./start_vs_run.ts")).bench,
};

const HELP = `Usage: deno run -A bench/main.ts [--quick | --full] [--only NAME[,NAME]] [--keep]

Benchmarks: ${Object.keys(BENCHES).join(", ")}
Results: bench/results/<name>.json`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      full: { type: "boolean", default: false },
      only: { type: "string" },
      keep: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.quick && values.full) {
    console.error("error: --quick and --full exclude each other");
    return 1;
  }
  const size: Size = values.quick ? "quick" : values.full ? "full" : "default";
  const names = values.only ? values.only.split(",").map((s) => s.trim()) : Object.keys(BENCHES);
  for (const name of names) {
    if (!(name in BENCHES)) {
      console.error(
        `error: unknown benchmark "${name}"; known: ${Object.keys(BENCHES).join(", ")}`,
      );
      return 1;
    }
  }
  const machine = await machineInfo();
  console.log(
    `perago benchmarks (${size}): ${machine.nproc} cores (${machine.cpuModel}), ` +
      `${machine.memTotalMiB} MiB, Deno ${machine.deno}, load average ${
        machine.loadAverage.join(" ")
      }`,
  );
  const controller = new AbortController();
  const onSignal = () => controller.abort(new Error("interrupted"));
  Deno.addSignalListener("SIGINT", onSignal);
  let failed = 0;
  try {
    for (const name of names) {
      const bench = await BENCHES[name]!();
      const tempDir = await Deno.makeTempDir({ prefix: `perago-bench-${name}-` });
      const started = performance.now();
      try {
        const result = await bench.run({ size, tempDir, signal: controller.signal });
        printResult(name, result);
        const path = await writeResult(name, size, result);
        console.log(
          `  (${((performance.now() - started) / 1000).toFixed(1)} s, load average ${
            Deno.loadavg().map((load) => load.toFixed(2)).join(" ")
          }; wrote ${path})`,
        );
      } catch (error) {
        failed++;
        console.error(`error: benchmark ${name} failed: ${(error as Error)?.stack ?? error}`);
        if (controller.signal.aborted) break;
      } finally {
        if (values.keep) console.log(`  kept ${tempDir}`);
        else await Deno.remove(tempDir, { recursive: true }).catch(() => {});
      }
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
  }
  return failed === 0 ? 0 : 1;
}

Deno.exit(await main());
