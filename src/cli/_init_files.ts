/**
 * The files `perago init` writes: a task project's deno.json (import map pointing at this
 * perago installation), an example task, its test on `perago/testing`, `.env.example` with
 * every setting and its default, a README and a .gitignore.
 *
 * @module
 */

/** Where this perago installation lives, as `file:` URLs. */
export interface PeragoLocation {
  /** `mod.ts`: what tasks import as `perago`. */
  mod: string;
  /** `testing.ts`: what tests import as `perago/testing`. */
  testing: string;
  /** `main.ts`: the CLI. */
  main: string;
}

/** One setting in `.env.example`. */
export interface EnvExampleEntry {
  name: string;
  /** The value perago uses when the variable is unset; `""` when there is none. */
  defaultValue: string;
  /** One line on what it does. */
  meaning: string;
}

/**
 * Every setting perago reads: name, default (`<tmp>` stands for the OS temp dir) and meaning,
 * in the order `.env.example` lists them. (TMPDIR/TMP/TEMP are read only through the OS temp
 * dir and are not perago's settings.)
 */
const ENV_EXAMPLE: readonly (readonly [name: string, defaultValue: string, meaning: string])[] = [
  ["CONDUCTOR_SERVER_URL", "", "Conductor API (with or without /api); required by perago start"],
  ["CONDUCTOR_AUTH_KEY", "", "optional Orkes-style key id (with CONDUCTOR_AUTH_SECRET)"],
  ["CONDUCTOR_AUTH_SECRET", "", "optional Orkes-style key secret (with CONDUCTOR_AUTH_KEY)"],
  ["LAKECTL_SERVER_ENDPOINT_URL", "", "lakeFS endpoint (with or without /api/v1)"],
  [
    "LAKECTL_CREDENTIALS_ACCESS_KEY_ID",
    "",
    "lakeFS access key id (the three LAKECTL_* are set together)",
  ],
  ["LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY", "", "lakeFS secret access key"],
  [
    "PERAGO_WORKSPACE_ROOT",
    "<tmp>/perago/workspaces",
    "root of the attempt directories (default under the OS temp dir)",
  ],
  [
    "PERAGO_LOG_ROOT",
    "<tmp>/perago/logs",
    "root of the JSONL log files (default under the OS temp dir)",
  ],
  ["PERAGO_LOG_FILE_MAX_SIZE", "100MB", "log rotation size: KB, MB or GB"],
  ["PERAGO_LOG_RETENTION", "30d", "log files older than this are removed"],
  ["PERAGO_WORKER_ID", "", "worker id of a single process (default <prefix>-pid-<pid>)"],
  [
    "PERAGO_WORKER_ID_PREFIX",
    "",
    "prefix of worker ids (default: letters and digits of the module name)",
  ],
  ["PERAGO_EXECUTION_MODE", "process", "process (executor processes) or thread (Web Workers)"],
  [
    "PERAGO_WORKSPACE_GC_TTL",
    "24h",
    "minimum age before an abandoned attempt directory is removed",
  ],
  ["PERAGO_WORKSPACE_GC_INTERVAL", "1h", "how often abandoned attempt directories are looked for"],
  [
    "PERAGO_SHUTDOWN_FORCE_KILL_AFTER",
    "",
    "drain deadline on SIGINT/SIGTERM (default: wait for running attempts)",
  ],
  [
    "PERAGO_FAILURE_REASON_MAX_LENGTH",
    "500",
    "reasonForIncompletion is cut to this many characters",
  ],
  [
    "PERAGO_TASK_DOMAIN",
    "",
    "Conductor task domain of every served task type (PERAGO_TASK_DOMAIN_<NAME> overrides one; default: the default queue)",
  ],
  ["PERAGO_TASK_PAUSED", "", "task names (comma or space separated) this worker does not poll"],
  [
    "PERAGO_WORKSPACE_REF_STYLE",
    "snake",
    "spelling of published workspace refs: snake (ref_type) or camel (refType, what perago for Python reads)",
  ],
  [
    "PERAGO_OBJECT_CACHE_MAX_SIZE",
    "5GB",
    "bound of the host's object cache under <workspace root>/.perago-cache (0: off)",
  ],
  [
    "PERAGO_WARM_POOL_DIRS",
    "2",
    "ended attempts' directories kept under <workspace root>/.perago-warm for re-runs (0: off)",
  ],
  [
    "PERAGO_WARM_POOL_MAX_SIZE",
    "10GB",
    "bytes the warm pool's directories may hold together",
  ],
  [
    "PERAGO_WARM_POOL_MIN_FILES",
    "200",
    "smallest directory (downloaded files) an executor keeps in the warm pool (0: every one)",
  ],
  [
    "PERAGO_EXECUTOR_MAX_HEAP_MB",
    "1024",
    "V8 heap limit of each executor process in MiB; a task past it fails and is retried (0: V8's own limit; process mode only)",
  ],
  ["PERAGO_DEBUG", "", "1 prints stack traces with errors and debug logs"],
  [
    "PERAGO_METRICS_ADDRESS",
    "",
    "host:port where perago start serves /metrics, /healthz and /readyz (off when unset)",
  ],
  [
    "PERAGO_INSTANCE_ID",
    "",
    "perago_instance_id label of runtime.busy_slots over OTLP (default: the worker id)",
  ],
];

