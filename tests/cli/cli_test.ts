/**
 * The CLI as a user meets it: real `deno run main.ts ...` processes, checking output, exit
 * codes, `--help` everywhere, one-line errors, and `perago dev` serving what it prints.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { VERSION } from "../../src/version.ts";
import { waitFor } from "../../src/util/sleep.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = `${ROOT}main.ts`;
const EXAMPLES = ["normalize_text", "text_stats", "word_count"];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function perago(args: string[], env: Record<string, string> = {}, cwd?: string) {
  const dir = cwd ?? await Deno.makeTempDir({ prefix: "perago-cli-" });
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, ...args],
      cwd: dir,
      env: {
        NO_COLOR: "1",
        PERAGO_WORKSPACE_ROOT: `${dir}/ws`,
        PERAGO_LOG_ROOT: `${dir}/logs`,
        ...env,
      },
      stdin: "null",
      signal: AbortSignal.timeout(60_000),
    }).output();
    const decoder = new TextDecoder();
    return {
      code: output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    } satisfies Run;
  } finally {
    if (cwd === undefined) await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("perago --version prints the version", async () => {
  const run = await perago(["--version"]);
  assert.equal(run.code, 0);
  assert.equal(run.stdout.trim(), `perago ${VERSION}`);
});

Deno.test("--help works at the top and on every command", async () => {
  const top = await perago(["--help"]);
  assert.equal(top.code, 0);
  assert.match(top.stdout, /^Usage: perago <command> \[options\]$/m);
  const short = await perago(["-h"]);
  assert.equal(short.code, 0);
  assert.equal(short.stdout, top.stdout);
  // No command at all: the same usage, but it is a usage error (exit 1).
  const bare = await perago([]);
  assert.equal(bare.code, 1);
  assert.equal(bare.stdout, top.stdout);
  for (const command of ["check", "extract", "run", "start", "dev", "init"]) {
    assert.match(top.stdout, new RegExp(`^  ${command} `, "m"));
    const help = await perago([command, "--help"]);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, new RegExp(`Usage: perago ${command}`));
    const viaHelp = await perago(["help", command]);
    assert.equal(viaHelp.code, 0, viaHelp.stderr);
    assert.equal(viaHelp.stdout, help.stdout);
  }
});

Deno.test("an unknown command or flag is one error line and exit 1", async () => {
  const unknown = await perago(["frobnicate"]);
  assert.equal(unknown.code, 1);
  assert.equal(unknown.stderr.trim().split("\n").length, 1);
  assert.match(unknown.stderr, /^error: unknown command "frobnicate"/);
  const flag = await perago(["extract", "--nope", "x.ts"]);
  assert.equal(flag.code, 1);
  assert.equal(
    flag.stderr.trim(),
    'error: extract: unknown option --nope; run "perago extract --help"',
  );
  const short = await perago(["start", "x.ts", "-x"]);
  assert.equal(short.code, 1);
  assert.equal(short.stderr.trim(), 'error: start: unknown option -x; run "perago start --help"');
});

Deno.test("start: -j takes 1 to 1024 in digits, --execution-mode process or thread; each else is one error", async () => {
  for (const value of ["0", "1025", "2.0", "1e1", "0x2", " 3", "two"]) {
    const run = await perago(["start", "examples/word_count.ts", "-j", value]);
    assert.equal(run.code, 1, value);
    assert.equal(
      run.stderr.trim(),
      `error: start: -j must be a whole number from 1 to 1024 (got ${value})`,
    );
  }
  const mode = await perago(["start", "examples/word_count.ts", "--execution-mode", "fiber"]);
  assert.equal(mode.code, 1);
  assert.equal(
    mode.stderr.trim(),
    "error: start: --execution-mode must be process or thread (got fiber)",
  );
  for (const args of [["-j"], ["-j", "-1"]]) {
    const missing = await perago(["start", "examples/word_count.ts", ...args]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^error: start: Option '-j[,'].*; run "perago start --help"\n$/);
  }
  const none = await perago(["start"]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /^error: start: expected at least one task module/);
});

Deno.test("check prints ok, the roots and the prefix for each example, never a secret", async () => {
  const secret = "s3cr3t-value-for-check-test";
  for (const name of EXAMPLES) {
    const run = await perago(["check", `${ROOT}examples/${name}.ts`], {
      LAKECTL_SERVER_ENDPOINT_URL: "http://127.0.0.1:8000",
      LAKECTL_CREDENTIALS_ACCESS_KEY_ID: "AKIDCHECK",
      LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: secret,
    });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`^ok: ${name}$`, "m"));
    assert.match(run.stdout, /workspace root: .*\/ws$/m);
    assert.match(run.stdout, /log root: .*\/logs$/m);
    assert.match(run.stdout, /conductor: not configured/);
    assert.match(run.stdout, /lakefs: .*127\.0\.0\.1:8000/);
    assert.match(
      run.stdout,
      name === "word_count" ? /workspace: none/ : /workspace prefix: \/docs\//,
    );
    assert.ok(!(run.stdout + run.stderr).includes(secret));
  }
});

Deno.test("extract writes the same TaskDef bytes to stdout and to -o", async () => {
  const dir = await Deno.makeTempDir({ prefix: "perago-cli-" });
  try {
    for (const name of EXAMPLES) {
      const module = `${ROOT}examples/${name}.ts`;
      const first = await perago(["extract", module], {}, dir);
      const second = await perago(["extract", module, "-o", `${dir}/${name}.json`], {}, dir);
      assert.equal(first.code, 0, first.stderr);
      assert.equal(second.code, 0, second.stderr);
      assert.equal(await Deno.readTextFile(`${dir}/${name}.json`), first.stdout);
      const def = JSON.parse(first.stdout);
      assert.equal(def.name, name);
      assert.deepEqual(Object.keys(def).slice(0, 3), ["name", "ownerEmail", "description"]);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a bad value of each PERAGO_* variable is one line naming it, exit 1", async () => {
  const bad: Record<string, string> = {
    PERAGO_LOG_FILE_MAX_SIZE: "12XB",
    PERAGO_LOG_RETENTION: "30",
    PERAGO_WORKER_ID_PREFIX: "bad-prefix",
    PERAGO_EXECUTION_MODE: "fiber",
    PERAGO_WORKSPACE_GC_TTL: "0h",
    PERAGO_WORKSPACE_GC_INTERVAL: "1w",
    PERAGO_SHUTDOWN_FORCE_KILL_AFTER: "soon",
    PERAGO_FAILURE_REASON_MAX_LENGTH: "-1",
    PERAGO_WORKSPACE_ROOT: "/proc/perago-cannot-write-here",
    PERAGO_LOG_ROOT: "/proc/perago-cannot-write-here",
    PERAGO_TASK_DOMAIN: "qa:blue",
    PERAGO_TASK_DOMAIN_WORD_COUNT: "two words",
    PERAGO_TASK_CONCURRENCY_WORD_COUNT: "0",
    PERAGO_TASK_PAUSED: "word_count, ../etc",
    PERAGO_WORKSPACE_REF_STYLE: "kebab",
  };
  for (const [variable, value] of Object.entries(bad)) {
    const run = await perago(["check", `${ROOT}examples/word_count.ts`], { [variable]: value });
    assert.equal(run.code, 1, `${variable}=${value}: ${run.stdout}`);
    const lines = run.stderr.trim().split("\n");
    assert.equal(lines.length, 1, `${variable}: ${run.stderr}`);
    assert.match(lines[0]!, new RegExp(`^error: .*${variable}`), variable);
  }
});

Deno.test("check prints each task's domain, per-host concurrency, polling and paused state", async () => {
  const dir = await Deno.makeTempDir({ prefix: "perago-cli-" });
  try {
    const module = `${dir}/heavy_render.ts`;
    await Deno.writeTextFile(
      module,
      `import { defineTask, z } from ${JSON.stringify(`${ROOT}mod.ts`)};
export default defineTask({
  name: "heavy.render", ownerEmail: "t@example.com", description: "d",
  params: z.object({}), result: z.object({}),
  worker: { concurrency: 1, pollIntervalMs: 500, batchSize: 2 },
  run: () => ({}),
});
`,
    );
    const plain = await perago(["check", module], {}, dir);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /^task domain: none \(default queue\)$/m);
    assert.match(plain.stdout, /^task concurrency per host: 1 \(worker\.concurrency\)$/m);
    assert.match(plain.stdout, /^task polling: every 500 ms when idle, batch at most 2$/m);
    assert.match(plain.stdout, /^task paused: no$/m);
    const deployed = await perago(["check", module], {
      PERAGO_TASK_DOMAIN: "staging",
      PERAGO_TASK_DOMAIN_HEAVY_RENDER: "gpu-pool",
      PERAGO_TASK_CONCURRENCY_HEAVY_RENDER: "3",
      PERAGO_TASK_PAUSED: "other heavy.render",
      PERAGO_WORKSPACE_REF_STYLE: "camel",
    }, dir);
    assert.equal(deployed.code, 0, deployed.stderr);
    assert.match(deployed.stdout, /^task domain \(all tasks\): staging$/m);
    assert.match(deployed.stdout, /^task domain: gpu-pool \(PERAGO_TASK_DOMAIN_HEAVY_RENDER\)$/m);
    assert.match(deployed.stdout, /^task concurrency per host: 3 \(PERAGO_TASK_CONCURRENCY_\*\)$/m);
    assert.match(deployed.stdout, /^paused task types: other, heavy\.render$/m);
    assert.match(deployed.stdout, /^task paused: yes \(PERAGO_TASK_PAUSED\): not polled$/m);
    assert.match(deployed.stdout, /^workspace ref style: camel \(refType\)$/m);
    const noDomain = await perago(["check", module], {
      PERAGO_TASK_DOMAIN: "staging",
      PERAGO_TASK_DOMAIN_HEAVY_RENDER: "no_domain",
    }, dir);
    assert.match(
      noDomain.stdout,
      /^task domain: none \(default queue\) \(PERAGO_TASK_DOMAIN_HEAVY_RENDER=NO_DOMAIN\)$/m,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("extract and check warn on stderr when responseSeconds is shorter than the publish budget", async () => {
  const dir = await Deno.makeTempDir({ prefix: "perago-cli-" });
  try {
    const module = `${dir}/publisher.ts`;
    await Deno.writeTextFile(
      module,
      `import { defineTask, z } from ${JSON.stringify(`${ROOT}mod.ts`)};
export default defineTask({
  name: "publisher", ownerEmail: "t@example.com", description: "d",
  params: z.object({}), result: z.object({}), workspace: {},
  controls: {
    timeout: { responseSeconds: 60 },
    publishBudget: {
      observedMergeP99Seconds: 20, safetyMarginSeconds: 10, lakefsMergeTimeoutSeconds: 45,
      conductorCompletionTimeoutSeconds: 15, workerShutdownGraceSeconds: 30,
      heartbeatIntervalSeconds: 10,
    },
  },
  run: () => ({}),
});
`,
    );
    const extract = await perago(["extract", module], {}, dir);
    assert.equal(extract.code, 0, extract.stderr);
    assert.equal(JSON.parse(extract.stdout).responseTimeoutSeconds, 60);
    assert.match(
      extract.stderr,
      /^warning: task publisher: controls\.timeout\.responseSeconds \(60\) is shorter than the publish budget it implies \(100 s/m,
    );
    const check = await perago(["check", module], {}, dir);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stderr, /^warning: task publisher: .*publish budget/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("replace-me and partial lakeFS settings are rejected without echoing secrets", async () => {
  const placeholder = await perago(["check", `${ROOT}examples/word_count.ts`], {
    CONDUCTOR_SERVER_URL: "replace-me",
  });
  assert.equal(placeholder.code, 1);
  assert.match(placeholder.stderr, /^error: CONDUCTOR_SERVER_URL must be replaced/);
  const partial = await perago(["check", `${ROOT}examples/word_count.ts`], {
    LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: "only-the-secret-value",
  });
  assert.equal(partial.code, 1);
  assert.match(partial.stderr, /LAKECTL_SERVER_ENDPOINT_URL/);
  assert.ok(!partial.stderr.includes("only-the-secret-value"));
});

Deno.test("a task module that does not load gives a clear error and exit 1", async () => {
  const missing = await perago(["check", `${ROOT}examples/nope.ts`]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^error: task module not found: .*nope\.ts/);
  assert.doesNotMatch(missing.stderr, /^\s+at /m);
});

Deno.test("perago dev prints four .env lines, serves them to plain HTTP, stops on SIGTERM", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "dev", "--seed"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let stdout = "";
  const pump = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) stdout += decoder.decode(chunk, { stream: true });
  })();
  const stderr = new Response(child.stderr).text();
  try {
    await waitFor(() => stdout.split("\n").length > 4, { timeoutMs: 30_000, what: "dev output" });
    const env = Object.fromEntries(
      stdout.trim().split("\n").map((line) => line.split(/=(.*)/s).slice(0, 2)),
    ) as Record<string, string>;
    assert.deepEqual(Object.keys(env), [
      "CONDUCTOR_SERVER_URL",
      "LAKECTL_SERVER_ENDPOINT_URL",
      "LAKECTL_CREDENTIALS_ACCESS_KEY_ID",
      "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
    ]);
    const health = await fetch(new URL("/health", env.CONDUCTOR_SERVER_URL));
    assert.equal(health.status, 200);
    await health.body?.cancel();
    const taskdefs = await fetch(`${env.CONDUCTOR_SERVER_URL}/metadata/taskdefs`);
    assert.equal(taskdefs.status, 200);
    assert.ok(Array.isArray(await taskdefs.json()));
    const auth = btoa(
      `${env.LAKECTL_CREDENTIALS_ACCESS_KEY_ID}:${env.LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY}`,
    );
    const repo = await fetch(`${env.LAKECTL_SERVER_ENDPOINT_URL}/api/v1/repositories/demo`, {
      headers: { authorization: `Basic ${auth}` },
    });
    assert.equal(repo.status, 200);
    assert.equal((await repo.json()).default_branch, "main");
    const denied = await fetch(`${env.LAKECTL_SERVER_ENDPOINT_URL}/api/v1/repositories`);
    assert.equal(denied.status, 401);
    await denied.body?.cancel();
  } finally {
    child.kill("SIGTERM");
    const status = await child.status;
    await pump;
    assert.equal(status.code, 0, await stderr);
  }
});
