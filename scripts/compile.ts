// deno-lint-ignore-file no-console
/**
 * `deno task compile`: builds the self-contained `perago` executable with `deno compile`,
 * with the permission flags computed from this host's configuration baked in.
 *
 * Usage:
 *   deno task compile [--target T ...] [--all-targets] [--out-dir dist] [--print-flags]
 *                     <task module ...>
 *
 * - The task modules are embedded (`--include`): a compiled binary cannot import TypeScript
 *   it was not built with, so each deployment builds the binary with its tasks. So is the
 *   thread-mode Worker module (`src/runtime/_worker_entry.ts`), which nothing imports, and
 *   the modules perago imports on first use (`LAZY_MODULES` of src/util/lazy_import.ts: their
 *   specifiers are computed, so `deno compile` cannot find them by itself).
 * - The flags: `--allow-read` = workspace root, log root, task module directories, `.env`;
 *   `--allow-write` = workspace root, log root; `--allow-net` = the Conductor and lakeFS
 *   host:port, plus `PERAGO_METRICS_ADDRESS` when set (the supervisor's metrics listener: the
 *   only address perago listens on) and `unix:` the lane sockets of up to 64 executor slots in
 *   `<workspace root>/.perago-lanes/` (Deno grants Unix sockets by exact path; see
 *   src/runtime/lane_dir.ts); `--allow-env` = the variables perago reads (the proxy ones only
 *   to see that none is set); `--allow-sys=hostname` (the supervisor lock records its host);
 *   `--allow-run` so the supervisor can re-invoke the
 *   binary for its broker and executors (each child revokes `run`, `ffi`, `env` and its read of
 *   `.env` as it starts: see src/runtime/permissions.ts; an executor also drops the Conductor
 *   host:port, src/runtime/net_grant.ts, which works because each host is baked as its own
 *   host:port grant); thread mode gives each Worker its own role's list even in a binary;
 *   `--unstable-worker-options` for thread mode. They come from `.env` and the environment
 *   exactly as `perago start` reads them, so build where the binary will run or with the same
 *   settings.
 * - Air-gapped hosts: `deno compile` downloads its runtime (`denort`) once. Where that is
 *   blocked, download `denort-<target>.zip` for Deno 2.9.6 elsewhere and set
 *   `DENORT_BIN=/path/to/denort` (Deno's own variable; honoured here and passed through).
 *
 * `--print-flags` prints the flags and exits, so tests can run `deno run <flags> main.ts` with
 * exactly what the binary would get.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { dirname, resolve } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { CONFIG_ENV_VARS, loadRuntimeConfig } from "../src/config/config.ts";
import { PROXY_ENV_VARS } from "../src/util/http1.ts";
import { taskEnvVars } from "../src/config/task_settings.ts";
import { loadTask } from "../src/task/loader.ts";
import { moduleDir, otelEnvVars } from "../src/runtime/permissions.ts";
import { hostPort } from "../src/runtime/net_grant.ts";
import { bakedLaneNet } from "../src/runtime/lane_dir.ts";
import { LAZY_MODULES, lazyModuleUrl } from "../src/util/lazy_import.ts";

const ROOT = dirname(fromFileUrl(new URL("../deno.json", import.meta.url)));

/** Release targets built by `--all-targets`. */
export const RELEASE_TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
] as const;

/** Inputs of {@linkcode compiledPermissionFlags}. */
export interface CompileFlagInputs {
  workspaceRoot: string;
  logRoot: string;
  envFile: string | undefined;
  modules: readonly string[];
  conductorUrl: string;
  lakefsUrl: string;
  /** `PERAGO_METRICS_ADDRESS` as `host:port`, when set: the supervisor listens there. */
  metricsAddress?: string | undefined;
  /** Names of the embedded tasks: their `PERAGO_TASK_*_<NAME>` variables may be read. */
  taskNames?: readonly string[];
}

/**
 * The permission flags baked into the binary: the union of what the supervisor, the broker
 * and the executors need (each child narrows itself further at start).
 */
export function compiledPermissionFlags(inputs: CompileFlagInputs): string[] {
  const read = [
    inputs.workspaceRoot,
    inputs.logRoot,
    ...(inputs.envFile ? [inputs.envFile] : []),
    ...inputs.modules.map((module) => moduleDir(module)).filter((dir): dir is string => !!dir),
  ];
  const unique = (items: string[]) => [...new Set(items)];
  return [
    "--no-prompt",
    `--allow-read=${unique(read).join(",")}`,
    `--allow-write=${unique([inputs.workspaceRoot, inputs.logRoot]).join(",")}`,
    `--allow-net=${
      unique([
        hostPort(inputs.conductorUrl),
        hostPort(inputs.lakefsUrl),
        ...(inputs.metricsAddress ? [inputs.metricsAddress] : []),
        // The executor lanes' sockets (src/runtime/lane_dir.ts), by exact path.
        ...bakedLaneNet(inputs.workspaceRoot),
      ]).join(",")
    }`,
    // The OTEL_* variables only to pass them on to the children (see otelEnvVars); the proxy
    // variables only to see that none is set (lakeFS reads then go over kept-alive HTTP/1.1
    // connections, see src/util/http1.ts).
    `--allow-env=${
      [
        ...CONFIG_ENV_VARS,
        ...taskEnvVars(inputs.taskNames ?? []),
        ...otelEnvVars(),
        ...PROXY_ENV_VARS,
      ].join(",")
    }`,
    // The supervisor lock records the host name (a lock from another host is never taken over).
    "--allow-sys=hostname",
    "--allow-run",
    "--unstable-worker-options",
  ];
}

