/**
 * The workspace-free task of the throughput, start-up and memory benchmarks: returns at once.
 *
 * @module
 */
import { defineTask, z } from "../mod.ts";

export default defineTask({
  name: "bench_noop",
  ownerEmail: "bench@example.com",
  description: "returns its input number (benchmark task)",
  params: z.object({ n: z.number().int() }),
  result: z.object({ n: z.number().int() }),
  run: ({ n }) => ({ n }),
});
