import assert from "node:assert/strict";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CONFIG_ENV_VARS,
  configSecrets,
  describeConfig,
  loadRuntimeConfig,
  type RuntimeConfig,
} from "../../src/config/config.ts";
import { ConfigError } from "../../src/config/errors.ts";

const CONDUCTOR_SECRET = "conductor-secret-zz9";
const LAKEFS_SECRET = "lakefs-secret-qq7";

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "perago-config-test-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function allText(config: RuntimeConfig): string {
  return [
    String(config),
    JSON.stringify(config),
    Deno.inspect(config, { depth: 10 }),
    describeConfig(config).join("\n"),
  ].join("\n");
}

Deno.test("loadRuntimeConfig: defaults without .env or environment", async () => {
  await withDir(async (dir) => {
    const config = await loadRuntimeConfig("examples/normalize_text.ts", {
      cwd: dir,
      env: {},
      probeRoots: false,
    });
    assert.deepEqual({ ...config }, {
      workspaceRoot: join(tmpdir(), "perago", "workspaces"),
      logRoot: join(tmpdir(), "perago", "logs"),
      logFileMaxSizeBytes: 100 * 1024 * 1024,
      logRetentionMs: 30 * 86_400_000,
      workerIdPrefix: "normalizetext",
      executionMode: "process",
      workspaceGcTtlMs: 24 * 3_600_000,
      workspaceGcIntervalMs: 3_600_000,
      shutdownForceKillAfterMs: undefined,
      failureReasonMaxLength: 500,
      taskDomain: undefined,
      pausedTasks: [],
      workspaceRefStyle: "snake",
      objectCacheMaxBytes: 5 * 1024 * 1024 * 1024,
      executorMaxHeapMb: 1024,
      warmPoolDirs: 2,
      warmPoolMaxBytes: 10 * 1024 * 1024 * 1024,
      warmPoolMinFiles: 200,
      conductor: undefined,
      lakefs: undefined,
      debug: false,
      metricsAddress: undefined,
      instanceId: undefined,
      envFile: undefined,
    });
    assert.ok(Object.isFrozen(config));
  });
});

Deno.test("loadRuntimeConfig: every variable parsed; relative roots resolve against cwd", async () => {
  await withDir(async (dir) => {
    const config = await loadRuntimeConfig("tasks/build.ts", {
      cwd: dir,
      env: {
        PERAGO_WORKSPACE_ROOT: " ws ",
        PERAGO_LOG_ROOT: join(dir, "abs-logs"),
        PERAGO_LOG_FILE_MAX_SIZE: "1.5kb",
        PERAGO_LOG_RETENTION: "7d",
        PERAGO_WORKER_ID_PREFIX: "featuresBuild",
        PERAGO_EXECUTION_MODE: "thread",
        PERAGO_WORKSPACE_GC_TTL: "30m",
        PERAGO_WORKSPACE_GC_INTERVAL: "10s",
        PERAGO_SHUTDOWN_FORCE_KILL_AFTER: "2m",
        PERAGO_FAILURE_REASON_MAX_LENGTH: "80",
        PERAGO_DEBUG: "1",
        CONDUCTOR_SERVER_URL: "http://127.0.0.1:8080/api",
        CONDUCTOR_AUTH_KEY: "key-id",
        CONDUCTOR_AUTH_SECRET: CONDUCTOR_SECRET,
        LAKECTL_SERVER_ENDPOINT_URL: "http://127.0.0.1:8000",
        LAKECTL_CREDENTIALS_ACCESS_KEY_ID: "AKIAEXAMPLE",
        LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: LAKEFS_SECRET,
      },
    });
    assert.equal(config.workspaceRoot, join(dir, "ws"));
    assert.equal(config.logRoot, join(dir, "abs-logs"));
    assert.equal(config.logFileMaxSizeBytes, 1536);
    assert.equal(config.logRetentionMs, 7 * 86_400_000);
    assert.equal(config.workerIdPrefix, "featuresBuild");
    assert.equal(config.executionMode, "thread");
    assert.equal(config.workspaceGcTtlMs, 30 * 60_000);
    assert.equal(config.workspaceGcIntervalMs, 10_000);
    assert.equal(config.shutdownForceKillAfterMs, 120_000);
    assert.equal(config.failureReasonMaxLength, 80);
    assert.equal(config.debug, true);
    assert.equal(config.conductor?.serverUrl, "http://127.0.0.1:8080/api");
    assert.equal(config.conductor?.authKey, "key-id");
    assert.equal(config.conductor?.authSecret?.reveal(), CONDUCTOR_SECRET);
    assert.equal(config.lakefs?.endpointUrl, "http://127.0.0.1:8000");
    assert.equal(config.lakefs?.accessKeyId, "AKIAEXAMPLE");
    assert.equal(config.lakefs?.secretAccessKey.reveal(), LAKEFS_SECRET);
    // The probe created both roots and left nothing behind.
    assert.deepEqual([...Deno.readDirSync(config.workspaceRoot)], []);
    assert.deepEqual([...Deno.readDirSync(config.logRoot)], []);
    // Secrets are masked everywhere a config can be printed.
    const text = allText(config);
    assert.equal(text.includes(CONDUCTOR_SECRET), false);
    assert.equal(text.includes(LAKEFS_SECRET), false);
    assert.equal(describeConfig(config).join("\n").includes("AKIAEXAMPLE"), false);
    assert.equal(describeConfig(config).join("\n").includes("key-id"), false);
    assert.deepEqual(configSecrets(config), [CONDUCTOR_SECRET, LAKEFS_SECRET]);
  });
});

