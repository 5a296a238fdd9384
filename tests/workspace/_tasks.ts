/** Test tasks for the attempt tests, defined the way authors do. */
import { join } from "node:path";
import { defineTask, requireDir, requireFile, TaskTerminalError, z } from "../../mod.ts";

/** Writable task under `docs/`: applies the edits its params describe. */
export const writer = defineTask({
  name: "writer",
  ownerEmail: "tests@example.com",
  description: "applies edits to docs/",
  params: z.object({
    write: z.record(z.string(), z.string()).default({}),
    remove: z.array(z.string()).default([]),
    symlink: z.record(z.string(), z.string()).default({}),
    fail: z.string().optional(),
    terminal: z.boolean().optional(),
    badResult: z.boolean().optional(),
  }),
  result: z.object({ edits: z.number().int() }),
  workspace: { prefix: "docs/", pre: [requireDir("docs")], post: [requireFile("docs/keep.txt")] },
  async run(params, ctx) {
    const root = ctx.workspace!;
    let edits = 0;
    for (const [path, text] of Object.entries(params.write)) {
      await Deno.mkdir(join(root, path, ".."), { recursive: true });
      await Deno.writeTextFile(join(root, path), text);
      edits++;
    }
    for (const path of params.remove) {
      await Deno.remove(join(root, path));
      edits++;
    }
    for (const [path, target] of Object.entries(params.symlink)) {
      await Deno.symlink(target, join(root, path));
      edits++;
    }
    if (params.fail !== undefined) {
      throw params.terminal ? new TaskTerminalError(params.fail) : new Error(params.fail);
    }
    if (params.badResult) return { edits: "many" } as unknown as { edits: number };
    return { edits };
  },
});

/** Read-only task over the whole repository: counts files, and scribbles (ignored). */
export const reader = defineTask({
  name: "reader",
  ownerEmail: "tests@example.com",
  description: "counts files",
  params: z.object({}),
  result: z.object({ files: z.array(z.string()) }),
  workspace: { readOnly: true },
  async run(_params, ctx) {
    const files: string[] = [];
    const walk = async (dir: string, rel: string) => {
      for await (const entry of Deno.readDir(dir)) {
        const path = rel === "" ? entry.name : `${rel}/${entry.name}`;
        if (entry.isDirectory) await walk(join(dir, entry.name), path);
        else if (entry.name !== ".perago-attempt.json") files.push(path);
      }
    };
    await walk(ctx.workspace!, "");
    await Deno.writeTextFile(join(ctx.workspace!, "scribble.txt"), "never published");
    return { files: files.sort() };
  },
});

/** Workspace-free task. */
export const counter = defineTask({
  name: "counter",
  ownerEmail: "tests@example.com",
  description: "counts words",
  params: z.object({ text: z.string() }),
  result: z.object({ words: z.number().int() }),
  run({ text }, ctx) {
    if (ctx.workspace !== undefined) throw new Error("workspace-free task got a workspace");
    if (text === "terminal") throw new TaskTerminalError("terminal: " + "x".repeat(1000));
    if (text === "throw") throw new RangeError("plain failure");
    return { words: text.split(/\s+/).filter(Boolean).length };
  },
});
