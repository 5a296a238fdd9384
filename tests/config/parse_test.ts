import assert from "node:assert/strict";
import { ConfigError } from "../../src/config/errors.ts";
import {
  parseConductorConfig,
  parseDuration,
  parseExecutionMode,
  parseExecutorMaxHeapMb,
  parseFailureReasonMaxLength,
  parseLakeFsConfig,
  parseListenAddress,
  parseLogFileMaxSize,
  parseLogRetention,
  parseObjectCacheMaxSize,
  parseOptionalDuration,
  parseWarmPoolDirs,
  parseWarmPoolMaxSize,
  parseWarmPoolMinFiles,
} from "../../src/config/parse.ts";

const KB = 1024;
const MB = 1024 * KB;
const GB = 1024 * MB;
const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;

type Row<T> = [input: string | undefined, expected: T | { error: string; variable: string }];

function table<T>(name: string, parse: (value: string | undefined) => T, rows: Row<T>[]): void {
  for (const [input, expected] of rows) {
    Deno.test(`${name}(${JSON.stringify(input)})`, () => {
      if (typeof expected === "object" && expected !== null && "error" in expected) {
        assert.throws(() => parse(input), (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.equal(error.name, "ConfigError");
          assert.equal(error.message, expected.error);
          assert.equal(error.variable, expected.variable);
          return true;
        });
      } else {
        assert.deepEqual(parse(input), expected);
      }
    });
  }
}

const SIZE = "PERAGO_LOG_FILE_MAX_SIZE";
const sizeError = (got: string) => ({
  error: `${SIZE} must be a positive size such as '512KB', '100MB', or '1.5GB' (got ${got})`,
  variable: SIZE,
});
table("parseLogFileMaxSize", parseLogFileMaxSize, [
  [undefined, 100 * MB],
  ["", 100 * MB],
  ["   ", 100 * MB],
  ["512KB", 512 * KB],
  ["100MB", 100 * MB],
  ["1GB", GB],
  ["1.5GB", 1.5 * GB],
  ["1.5gb", 1.5 * GB],
  ["10 mb", 10 * MB],
  ["  2Kb  ", 2 * KB],
  ["0.001KB", 2], // 1.024 bytes rounds up
  ["0.5KB", 512],
  ["1.0009765625KB", 1025], // exact: 1024 + 1
  ["1.00097656251KB", 1026], // a hair more rounds up
  ["12XB", sizeError('"12XB"')],
  ["100", sizeError('"100"')],
  ["-1MB", sizeError('"-1MB"')],
  ["01MB", sizeError('"01MB"')],
  [".5MB", sizeError('".5MB"')],
  ["1.MB", sizeError('"1.MB"')],
  ["1,5MB", sizeError('"1,5MB"')],
  ["1MiB", sizeError('"1MiB"')],
  ["1e3KB", sizeError('"1e3KB"')],
  ["0MB", { error: `${SIZE} must be greater than zero (got "0MB")`, variable: SIZE }],
  ["0.0KB", { error: `${SIZE} must be greater than zero (got "0.0KB")`, variable: SIZE }],
]);

const CACHE = "PERAGO_OBJECT_CACHE_MAX_SIZE";
const cacheError = (got: string) => ({
  error:
    `${CACHE} must be a size such as '512MB', '5GB' or '1.5GB', or 0 for no cache (got ${got})`,
  variable: CACHE,
});
table("parseObjectCacheMaxSize", parseObjectCacheMaxSize, [
  [undefined, 5 * GB],
  ["", 5 * GB],
  ["0", 0],
  [" 0 ", 0],
  ["0MB", 0],
  ["0.0KB", 0],
  ["512MB", 512 * MB],
  ["1.5gb", 1.5 * GB],
  ["20 GB", 20 * GB],
  ["0.001KB", 2],
  ["100", cacheError('"100"')],
  ["-1GB", cacheError('"-1GB"')],
  ["00", cacheError('"00"')],
  ["5GiB", cacheError('"5GiB"')],
]);

const HEAP = "PERAGO_EXECUTOR_MAX_HEAP_MB";
const heapError = (got: string) => ({
  error: `${HEAP} must be a whole number of MiB from 64 to 1048576, or 0 for V8's own limit ` +
    `(got ${got})`,
  variable: HEAP,
});
table("parseExecutorMaxHeapMb", parseExecutorMaxHeapMb, [
  [undefined, 1024],
  ["", 1024],
  ["0", 0],
  [" 4096 ", 4096],
  ["64", 64],
  ["1048576", 1_048_576],
  ["63", heapError('"63"')],
  ["1048577", heapError('"1048577"')],
  ["1.5", heapError('"1.5"')],
  ["1GB", heapError('"1GB"')],
  ["-1", heapError('"-1"')],
  ["0100", heapError('"0100"')],
]);

