/**
 * `perago dev` with the real servers: `--lakefs-bin` runs a real lakeFS in local mode (when a
 * lakeFS binary is at hand: PERAGO_TEST_LAKEFS_BIN or ../shared/tools/lakefs), and
 * `--conductor oss` uses Conductor OSS through scripts/conductor_oss.sh (tested where one is
 * already running, so the test never cold-starts a JVM); both print the same `.env` lines
 * and stop what they started.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { waitFor } from "../../src/util/sleep.ts";
import { realLakeFsBinary, skipNote } from "../_real_servers.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = `${ROOT}main.ts`;
const SCRIPT = `${ROOT}scripts/conductor_oss.sh`;

interface Dev {
  env: Record<string, string>;
  stderr: () => string;
  stop(): Promise<number>;
}

/** Starts `perago dev ...args` and waits for its four `.env` lines. */
async function startDev(args: string[], env: Record<string, string> = {}): Promise<Dev> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "dev", ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...env },
  }).spawn();
  let stdout = "";
  let stderr = "";
  const decoder = new TextDecoder();
  const pumps = Promise.all([
    (async () => {
      for await (const chunk of child.stdout) stdout += decoder.decode(chunk, { stream: true });
    })(),
    (async () => {
      for await (const chunk of child.stderr) stderr += decoder.decode(chunk, { stream: true });
    })(),
  ]);
  let exited = false;
  child.status.then(() => exited = true);
  try {
    await waitFor(() => {
      if (exited) throw new Error(`perago dev exited early:\n${stderr}`);
      return stdout.split("\n").length > 4 || undefined;
    }, { timeoutMs: 60_000, what: "perago dev's .env lines" });
  } catch (error) {
    child.kill("SIGKILL");
    await pumps;
    throw error;
  }
  const lines = stdout.trim().split("\n").map((line) => line.split(/=(.*)/s).slice(0, 2));
  return {
    env: Object.fromEntries(lines) as Record<string, string>,
    stderr: () => stderr,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // gone
      }
      const status = await child.status;
      await pumps;
      return status.code;
    },
  };
}

Deno.test("perago dev: --conductor other than demo|oss, or oss with --conductor-port, is a usage error", async () => {
  for (
    const [args, message] of [
      [["--conductor", "orkes"], /--conductor must be "demo" or "oss"/],
      [["--conductor", "oss", "--conductor-port", "8080"], /CONDUCTOR_OSS_PORT/],
    ] as const
  ) {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, "dev", ...args],
      stdin: "null",
      env: { NO_COLOR: "1" },
    }).output();
    assert.notEqual(output.code, 0);
    assert.match(new TextDecoder().decode(output.stderr), message);
    assert.equal(new TextDecoder().decode(output.stdout), "");
  }
});

Deno.test("perago dev --lakefs-bin with no such file: one clear error, exit 1, nothing left running", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "dev", "--lakefs-bin", "/nonexistent/lakefs"],
    stdin: "null",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(60_000),
  }).output();
  assert.equal(output.code, 1);
  assert.match(
    new TextDecoder().decode(output.stderr),
    /^error: lakeFS binary not found at \/nonexistent\/lakefs: give the path/m,
  );
  assert.equal(new TextDecoder().decode(output.stdout), "");
});