Deno.test("loadRuntimeConfig: .env is read and the environment overrides it", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(
      join(dir, ".env"),
      [
        "# perago settings",
        "export PERAGO_EXECUTION_MODE=thread",
        "PERAGO_FAILURE_REASON_MAX_LENGTH='42'",
        'PERAGO_LOG_RETENTION="3d"',
        "PERAGO_WORKSPACE_GC_TTL=5m",
      ].join("\n"),
    );
    const config = await loadRuntimeConfig("tasks/build.ts", {
      cwd: dir,
      env: { PERAGO_EXECUTION_MODE: "process", PERAGO_WORKSPACE_GC_TTL: "" },
      probeRoots: false,
    });
    assert.equal(config.executionMode, "process"); // environment wins
    assert.equal(config.failureReasonMaxLength, 42); // from .env
    assert.equal(config.logRetentionMs, 3 * 86_400_000); // from .env, quotes stripped
    // An empty environment value overrides .env and then counts as unset: the default.
    assert.equal(config.workspaceGcTtlMs, 24 * 3_600_000);
    assert.equal(config.envFile, join(dir, ".env"));
  });
});

Deno.test("loadRuntimeConfig: a bad value in .env fails with the variable's message", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(join(dir, ".env"), "PERAGO_LOG_FILE_MAX_SIZE=12XB\n");
    await assert.rejects(
      () => loadRuntimeConfig("tasks/build.ts", { cwd: dir, env: {}, probeRoots: false }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.equal(
          error.message,
          `PERAGO_LOG_FILE_MAX_SIZE must be a positive size such as '512KB', '100MB', or '1.5GB' (got "12XB")`,
        );
        assert.equal(error.variable, "PERAGO_LOG_FILE_MAX_SIZE");
        return true;
      },
    );
  });
});

Deno.test("loadRuntimeConfig: the first bad value in field order is reported", async () => {
  await withDir(async (dir) => {
    await assert.rejects(
      () =>
        loadRuntimeConfig("tasks/build.ts", {
          cwd: dir,
          env: {
            PERAGO_LOG_RETENTION: "bad",
            PERAGO_EXECUTION_MODE: "bad",
            LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: LAKEFS_SECRET,
          },
          probeRoots: false,
        }),
      (error: unknown) => error instanceof ConfigError && error.variable === "PERAGO_LOG_RETENTION",
    );
  });
});

Deno.test("loadRuntimeConfig: secrets never appear in a ConfigError", async () => {
  await withDir(async (dir) => {
    const cases: Record<string, string>[] = [
      { LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: LAKEFS_SECRET },
      { CONDUCTOR_SERVER_URL: "http://x", CONDUCTOR_AUTH_SECRET: CONDUCTOR_SECRET },
      {
        CONDUCTOR_AUTH_KEY: "k",
        CONDUCTOR_AUTH_SECRET: CONDUCTOR_SECRET,
        PERAGO_EXECUTION_MODE: "nope",
      },
    ];
    for (const env of cases) {
      await assert.rejects(
        () => loadRuntimeConfig("tasks/build.ts", { cwd: dir, env, probeRoots: false }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.equal(error.message.includes(LAKEFS_SECRET), false);
          assert.equal(error.message.includes(CONDUCTOR_SECRET), false);
          assert.equal(Deno.inspect(error).includes(CONDUCTOR_SECRET), false);
          return true;
        },
      );
    }
  });
});