const WARM = "PERAGO_WARM_POOL_DIRS";
const warmError = (got: string) => ({
  error: `${WARM} must be a whole number of directories from 0 (no warm pool) to 1000 ` +
    `(got ${got})`,
  variable: WARM,
});
table("parseWarmPoolDirs", parseWarmPoolDirs, [
  [undefined, 2],
  [" ", 2],
  ["0", 0],
  [" 4 ", 4],
  ["1000", 1000],
  ["1001", warmError('"1001"')],
  ["-1", warmError('"-1"')],
  ["2.5", warmError('"2.5"')],
  ["02", warmError('"02"')],
]);

const WARM_SIZE = "PERAGO_WARM_POOL_MAX_SIZE";
const warmSizeError = (got: string) => ({
  error: `${WARM_SIZE} must be a size above zero such as '512MB' or '20GB' ` +
    `(PERAGO_WARM_POOL_DIRS=0 turns the warm pool off) (got ${got})`,
  variable: WARM_SIZE,
});
table("parseWarmPoolMaxSize", parseWarmPoolMaxSize, [
  [undefined, 10 * 1024 * 1024 * 1024],
  ["20GB", 20 * 1024 * 1024 * 1024],
  [" 512MB ", 512 * 1024 * 1024],
  ["0", warmSizeError('"0"')],
  ["0GB", warmSizeError('"0GB"')],
  ["10", warmSizeError('"10"')],
]);

const WARM_MIN = "PERAGO_WARM_POOL_MIN_FILES";
const warmMinError = (got: string) => ({
  error: `${WARM_MIN} must be a whole number of files from 0 (keep every directory) to ` +
    `10000000 (got ${got})`,
  variable: WARM_MIN,
});
table("parseWarmPoolMinFiles", parseWarmPoolMinFiles, [
  [undefined, 200],
  ["0", 0],
  [" 500 ", 500],
  ["10000000", 10_000_000],
  ["10000001", warmMinError('"10000001"')],
  ["-1", warmMinError('"-1"')],
  ["1e3", warmMinError('"1e3"')],
]);

const RET = "PERAGO_LOG_RETENTION";
const retentionError = (got: string) => ({
  error: `${RET} must be a positive day count such as '7d' or '30d' (got ${got})`,
  variable: RET,
});
table("parseLogRetention", parseLogRetention, [
  [undefined, 30 * D],
  [" ", 30 * D],
  ["7d", 7 * D],
  ["7D", 7 * D],
  [" 1d ", D],
  ["0d", retentionError('"0d"')],
  ["7", retentionError('"7"')],
  ["24h", retentionError('"24h"')],
  ["07d", retentionError('"07d"')],
  ["1.5d", retentionError('"1.5d"')],
  ["999999999999999d", retentionError('"999999999999999d"')],
]);

const MODE = "PERAGO_EXECUTION_MODE";
table("parseExecutionMode", (value) => parseExecutionMode(value), [
  [undefined, "process"],
  ["", "process"],
  ["process", "process"],
  ["thread", "thread"],
  [" THREAD ", "thread"],
  ["Process", "process"],
  ["threads", {
    error: `${MODE} must be either 'process' or 'thread' (got "threads")`,
    variable: MODE,
  }],
  ["fork", { error: `${MODE} must be either 'process' or 'thread' (got "fork")`, variable: MODE }],
]);

const TTL = "PERAGO_WORKSPACE_GC_TTL";
const durationError = (got: string) => ({
  error: `${TTL} must be a positive duration such as '30s', '5m', '1h', or '24h' (got ${got})`,
  variable: TTL,
});
table("parseDuration", (value) => parseDuration(value, { defaultMs: 24 * H, name: TTL }), [
  [undefined, 24 * H],
  ["", 24 * H],
  ["30s", 30 * S],
  ["5m", 5 * M],
  ["1h", H],
  ["24h", 24 * H],
  ["2d", 2 * D],
  ["2D", 2 * D],
  ["10S", 10 * S],
  [" 1m ", M],
  ["0s", durationError('"0s"')],
  ["05s", durationError('"05s"')],
  ["1", durationError('"1"')],
  ["1w", durationError('"1w"')],
  ["1.5h", durationError('"1.5h"')],
  ["1h30m", durationError('"1h30m"')],
  ["-1h", durationError('"-1h"')],
  ["1ms", durationError('"1ms"')],
  ["99999999999999999d", durationError('"99999999999999999d"')],
]);