/** `host:port` of a listen address for `--allow-net` (IPv6 in brackets). */
export function listenHostPort(address: { hostname: string; port: number }): string {
  const host = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname;
  return `${host}:${address.port}`;
}

/** perago's thread-mode Worker module: not statically imported, so embedded explicitly. */
export const WORKER_ENTRY = `${ROOT}/src/runtime/_worker_entry.ts`;

/** The modules perago imports on first use, by absolute path (embedded with `--include`). */
export const LAZY_MODULE_PATHS: readonly string[] = LAZY_MODULES.map((module) =>
  fromFileUrl(lazyModuleUrl(module))
);

/**
 * The `error:` line after `deno compile` failed. Without the network, or with a `DENORT_BIN`
 * that is missing or not a denort, `deno compile` fails while fetching or writing the runtime
 * (its message often names neither): every failure that is not a plain type/module error gets
 * the DENORT_BIN hint.
 */
export function compileFailureHint(
  target: string,
  stderr: string,
  denortBin: string | undefined,
): string {
  const hint = `fetch denort-${target}.zip for Deno ${Deno.version.deno} where the network ` +
    "allows, unzip it, and run again with DENORT_BIN=/path/to/denort";
  if (denortBin !== undefined && denortBin !== "") {
    return `error: compile: deno compile failed for ${target} with DENORT_BIN=${denortBin}: it ` +
      `must be the unzipped denort of Deno ${Deno.version.deno} for ${target}; ${hint}`;
  }
  if (/error: (TS\d+|Module not found|Relative import path)/.test(stderr)) {
    return `error: compile: deno compile failed for ${target}: fix the error above`;
  }
  return `error: compile: deno compile could not fetch or write its runtime (denort) for ` +
    `${target}. On an air-gapped host, ${hint}`;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      target: { type: "string", multiple: true },
      "all-targets": { type: "boolean", default: false },
      "out-dir": { type: "string", default: "dist" },
      "print-flags": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(
      "Usage: deno task compile [--target T ...] [--all-targets] [--out-dir dist] " +
        "[--print-flags] <task module ...>",
    );
    return 0;
  }
  if (positionals.length === 0) {
    console.error("error: compile: name the task modules to embed, e.g. examples/word_count.ts");
    return 1;
  }
  const modules = positionals.map((module) => resolve(module));
  const config = await loadRuntimeConfig(modules[0]!, { probeRoots: false });
  if (!config.conductor || !config.lakefs) {
    console.error(
      "error: compile: CONDUCTOR_SERVER_URL and the LAKECTL_* variables must be set (in .env " +
        "or the environment) so the binary's --allow-net can name exactly those hosts",
    );
    return 1;
  }
  const flags = compiledPermissionFlags({
    workspaceRoot: config.workspaceRoot,
    logRoot: config.logRoot,
    envFile: config.envFile ?? resolve(".env"),
    modules,
    conductorUrl: config.conductor.serverUrl,
    lakefsUrl: config.lakefs.endpointUrl,
    metricsAddress: config.metricsAddress === undefined
      ? undefined
      : listenHostPort(config.metricsAddress),
    taskNames: await Promise.all(modules.map(async (module) => (await loadTask(module)).task.name)),
  });
  if (values["print-flags"]) {
    console.log(flags.join("\n"));
    return 0;
  }
  const targets = values["all-targets"]
    ? [...RELEASE_TARGETS]
    : values.target ?? [Deno.build.target];
  await Deno.mkdir(values["out-dir"], { recursive: true });
  for (const target of targets) {
    const suffix = target === Deno.build.target && !values["all-targets"] ? "" : `-${target}`;
    const exe = target.includes("windows") ? ".exe" : "";
    const output = resolve(values["out-dir"], `perago${suffix}${exe}`);
    if (!await compileTarget(target, output, flags, modules)) return 1;
  }
  return 0;
}

/** `deno compile` of main.ts for `target` with the task modules embedded; false: it failed. */
async function compileTarget(
  target: string,
  output: string,
  flags: readonly string[],
  modules: readonly string[],
): Promise<boolean> {
  const args = [
    "compile",
    "--config",
    `${ROOT}/deno.json`,
    ...flags,
    ...[...modules, WORKER_ENTRY, ...LAZY_MODULE_PATHS].flatMap((module) => ["--include", module]),
    "--target",
    target,
    "--output",
    output,
    `${ROOT}/main.ts`,
  ];
  console.error(`compile: ${target} -> ${output}`);
  const result = await new Deno.Command(Deno.execPath(), {
    args,
    stdout: "inherit",
    stderr: "piped",
  }).output();
  if (result.success) return true;
  const stderr = new TextDecoder().decode(result.stderr);
  console.error(stderr.split("\n").filter((line) => !/^\s+\d+:/.test(line)).join("\n"));
  console.error(compileFailureHint(target, stderr, Deno.env.get("DENORT_BIN")));
  return false;
}

if (import.meta.main) Deno.exit(await main());
