import assert from "node:assert/strict";
import { join } from "node:path";
import {
  childCommand,
  DENO_RUN_CHILD_ENV,
  EXECUTOR_MAGLEV_FLAG,
  executorV8Flags,
} from "../../src/runtime/permissions.ts";
import { spawnChild } from "../../src/runtime/_child.ts";
import { FromExecutorSchema } from "../../src/runtime/protocol.ts";
import { EXECUTOR_GC_FLAG, EXECUTOR_GC_GLOBAL } from "../../src/runtime/idle_gc.ts";
import {
  executorDirs,
  executorInit,
  noopExecutorCommand,
  startExecutor,
  writeNoopTask,
} from "./_executor_process.ts";

const decoder = new TextDecoder();

/** Prints whether the executor's flags reached this V8 (its gc function is exposed). */
const FLAGS_PROBE = `const gc = typeof globalThis[${JSON.stringify(EXECUTOR_GC_GLOBAL)}];
console.log(JSON.stringify({ type: "fatal", message: "gc:" + gc }));`;

Deno.test("executor V8 flags: this Deno's V8 accepts them from --v8-flags (deno run) and DENO_V8_FLAGS (a compiled binary's children, through spawnChild)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "perago-tiering-" });
  try {
    const probe = join(dir, "probe.ts");
    await Deno.writeTextFile(probe, FLAGS_PROBE);
    // From source: the flags on the command line. An unknown V8 flag makes Deno exit 1
    // before any code runs, so a Deno upgrade that drops one fails here, not in production.
    const fromSource = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-config", `--v8-flags=${executorV8Flags(512)}`, probe],
      env: DENO_RUN_CHILD_ENV,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(fromSource.code, 0, decoder.decode(fromSource.stderr));
    assert.match(decoder.decode(fromSource.stdout), /gc:function/);
    // A compiled binary's executor gets them as DENO_V8_FLAGS in its environment: the command
    // childCommand makes for one, run through spawnChild as start.ts runs it (a `deno run` of
    // the probe stands in for the binary, which reads the same variable).
    const compiled = childCommand({
      role: "executor",
      workspaceRoot: dir,
      logRoot: dir,
      modules: [],
      conductorUrl: "http://127.0.0.1:1/api",
      lakefsUrl: undefined,
      standalone: true,
      maxHeapMb: 512,
    });
    assert.deepEqual(compiled.env, { DENO_V8_FLAGS: executorV8Flags(512) });
    assert.ok(compiled.env.DENO_V8_FLAGS.includes(EXECUTOR_MAGLEV_FLAG));
    const child = spawnChild({
      command: { ...compiled, args: ["run", "--no-config", probe] },
      env: { PATH: Deno.env.get("PATH") ?? "", ...DENO_RUN_CHILD_ENV },
      schema: FromExecutorSchema,
    });
    const messages: unknown[] = [];
    for await (const message of child.messages) messages.push(message);
    assert.deepEqual(await child.exit, { code: 0, signal: null });
    assert.deepEqual(messages, [{ type: "fatal", message: "gc:function" }]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Starts a real executor (`main.ts __executor` with the command line childCommand makes, its
 * V8 flags replaced by `v8Flags` plus V8's tier-up trace), serving a task module of the
 * start-up benchmark's size, until it is ready; then closes its stdin (it exits) and returns
 * what V8 traced: one line per function it marked or compiled for optimisation.
 */
async function tierUpsBeforeFirstTask(v8Flags: string): Promise<string[]> {
  const dir = await Deno.makeTempDir({ prefix: "perago-tiering-" });
  try {
    const { ws, logs } = await executorDirs(dir);
    const task = join(dir, "noop_task.ts");
    await writeNoopTask(task, "tiering_noop");
    const command = noopExecutorCommand(ws, logs, task);
    const flagsAt = command.args.findIndex((arg) => arg.startsWith("--v8-flags="));
    assert.equal(command.args[flagsAt], `--v8-flags=${executorV8Flags(0)}`);
    command.args[flagsAt] = `--v8-flags=${v8Flags},--trace-opt,--trace-osr`;
    const { child, writer } = await startExecutor(
      command,
      executorInit({ workerId: "tiering0", task, ws, logs, moduleName: "noop_task" }),
    );
    let stdout = "";
    const reader = child.stdout.getReader();
    while (!/"type":"(ready|fatal)"/.test(stdout)) {
      const { done, value } = await reader.read();
      if (done) break;
      stdout += decoder.decode(value, { stream: true });
    }
    assert.match(stdout, /"type":"ready"/, stdout);
    // Stdin closed: the executor exits, and V8's trace (buffered on stdout) comes out.
    await writer.close();
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      stdout += decoder.decode(value, { stream: true });
    }
    const status = await child.status;
    const stderr = decoder.decode(await new Response(child.stderr).arrayBuffer());
    assert.equal(status.code, 2, `exits 2 when the supervisor goes away; stderr: ${stderr}`);
    return stdout.split("\n").filter((line) => /^\[(marking|compiling method|OSR)/.test(line));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("executor: a process-mode executor compiles nothing with V8's optimising compilers before its first task (their code would stay in its idle memory); with V8's default tier-up zod's constructors were compiled", async () => {
  const traced = await tierUpsBeforeFirstTask(executorV8Flags(0));
  assert.deepEqual(traced, [], "tier-ups before the first task:\n" + traced.join("\n"));
  // Without the executor's Maglev tier-up: the same start-up compiles zod's constructors.
  // (Should this pass one day, the flag may no longer be needed: measure idle RSS without it.)
  const defaults = await tierUpsBeforeFirstTask(EXECUTOR_GC_FLAG);
  assert.ok(
    defaults.some((line) => line.startsWith("[marking")),
    "V8's default tier-up compiled nothing before the first task",
  );
});