const KILL = "PERAGO_SHUTDOWN_FORCE_KILL_AFTER";
table("parseOptionalDuration", (value) => parseOptionalDuration(value, KILL), [
  [undefined, undefined],
  ["", undefined],
  ["  ", undefined],
  ["30s", 30 * S],
  ["2m", 2 * M],
  ["never", {
    error: `${KILL} must be a positive duration such as '30s', '5m', '1h', or '24h' (got "never")`,
    variable: KILL,
  }],
]);

const LEN = "PERAGO_FAILURE_REASON_MAX_LENGTH";
table("parseFailureReasonMaxLength", parseFailureReasonMaxLength, [
  [undefined, 500],
  ["", 500],
  ["200", 200],
  [" 1 ", 1],
  ["0", { error: `${LEN} must be greater than zero (got "0")`, variable: LEN }],
  ["000", { error: `${LEN} must be greater than zero (got "000")`, variable: LEN }],
  ["-5", { error: `${LEN} must be a positive integer (got "-5")`, variable: LEN }],
  ["1.5", { error: `${LEN} must be a positive integer (got "1.5")`, variable: LEN }],
  ["abc", { error: `${LEN} must be a positive integer (got "abc")`, variable: LEN }],
  ["1e3", { error: `${LEN} must be a positive integer (got "1e3")`, variable: LEN }],
]);

// ---- connection settings: all-or-none, replace-me, secrets never in messages ----

const SECRET = "very-secret-value";

type EnvRow = [name: string, env: Record<string, string>, expected: unknown];

function envTable(
  name: string,
  parse: (env: Record<string, string>) => unknown,
  rows: EnvRow[],
): void {
  for (const [label, env, expected] of rows) {
    Deno.test(`${name}: ${label}`, () => {
      if (typeof expected === "object" && expected !== null && "error" in expected) {
        const { error: message, variable } = expected as { error: string; variable: string };
        assert.throws(() => parse(env), (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.equal(error.message, message);
          assert.equal(error.variable, variable);
          assert.equal(error.message.includes(SECRET), false);
          return true;
        });
      } else {
        const result = parse(env);
        assert.deepEqual(JSON.parse(JSON.stringify(result ?? null)), expected);
      }
    });
  }
}

envTable("parseConductorConfig", parseConductorConfig, [
  ["nothing set", {}, null],
  ["blank values are unset", { CONDUCTOR_SERVER_URL: "  " }, null],
  ["url only", { CONDUCTOR_SERVER_URL: " http://localhost:8080/api " }, {
    serverUrl: "http://localhost:8080/api",
  }],
  ["url with auth", {
    CONDUCTOR_SERVER_URL: "https://c.example/api",
    CONDUCTOR_AUTH_KEY: "key-id",
    CONDUCTOR_AUTH_SECRET: SECRET,
  }, { serverUrl: "https://c.example/api", authKey: "key-id", authSecret: "***" }],
  ["replace-me url", { CONDUCTOR_SERVER_URL: "replace-me" }, {
    error: "CONDUCTOR_SERVER_URL must be replaced with a real value",
    variable: "CONDUCTOR_SERVER_URL",
  }],
  ["replace-me secret", {
    CONDUCTOR_SERVER_URL: "http://x",
    CONDUCTOR_AUTH_KEY: "k",
    CONDUCTOR_AUTH_SECRET: " replace-me ",
  }, {
    error: "CONDUCTOR_AUTH_SECRET must be replaced with a real value",
    variable: "CONDUCTOR_AUTH_SECRET",
  }],
  ["key without secret", { CONDUCTOR_SERVER_URL: "http://x", CONDUCTOR_AUTH_KEY: "k" }, {
    error: "Conductor auth config is incomplete; missing CONDUCTOR_AUTH_SECRET",
    variable: "CONDUCTOR_AUTH_SECRET",
  }],
  ["secret without key", { CONDUCTOR_SERVER_URL: "http://x", CONDUCTOR_AUTH_SECRET: SECRET }, {
    error: "Conductor auth config is incomplete; missing CONDUCTOR_AUTH_KEY",
    variable: "CONDUCTOR_AUTH_KEY",
  }],
  ["auth without url", { CONDUCTOR_AUTH_KEY: "k", CONDUCTOR_AUTH_SECRET: SECRET }, {
    error: "Conductor config is incomplete; missing CONDUCTOR_SERVER_URL",
    variable: "CONDUCTOR_SERVER_URL",
  }],
  ["not a URL", { CONDUCTOR_SERVER_URL: "localhost:8080" }, {
    error:
      "CONDUCTOR_SERVER_URL must be an http(s) URL such as 'http://localhost:8080/api' (got \"localhost:8080\")",
    variable: "CONDUCTOR_SERVER_URL",
  }],
]);

