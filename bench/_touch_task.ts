/** The benchmarks' writable task: rewrites one file of the workspace (the whole repository). */
import { join } from "node:path";
import { defineTask, z } from "../mod.ts";

export default defineTask({
  name: "bench_touch",
  ownerEmail: "bench@example.com",
  description: "rewrites one file of the workspace",
  params: z.object({ path: z.string() }),
  result: z.object({ ok: z.boolean() }),
  workspace: { prefix: "/" },
  controls: { retry: { count: 0 }, timeout: { responseSeconds: 600 } },
  async run({ path }, ctx) {
    await Deno.writeTextFile(join(ctx.workspace!, path), `changed ${crypto.randomUUID()}\n`);
    return { ok: true };
  },
});