/** The settings of {@linkcode ENV_EXAMPLE} with the temp dir filled in. */
export function envExampleEntries(tempDir: string): EnvExampleEntry[] {
  return ENV_EXAMPLE.map(([name, defaultValue, meaning]) => ({
    name,
    defaultValue: defaultValue.replace("<tmp>", () => tempDir),
    meaning,
  }));
}

/** `.env.example`: every setting commented out at its default. */
export function envExample(tempDir: string): string {
  const lines = [
    "# perago settings. Copy this file to .env (or set the variables in the",
    "# environment) and uncomment what you change; each line shows the default.",
    "# `deno task perago dev --seed` starts demo servers and prints the four",
    "# CONDUCTOR_/LAKECTL_ lines for them. Never commit .env: it holds secrets.",
  ];
  for (const entry of envExampleEntries(tempDir)) {
    lines.push("", `# ${entry.meaning}`, `# ${entry.name}=${entry.defaultValue}`);
  }
  return `${lines.join("\n")}\n`;
}

/** The project's `deno.json`. */
export function denoJson(
  location: PeragoLocation,
  dependencies: Readonly<Record<string, string>>,
  taskModule: string,
): string {
  const config = {
    imports: {
      "perago": location.mod,
      "perago/testing": location.testing,
      ...dependencies,
    },
    // perago start --execution-mode thread runs executors as Web Workers with their own
    // permissions, which needs Deno's worker-options.
    unstable: ["worker-options"],
    // Keep the README's line breaks (its first line holds a path of any length).
    fmt: { proseWrap: "preserve" },
    tasks: {
      test: "deno test --allow-read --allow-write tests/",
      check: "deno fmt --check && deno lint && deno check tasks/ tests/",
      // --config: perago's main.ts lives elsewhere; this project's import map must apply.
      start: `deno run -A --config deno.json ${location.main} start ${taskModule}`,
      perago: `deno run -A --config deno.json ${location.main}`,
    },
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** The example task module. */
export const EXAMPLE_TASK = `/**
 * An example perago task: trims trailing whitespace in docs/*.txt and writes
 * docs/index.json, the sorted list of those files. Change it, rename it, or
 * copy it for your own tasks; tests/tidy_docs_test.ts tests it.
 *
 * @module
 */
import {
  defineTask,
  requireDir,
  requireFile,
  TaskTerminalError,
  z,
} from "perago";

export default defineTask({
  name: "tidy_docs",
  ownerEmail: "you@example.com",
  description: "Trims trailing spaces in docs/*.txt and writes docs/index.json",
  params: z.object({ maxFiles: z.number().int().positive().default(1000) }),
  result: z.object({
    filesChanged: z.number().int(),
    filesScanned: z.number().int(),
  }),
  workspace: {
    // Only docs/ is downloaded and published. The attempt directory mirrors
    // the repository, so guardrail paths start with the prefix.
    prefix: "docs/",
    pre: [requireDir("docs")], // failing: terminal (the input is wrong)
    post: [requireFile("docs/index.json")], // failing: retried
  },
  controls: { retry: { count: 2 }, timeout: { responseSeconds: 120 } },
  async run({ maxFiles }, ctx) {
    const docs = \`\${ctx.workspace}/docs\`;
    const names: string[] = [];
    let filesChanged = 0;
    for await (const entry of Deno.readDir(docs)) {
      if (!entry.isFile || !entry.name.endsWith(".txt")) continue;
      if (names.push(entry.name) > maxFiles) {
        // A retry would see the same files: fail without retrying.
        throw new TaskTerminalError(\`more than \${maxFiles} files under docs/\`);
      }
      const path = \`\${docs}/\${entry.name}\`;
      const text = await Deno.readTextFile(path);
      const tidy = text.replace(/[ \\t]+$/gm, "");
      if (tidy !== text) {
        await Deno.writeTextFile(path, tidy);
        filesChanged++;
      }
    }
    const index = \`\${JSON.stringify(names.sort())}\\n\`;
    const indexPath = \`\${docs}/index.json\`;
    // Written only when it differs: a rerun on a tidy tree publishes nothing.
    const current = await Deno.readTextFile(indexPath).catch(() => undefined);
    if (current !== index) await Deno.writeTextFile(indexPath, index);
    ctx.log.info("tidied", { filesChanged });
    return { filesChanged, filesScanned: names.length };
  },
});
`;

/** The example task's test, on `perago/testing`. */
export const EXAMPLE_TEST = `import assert from "node:assert/strict";
import { runTask } from "perago/testing";
import tidyDocs from "../tasks/tidy_docs.ts";

Deno.test("tidy_docs trims trailing whitespace and writes the index", async () => {
  const run = await runTask(tidyDocs, {
    files: { "docs/a.txt": "alpha  \\nbeta\\t\\n", "docs/b.txt": "clean\\n" },
  });
  assert.equal(run.status, "COMPLETED", run.reason);
  assert.deepEqual(run.result, { filesChanged: 1, filesScanned: 2 });
  assert.deepEqual(run.changes, {
    added: ["docs/index.json"],
    changed: ["docs/a.txt"],
    removed: [],
  });
  assert.equal(run.read("docs/a.txt"), "alpha\\nbeta\\n");
  assert.equal(run.read("docs/index.json"), '["a.txt","b.txt"]\\n');
});

Deno.test("tidy_docs on a tidy tree changes nothing", async () => {
  const run = await runTask(tidyDocs, {
    files: { "docs/a.txt": "alpha\\n", "docs/index.json": '["a.txt"]\\n' },
  });
  assert.equal(run.status, "COMPLETED", run.reason);
  assert.deepEqual(run.changes, { added: [], changed: [], removed: [] });
});

Deno.test("tidy_docs without docs/ fails terminally (pre guardrail)", async () => {
  const run = await runTask(tidyDocs, { files: {} });
  assert.equal(run.status, "FAILED_WITH_TERMINAL_ERROR");
  assert.match(run.reason ?? "", /^PreGuardrailViolation: /);
});

Deno.test("tidy_docs refuses more than maxFiles files (terminal)", async () => {
  const run = await runTask(tidyDocs, {
    files: { "docs/a.txt": "a\\n", "docs/b.txt": "b\\n" },
    params: { maxFiles: 1 },
  });
  assert.equal(run.status, "FAILED_WITH_TERMINAL_ERROR");
  assert.match(run.reason ?? "", /^TaskTerminalError: more than 1 files/);
  assert.equal(run.read("docs/index.json"), undefined); // nothing published
});
`;

/** The project's README. */
export function readme(name: string, location: PeragoLocation): string {
  return `# ${name}

Conductor tasks run by [perago](${location.main.replace(/main\.ts$/, "README.md")}):
each task changes a versioned workspace in lakeFS.

- \`tasks/tidy_docs.ts\`: an example task; \`tests/tidy_docs_test.ts\`: its test.
- \`deno.json\`: the import map (\`perago\`, \`perago/testing\` point at the
  perago installation that made this project) and the tasks below.

## Test

\`\`\`sh
deno task test    # runTask: one attempt per test, no servers, no network
deno task check   # fmt, lint, type check
\`\`\`

\`runTask(task, { files, params })\` from \`perago/testing\` runs one attempt the
way a worker does (validation, guardrails, change detection, publication to an
in-memory lakeFS) and returns \`{ status, result, reason, changes, read }\`.
\`withDemoStack\` runs whole workflows of your task modules through
\`perago start\` on demo servers in the test process (run those tests with
\`-A\`).

## Run

\`\`\`sh
cp .env.example .env   # then set the Conductor and lakeFS lines, or try it
deno task perago dev --seed >> .env &   # on demo servers (prints their lines)
deno task perago extract tasks/tidy_docs.ts -o taskdef.json
curl -X POST "$CONDUCTOR_SERVER_URL/metadata/taskdefs" \\
  -H 'content-type: application/json' -d "[$(cat taskdef.json)]"
deno task start
\`\`\`

\`perago start\` refuses to start until the TaskDef is registered on Conductor.

\`deno task perago <command>\` runs any perago command (\`check\`, \`run\`,
\`extract\`, \`dev\`, ...); add \`--help\` for details.
`;
}

/** The project's `.gitignore`. */
export const GITIGNORE = `.env
taskdef.json
`;