const LK = {
  LAKECTL_SERVER_ENDPOINT_URL: "http://127.0.0.1:8000",
  LAKECTL_CREDENTIALS_ACCESS_KEY_ID: "AKIAEXAMPLE",
  LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: SECRET,
};
envTable("parseLakeFsConfig", parseLakeFsConfig, [
  ["nothing set", {}, null],
  ["all blank", {
    LAKECTL_SERVER_ENDPOINT_URL: "",
    LAKECTL_CREDENTIALS_ACCESS_KEY_ID: " ",
    LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: "",
  }, null],
  ["all three", LK, {
    endpointUrl: "http://127.0.0.1:8000",
    accessKeyId: "AKIAEXAMPLE",
    secretAccessKey: "***",
  }],
  ["missing secret", { ...LK, LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: "" }, {
    error: "LakeFS config is incomplete; missing LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
    variable: "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
  }],
  ["only the secret", { LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: SECRET }, {
    error:
      "LakeFS config is incomplete; missing LAKECTL_SERVER_ENDPOINT_URL, LAKECTL_CREDENTIALS_ACCESS_KEY_ID",
    variable: "LAKECTL_SERVER_ENDPOINT_URL",
  }],
  ["replace-me key id", { ...LK, LAKECTL_CREDENTIALS_ACCESS_KEY_ID: "replace-me" }, {
    error: "LAKECTL_CREDENTIALS_ACCESS_KEY_ID must be replaced with a real value",
    variable: "LAKECTL_CREDENTIALS_ACCESS_KEY_ID",
  }],
  ["replace-me endpoint first", {
    ...LK,
    LAKECTL_SERVER_ENDPOINT_URL: "replace-me",
    LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: "replace-me",
  }, {
    error: "LAKECTL_SERVER_ENDPOINT_URL must be replaced with a real value",
    variable: "LAKECTL_SERVER_ENDPOINT_URL",
  }],
  ["bad endpoint", { ...LK, LAKECTL_SERVER_ENDPOINT_URL: "ftp://x" }, {
    error:
      "LAKECTL_SERVER_ENDPOINT_URL must be an http(s) URL such as 'http://localhost:8000' (got \"ftp://x\")",
    variable: "LAKECTL_SERVER_ENDPOINT_URL",
  }],
  ["bad endpoint with credentials in it", {
    ...LK,
    LAKECTL_SERVER_ENDPOINT_URL: "ftp://AKIAUSER:url-secret-value@lakefs:8000",
  }, {
    error:
      "LAKECTL_SERVER_ENDPOINT_URL must be an http(s) URL such as 'http://localhost:8000' (got \"ftp://***@lakefs:8000\")",
    variable: "LAKECTL_SERVER_ENDPOINT_URL",
  }],
]);

Deno.test("parseListenAddress: host:port, [ipv6]:port and :port; anything else names the variable", () => {
  assert.equal(parseListenAddress(undefined, "PERAGO_METRICS_ADDRESS"), undefined);
  assert.equal(parseListenAddress("  ", "PERAGO_METRICS_ADDRESS"), undefined);
  assert.deepEqual(parseListenAddress("127.0.0.1:9464", "PERAGO_METRICS_ADDRESS"), {
    hostname: "127.0.0.1",
    port: 9464,
  });
  assert.deepEqual(parseListenAddress("[::1]:9464", "X"), { hostname: "::1", port: 9464 });
  assert.deepEqual(parseListenAddress(":9464", "X"), { hostname: "0.0.0.0", port: 9464 });
  assert.deepEqual(parseListenAddress("metrics.local:80", "X"), {
    hostname: "metrics.local",
    port: 80,
  });
  for (const bad of ["localhost", "127.0.0.1", "127.0.0.1:99999", "a b:1", "http://x:1", "::1:9"]) {
    assert.throws(
      () => parseListenAddress(bad, "PERAGO_METRICS_ADDRESS"),
      (error: Error) =>
        error instanceof ConfigError &&
        error.message ===
          `PERAGO_METRICS_ADDRESS must be host:port such as '127.0.0.1:9464', '[::1]:9464' or ` +
            `':9464' (got ${JSON.stringify(bad)})`,
      bad,
    );
  }
});
