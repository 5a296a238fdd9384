/**
 * The flags `scripts/compile.ts --print-flags` bakes into the binary, proven by running the
 * same entry point under exactly them with `deno run` (this host cannot download denort, so
 * `deno compile` itself cannot run here).
 *
 * One addition, made only here: `deno run` loads perago from source, so the supervisor must
 * read `main.ts`'s `mod.ts`, `src/` and `deno.json` (the CLI imports its commands lazily and
 * the task module imports `mod.ts`); a compiled binary embeds them and needs no such read.
 */
import assert from "node:assert/strict";
import { loadTask } from "../../src/task/loader.ts";
import { buildTaskDef } from "../../src/task/taskdef.ts";
import { sourceReadPaths } from "../../src/runtime/permissions.ts";
import { waitFor } from "../../src/util/sleep.ts";
import { spawnPeragoStart, type Worker } from "../_perago_process.ts";
import { type Stack, startStack } from "./_stack.ts";

const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const COMPILE = `${ROOT}/scripts/compile.ts`;
const WORD_COUNT = `${ROOT}/examples/word_count.ts`;
const decoder = new TextDecoder();

/** Runs `deno <args>` in the stack's dir with its environment only (plus `env`); its output. */
function runDeno(
  stack: Stack,
  args: string[],
  env: Record<string, string> = {},
): Promise<Deno.CommandOutput> {
  return new Deno.Command(Deno.execPath(), {
    args,
    cwd: stack.dir,
    env: { ...stack.env, ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
}

async function printFlags(stack: Stack): Promise<string[]> {
  const result = await runDeno(stack, ["run", "-A", COMPILE, "--print-flags", WORD_COUNT]);
  assert.ok(result.success, decoder.decode(result.stderr));
  return decoder.decode(result.stdout).split("\n").filter((line) => line !== "");
}

/** `--allow-read=` plus perago's sources (see the module doc). */
function withSourceRead(flags: readonly string[]): string[] {
  return flags.map((flag) =>
    flag.startsWith("--allow-read=") ? [flag, ...sourceReadPaths(ROOT)].join(",") : flag
  );
}

/**
 * `perago start <args...>` from source under the baked `flags` (plus the source reads), in the
 * stack's dir with its environment only (and PATH).
 */
function startBaked(stack: Stack, flags: readonly string[], args: string[]): Worker {
  return spawnPeragoStart(args, {
    cwd: stack.dir,
    env: { ...stack.env, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    clearEnv: true,
    denoFlags: ["--config", `${ROOT}/deno.json`, ...withSourceRead(flags)],
  });
}

for (const mode of ["process", "thread"] as const) {
  Deno.test(`compile flags: the baked union runs perago start (${mode} mode) end to end; SIGTERM exits 0`, async () => {
    await using stack = await startStack();
    const { task } = await loadTask(WORD_COUNT);
    await stack.api.registerTaskDefs([buildTaskDef(task)]);
    await stack.api.upsertWorkflowDefs([{
      name: "wc_wf",
      version: 1,
      schemaVersion: 2,
      ownerEmail: "tests@example.com",
      tasks: [{
        name: task.name,
        taskReferenceName: "wc",
        type: "SIMPLE",
        inputParameters: { params: "${workflow.input.params}" },
      }],
      outputParameters: { result: "${wc.output.result}" },
    }]);
    // A per-task variable of an embedded task is readable under the baked flags.
    stack.env.PERAGO_TASK_CONCURRENCY_WORD_COUNT = "1";
    const flags = await printFlags(stack);
    assert.ok(
      !flags.includes("-A") && !flags.some((f) => f.startsWith("--allow-all")),
      flags.join(" "),
    );
    const allowEnv = flags.find((f) => f.startsWith("--allow-env="))?.split("=")[1]?.split(",");
    assert.ok(allowEnv?.includes("PERAGO_TASK_DOMAIN_WORD_COUNT"), flags.join(" "));
    assert.ok(allowEnv?.includes("PERAGO_TASK_CONCURRENCY_WORD_COUNT"), flags.join(" "));
    await using worker = startBaked(stack, flags, [
      WORD_COUNT,
      "-j",
      "1",
      "--execution-mode",
      mode,
    ]);
    const id = await stack.api.startWorkflow("wc_wf", { params: { text: "a b c" } });
    const wf = await stack.waitWorkflow(id, "COMPLETED", 30_000).catch((error) => {
      throw new Error(`${error.message}\n${worker.output()}`);
    });
    assert.deepEqual(wf.output, { result: { words: 3, chars: 5 } });
    assert.match(worker.output(), new RegExp(`\\(${mode} mode\\)`));
    const lanes = `${stack.workspaceRoot}/.perago-lanes`;
    if (mode === "process") {
      // The attempt went over the executor's lane: its socket is in the workspace root.
      assert.ok(worker.output().includes(`executor lanes in ${lanes}`), worker.output());
      assert.ok((await Deno.lstat(`${lanes}/0.sock`)).isSocket);
      assert.equal((await Deno.stat(lanes)).mode! & 0o777, 0o700);
      // A second supervisor on the same root is refused and leaves the live lanes alone.
      const ino = (await Deno.lstat(`${lanes}/0.sock`)).ino;
      await using second = startBaked(stack, flags, [WORD_COUNT, "--execution-mode", mode]);
      assert.equal((await second.status).code, 1, second.output());
      assert.match(second.output(), /error: .*held by running pid \d+/);
      assert.equal((await Deno.lstat(`${lanes}/0.sock`)).ino, ino);
      const again = await stack.api.startWorkflow("wc_wf", { params: { text: "d e" } });
      await stack.waitWorkflow(again, "COMPLETED", 30_000).catch((error) => {
        throw new Error(`${error.message}\n${worker.output()}`);
      });
    }
    assert.doesNotMatch(worker.output(), /executor lanes off/);
    assert.match(
      worker.output(),
      /task word_count: domain none \(default queue\), concurrency 1/,
    );
    worker.kill("SIGTERM");
    const status = await worker.status;
    assert.equal(status.code, 0, worker.output());
    await assert.rejects(Deno.lstat(lanes), Deno.errors.NotFound);
  });
}

Deno.test("compile flags: under the baked union, other paths, hosts and variables are denied", async () => {
  await using stack = await startStack();
  using other = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const flags = await printFlags(stack);
  await Deno.mkdir(stack.workspaceRoot, { recursive: true });
  await Deno.writeTextFile(`${stack.dir}/.env`, "# operator settings\n");
  await Deno.writeTextFile(`${stack.dir}/outside.txt`, "not for perago\n");
  const conductor = new URL(stack.conductorUrl);
  const probe = `
    const out = {};
    const attempt = async (name, fn) => {
      try { await fn(); out[name] = "ok"; } catch (e) { out[name] = e.name; }
    };
    await attempt("readWorkspace", () => Deno.readDir(${
    JSON.stringify(stack.workspaceRoot)
  })[Symbol.asyncIterator]().next());
    await attempt("readEnvFile", () => Deno.readTextFile(${JSON.stringify(`${stack.dir}/.env`)}));
    await attempt("readOutside", () => Deno.readTextFile(${
    JSON.stringify(`${stack.dir}/outside.txt`)
  }));
    await attempt("readPasswd", () => Deno.readTextFile("/etc/passwd"));
    await attempt("writeOutside", () => Deno.writeTextFile(${
    JSON.stringify(`${stack.dir}/new.txt`)
  }, "x"));
    await attempt("netConductor", async () => (await Deno.connect({ hostname: ${
    JSON.stringify(conductor.hostname)
  }, port: ${conductor.port} })).close());
    await attempt("netOther", async () => (await Deno.connect({ hostname: "127.0.0.1", port: ${other.addr.port} })).close());
    await attempt("netLocalhostName", async () => (await Deno.connect({ hostname: "localhost", port: ${conductor.port} })).close());
    const lanes = ${JSON.stringify(`${stack.workspaceRoot}/.perago-lanes`)};
    await Deno.mkdir(lanes, { recursive: true });
    await attempt("laneSocket", () => Deno.listen({ transport: "unix", path: lanes + "/63.sock" }).close());
    await attempt("laneSocketBeyond", () => Deno.listen({ transport: "unix", path: lanes + "/64.sock" }).close());
    await attempt("unixElsewhere", () => Deno.listen({ transport: "unix", path: ${
    JSON.stringify(`${stack.workspaceRoot}/other.sock`)
  } }).close());
    await attempt("envConfig", () => Deno.env.get("CONDUCTOR_SERVER_URL"));
    await attempt("envOther", () => Deno.env.get("HOME"));
    await attempt("ffi", () => Deno.dlopen("libc.so.6", {}));
    console.log(JSON.stringify(out));`;
  await Deno.writeTextFile(`${stack.dir}/probe.ts`, probe);
  const result = await runDeno(stack, ["run", "--no-config", ...flags, `${stack.dir}/probe.ts`]);
  assert.ok(result.success, decoder.decode(result.stderr));
  assert.deepEqual(JSON.parse(decoder.decode(result.stdout)), {
    readWorkspace: "ok",
    readEnvFile: "ok",
    readOutside: "NotCapable",
    readPasswd: "NotCapable",
    writeOutside: "NotCapable",
    netConductor: "ok",
    netOther: "NotCapable",
    netLocalhostName: "NotCapable",
    laneSocket: "ok",
    laneSocketBeyond: "NotCapable",
    unixElsewhere: "NotCapable",
    envConfig: "ok",
    envOther: "NotCapable",
    ffi: "NotCapable",
  });
});

Deno.test("compile flags: PERAGO_METRICS_ADDRESS adds that one address; the listener serves under the baked flags, another port is refused", async () => {
  await using stack = await startStack();
  const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (free.addr as Deno.NetAddr).port;
  free.close();
  stack.env.PERAGO_METRICS_ADDRESS = `127.0.0.1:${port}`;
  const { task } = await loadTask(WORD_COUNT);
  await stack.api.registerTaskDefs([buildTaskDef(task)]);
  const flags = await printFlags(stack);
  const net = flags.find((flag) => flag.startsWith("--allow-net="));
  assert.equal(
    net,
    `--allow-net=${new URL(stack.conductorUrl).host},${new URL(stack.lakefsUrl).host},` +
      `127.0.0.1:${port},` +
      Array.from(
        { length: 64 },
        (_, slot) => `unix:${stack.workspaceRoot}/.perago-lanes/${slot}.sock`,
      ).join(","),
  );
  const run = (extra: string[]) => startBaked(stack, flags, [WORD_COUNT, ...extra]);
  await using worker = run([]);
  const body = await waitFor(async () => {
    if (!/supervisor starting -> running/.test(worker.output())) return undefined;
    const response = await fetch(`http://127.0.0.1:${port}/metrics`).catch(() => undefined);
    return response?.ok ? await response.text() : undefined;
  }, { timeoutMs: 30_000, what: "metrics served" }).catch((error) => {
    throw new Error(`${error.message}\n${worker.output()}`);
  });
  assert.match(body, /^perago_build_info\{/m);
  worker.kill("SIGTERM");
  assert.equal((await worker.status).code, 0, worker.output());
  // Any other address is outside the baked --allow-net.
  await using other = run([
    "--metrics-address",
    `127.0.0.1:${port === 65535 ? port - 1 : port + 1}`,
  ]);
  assert.equal((await other.status).code, 1, other.output());
  assert.match(
    other.output(),
    /error: cannot listen for metrics on 127\.0\.0\.1:\d+: not permitted/,
  );
});

Deno.test("compile: with DENORT_BIN=/nonexistent, scripts/compile.ts exits 1 with the DENORT_BIN hint", async () => {
  await using stack = await startStack();
  const result = await runDeno(
    stack,
    ["run", "-A", COMPILE, "--out-dir", `${stack.dir}/dist`, WORD_COUNT],
    { DENORT_BIN: "/nonexistent" },
  );
  const stderr = decoder.decode(result.stderr);
  assert.equal(result.code, 1, stderr);
  assert.match(stderr, /error: compile: .*DENORT_BIN=\/nonexistent/);
  assert.match(stderr, /run again with DENORT_BIN=\/path\/to\/denort/);
  const built = await Array.fromAsync(Deno.readDir(`${stack.dir}/dist`)).catch(() => []);
  assert.deepEqual(built.filter((e) => !e.name.includes(".tmp-")).map((e) => e.name), []);
});