const binary = realLakeFsBinary();
Deno.test({
  name: "perago dev --lakefs-bin: a real lakeFS in local mode, seeded, stopped on SIGTERM",
  ignore: skipNote("perago dev --lakefs-bin", binary),
  async fn() {
    if ("skip" in binary) return;
    const dataDir = await Deno.makeTempDir({ prefix: "perago-dev-real-" });
    try {
      // PERAGO_DEV_LAKEFS_BIN works like the flag.
      const dev = await startDev(["--seed", "--data-dir", dataDir], {
        PERAGO_DEV_LAKEFS_BIN: binary.path,
      });
      let pid: number | undefined;
      try {
        const env = dev.env;
        assert.deepEqual(Object.keys(env), [
          "CONDUCTOR_SERVER_URL",
          "LAKECTL_SERVER_ENDPOINT_URL",
          "LAKECTL_CREDENTIALS_ACCESS_KEY_ID",
          "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
        ]);
        pid = Number(/real lakeFS .* \(pid (\d+),/.exec(dev.stderr())?.[1]);
        assert.ok(pid > 0, dev.stderr());
        const auth = `Basic ${
          btoa(
            `${env.LAKECTL_CREDENTIALS_ACCESS_KEY_ID}:${env.LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY}`,
          )
        }`;
        const lakefs = env.LAKECTL_SERVER_ENDPOINT_URL!;
        // The real server: its own version and config answers.
        const version = await fetch(`${lakefs}/api/v1/config/version`, {
          headers: { authorization: auth },
        });
        assert.equal(version.status, 200);
        const body = await version.json();
        assert.match(String(body.version), /^\d+\.\d+\.\d+/);
        // Only the real server lists its capabilities in /config.
        const config = await fetch(`${lakefs}/api/v1/config`, { headers: { authorization: auth } });
        assert.ok(
          "capabilities_config" in await config.json(),
          "the demo lakeFS answered, not the real one",
        );
        const repo = await fetch(`${lakefs}/api/v1/repositories/demo`, {
          headers: { authorization: auth },
        });
        assert.equal(repo.status, 200);
        assert.equal((await repo.json()).storage_namespace, "local://demo");
        const denied = await fetch(`${lakefs}/api/v1/repositories`);
        assert.equal(denied.status, 401);
        await denied.body?.cancel();
        const health = await fetch(new URL("/health", env.CONDUCTOR_SERVER_URL));
        assert.equal(health.status, 200);
        await health.body?.cancel();
        await Deno.stat(`${dataDir}/lakefs-real/lakefs.yaml`);
      } finally {
        assert.equal(await dev.stop(), 0, dev.stderr());
      }
      // The lakeFS process is gone.
      await waitFor(() => {
        try {
          Deno.kill(pid!, "SIGCONT");
          return undefined;
        } catch {
          return true;
        }
      }, { timeoutMs: 20_000, what: `lakeFS pid ${pid} to exit` });
      assert.match(dev.stderr(), /SIGTERM received, stopping the servers/);
    } finally {
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});

/** The Conductor OSS the script reports running, if any (never started by this test). */
function runningConductorOss(): { url: string } | { skip: string } {
  try {
    const out = new Deno.Command(SCRIPT, { args: ["url"], stderr: "null" }).outputSync();
    const url = new TextDecoder().decode(out.stdout).trim();
    if (out.code === 0 && url.startsWith("http")) return { url };
  } catch {
    // no script or cannot run it
  }
  return {
    skip: "no Conductor OSS running under scripts/conductor_oss.sh (this test does not " +
      "cold-start one; .ci/run starts it where Java, Maven and PostgreSQL exist)",
  };
}

const oss = runningConductorOss();
Deno.test({
  name: "perago dev --conductor oss: uses the running Conductor OSS and leaves it running",
  ignore: skipNote("perago dev --conductor oss", oss),
  async fn() {
    if ("skip" in oss) return;
    const dev = await startDev(["--conductor", "oss"]);
    try {
      assert.equal(dev.env.CONDUCTOR_SERVER_URL, `${oss.url}/api`);
      const defs = await fetch(`${dev.env.CONDUCTOR_SERVER_URL}/metadata/taskdefs`);
      assert.equal(defs.status, 200);
      await defs.body?.cancel();
      assert.match(dev.stderr(), /using the Conductor OSS already running at/);
    } finally {
      assert.equal(await dev.stop(), 0, dev.stderr());
    }
    const health = await fetch(`${oss.url}/health`);
    assert.equal(health.status, 200, "a Conductor dev did not start must keep running");
    await health.body?.cancel();
  },
});
