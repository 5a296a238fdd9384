/**
 * Which Deno config file (`deno.json`) this process runs with, read from its own command line,
 * and which local files that config's import map points at.
 *
 * Both execution modes need it: thread mode checks the config's `unstable` list
 * (`worker-options`), process mode starts its children with the same config (so a task
 * project's import map applies to the executors as it did to the supervisor) and lets
 * executors read the project-local modules that import map names.
 *
 * @module
 */
import { dirname, isAbsolute, resolve, sep } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";

/** Inputs of {@linkcode denoConfigInUse}; defaults describe this process. */
export interface DenoConfigProbe {
  /** This process's command line (`/proc/self/cmdline` on Linux); `undefined` if unknown. */
  argv?: readonly string[] | undefined;
  /** @default Deno.mainModule */
  mainModule?: string;
  /** Against which a relative `--config` path resolves. @default Deno.cwd() */
  cwd?: string;
  /** Reads a config file; `undefined` when it does not exist. @default Deno.readTextFileSync */
  readConfig?: (path: string) => string | undefined;
}

/** The config file Deno runs this process with. */
export interface DenoConfigInUse {
  /** Absolute path. */
  path: string;
  /** Its text (JSON or JSONC). */
  text: string;
  /** `true` when given with `--config`/`-c`, `false` when Deno discovered it. */
  explicit: boolean;
}

/** What {@linkcode denoConfigInUse} found on the command line. */
export interface DenoCommandLine {
  /** Deno's own arguments: those before the main module. */
  denoArgs: string[];
  /** The config in use; `null` with `--no-config` or when none is found. */
  config: DenoConfigInUse | null;
}

/**
 * Reads this process's command line and finds its config file: `--config`/`-c` (resolved
 * against the working directory), else the `deno.json`/`deno.jsonc` nearest to the main
 * module, as Deno finds it for `deno run`; `null` with `--no-config` or when there is none.
 * `undefined` when the command line cannot be read (no `/proc`, or no permission to read it).
 * Never throws.
 *
 * @example
 * ```ts
 * const found = denoConfigInUse({
 *   argv: ["deno", "run", "-A", "--config", "deno.json", "/opt/perago/main.ts", "start"],
 *   mainModule: "file:///opt/perago/main.ts",
 *   cwd: "/srv/project",
 *   readConfig: (path) => path === "/srv/project/deno.json" ? "{}" : undefined,
 * });
 * // found?.config: { path: "/srv/project/deno.json", text: "{}", explicit: true }
 * ```
 */
export function denoConfigInUse(probe: DenoConfigProbe = {}): DenoCommandLine | undefined {
  const argv = "argv" in probe ? probe.argv : readCmdline();
  if (argv === undefined) return undefined;
  const read = probe.readConfig ?? readIfExists;
  const mainModule = probe.mainModule ?? Deno.mainModule;
  const mainPath = mainModule.startsWith("file:") ? fromFileUrl(mainModule) : mainModule;
  const denoArgs: string[] = [];
  let configArg: string | undefined;
  let noConfig = false;
  // Deno's own flags come before the main module; stop there.
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === mainPath || arg === mainModule) break;
    denoArgs.push(arg);
    if (arg === "--no-config") noConfig = true;
    if (arg === "--config" || arg === "-c") configArg = argv[i + 1];
    else if (arg.startsWith("--config=")) configArg = arg.slice("--config=".length);
    else if (arg.startsWith("-c=")) configArg = arg.slice("-c=".length);
  }
  if (noConfig) return { denoArgs, config: null };
  if (configArg !== undefined) {
    const path = isAbsolute(configArg) ? configArg : resolve(probe.cwd ?? Deno.cwd(), configArg);
    const text = read(path);
    return { denoArgs, config: text === undefined ? null : { path, text, explicit: true } };
  }
  if (!mainModule.startsWith("file:")) return { denoArgs, config: null };
  for (const dir of ancestors(dirname(mainPath))) {
    for (const name of ["deno.json", "deno.jsonc"]) {
      const path = `${dir === sep ? "" : dir}/${name}`;
      const text = read(path);
      if (text !== undefined) return { denoArgs, config: { path, text, explicit: false } };
    }
  }
  return { denoArgs, config: null };
}

/**
 * Parses a `deno.json`/`deno.jsonc` text (whole-line `//` comments allowed); `undefined` when
 * it is not a JSON object.
 */
export function parseDenoConfig(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text.replace(/^\s*\/\/.*$/gm, ""));
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? value as Record<string, unknown>
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What an executor must read to import the local modules a config's import map names
 * (`imports` and every `scopes` entry; remote, `npm:` and `jsr:` targets need no read):
 * - a directory mapping (`"lib/": "./lib/"`): that directory;
 * - a file mapping (`"greet": "./lib/greet.ts"`): its directory, so its relative imports load
 *   (the rule task modules get);
 * - never a whole `protectedDirs` entry (the config's own directory, perago's source root:
 *   where an operator's `.env` lives): a file mapped there is granted alone, a directory
 *   mapping onto one is left out.
 *
 * @example
 * ```ts
 * importMapReadPaths(
 *   "/srv/project/deno.json",
 *   '{ "imports": { "greet": "./lib/greet.ts", "util": "./util.ts", "zod": "npm:zod@4" } }',
 *   ["/opt/perago"],
 * );
 * // ["/srv/project/lib", "/srv/project/util.ts"]
 * ```
 */
export function importMapReadPaths(
  configPath: string,
  configText: string,
  protectedDirs: readonly string[] = [],
): string[] {
  const config = parseDenoConfig(configText);
  if (config === undefined) return [];
  const configDir = dirname(configPath);
  const guarded = new Set([configDir, ...protectedDirs].map((dir) => dir.replace(/\/+$/, "")));
  const maps = [config.imports, ...Object.values(asRecord(config.scopes) ?? {})];
  const out = new Set<string>();
  for (const map of maps) {
    for (const target of Object.values(asRecord(map) ?? {})) {
      if (typeof target !== "string") continue;
      const path = localPath(target, configDir);
      if (path === undefined) continue;
      if (target.endsWith("/")) {
        const dir = path.replace(/\/+$/, "");
        if (!guarded.has(dir)) out.add(dir);
        continue;
      }
      out.add(guarded.has(dirname(path)) ? path : dirname(path));
    }
  }
  return [...out];
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : undefined;
}

/** The absolute path of a local import-map target; `undefined` for remote/npm/jsr ones. */
function localPath(target: string, baseDir: string): string | undefined {
  if (target.startsWith("file:")) return fromFileUrl(target);
  if (target.startsWith("./") || target.startsWith("../") || target.startsWith("/")) {
    return resolve(baseDir, target);
  }
  return undefined;
}

function ancestors(dir: string): string[] {
  const out: string[] = [];
  for (let current = dir;; current = dirname(current)) {
    out.push(current);
    if (dirname(current) === current) return out;
  }
}

function readIfExists(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

function readCmdline(): string[] | undefined {
  try {
    const text = Deno.readTextFileSync("/proc/self/cmdline");
    return text.split("\0").filter((part) => part !== "");
  } catch {
    return undefined;
  }
}