Deno.test("loadRuntimeConfig: an unwritable root fails the probe, naming the variable", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "regular-file");
    await Deno.writeTextFile(file, "not a directory");
    for (const variable of ["PERAGO_WORKSPACE_ROOT", "PERAGO_LOG_ROOT"]) {
      const root = join(file, "below");
      const env = {
        PERAGO_WORKSPACE_ROOT: join(dir, "ws"),
        PERAGO_LOG_ROOT: join(dir, "logs"),
        [variable]: root,
      };
      await assert.rejects(
        () => loadRuntimeConfig("tasks/build.ts", { cwd: dir, env }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.equal(error.variable, variable);
          assert.ok(
            error.message.startsWith(`${variable}: ${root} is not writable: `),
            error.message,
          );
          assert.ok(error.cause instanceof Error);
          return true;
        },
      );
    }
    // Without probing the same configuration loads.
    const config = await loadRuntimeConfig("tasks/build.ts", {
      cwd: dir,
      env: { PERAGO_LOG_ROOT: join(file, "below") },
      probeRoots: false,
    });
    assert.equal(config.logRoot, join(file, "below"));
  });
});

Deno.test("loadRuntimeConfig: a read-only root fails the probe", {
  ignore: Deno.build.os === "windows" || Deno.uid() === 0,
}, async () => {
  await withDir(async (dir) => {
    const root = join(dir, "ro");
    await Deno.mkdir(root, { mode: 0o555 });
    try {
      await assert.rejects(
        () =>
          loadRuntimeConfig("tasks/build.ts", {
            cwd: dir,
            env: { PERAGO_WORKSPACE_ROOT: root, PERAGO_LOG_ROOT: join(dir, "logs") },
          }),
        (error: unknown) =>
          error instanceof ConfigError && error.variable === "PERAGO_WORKSPACE_ROOT",
      );
    } finally {
      await Deno.chmod(root, 0o755);
    }
  });
});

Deno.test("describeConfig: safe lines, URL credentials masked", async () => {
  await withDir(async (dir) => {
    const config = await loadRuntimeConfig("tasks/build.ts", {
      cwd: dir,
      env: {
        PERAGO_WORKSPACE_ROOT: "/srv/ws",
        PERAGO_LOG_ROOT: "/srv/logs",
        CONDUCTOR_SERVER_URL: "http://user:pw-in-url@conductor:8080/api?token=abc",
      },
      probeRoots: false,
    });
    assert.deepEqual(describeConfig(config), [
      "workspace root: /srv/ws",
      "log root: /srv/logs",
      "log file max size: 104857600 bytes",
      "log retention: 30d",
      "worker id prefix: build",
      "execution mode: process",
      "workspace gc: ttl 1d, interval 1h",
      "shutdown force kill after: never (wait for running attempts)",
      "failure reason max length: 500",
      "task domain (all tasks): none (default queue)",
      "paused task types: none",
      "workspace ref style: snake (ref_type)",
      "object cache: up to 5368709120 bytes",
      "warm pool: up to 2 directories, 10737418240 bytes",
      "executor heap limit: 1024 MiB",
      "conductor: http://***@conductor:8080/api?***",
      "lakefs: not configured",
      "metrics address: off",
      "env file: none",
    ]);
  });
});

Deno.test("CONFIG_ENV_VARS lists every variable and the default env reads only those", async () => {
  for (
    const name of [
      "PERAGO_WORKSPACE_ROOT",
      "PERAGO_LOG_ROOT",
      "PERAGO_DEBUG",
      "CONDUCTOR_AUTH_SECRET",
      "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
    ]
  ) assert.ok(CONFIG_ENV_VARS.includes(name), name);
  await withDir(async (dir) => {
    const script = join(dir, "load.ts");
    const configUrl = new URL("../../src/config/config.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { loadRuntimeConfig } from ${JSON.stringify(configUrl)};\n` +
        `const c = await loadRuntimeConfig("tasks/build.ts", { probeRoots: false });\n` +
        `console.log(JSON.stringify({ mode: c.executionMode, prefix: c.workerIdPrefix }));\n`,
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        `--allow-env=${CONFIG_ENV_VARS.join(",")}`,
        `--allow-read=${dir}`,
        script,
      ],
      cwd: dir,
      env: { PERAGO_EXECUTION_MODE: "thread", PERAGO_WORKER_ID_PREFIX: "fromEnv" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(output.stdout)), {
      mode: "thread",
      prefix: "fromEnv",
    });
  });
});
