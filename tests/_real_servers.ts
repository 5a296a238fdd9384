/**
 * Where the real servers are for the tests that run against them, read from the environment
 * `.ci/run` exports (or a developer sets by hand):
 *
 * - `PERAGO_TEST_CONDUCTOR_URL`: a real Conductor OSS (`scripts/conductor_oss.sh start`);
 * - `PERAGO_TEST_LAKEFS_URL`, `PERAGO_TEST_LAKEFS_ACCESS_KEY_ID`,
 *   `PERAGO_TEST_LAKEFS_SECRET_ACCESS_KEY`: a real lakeFS
 *   (`../shared/tools/lakefs/start.sh PORT DATA_DIR`), whose repositories use the storage
 *   namespace `local://<name>`.
 *
 * Each lookup gives the settings or `{ skip }`, the reason a real-server test does not run;
 * {@linkcode skipNote} prints that reason so a skipped run is never silent:
 *
 * ```ts ignore
 * const lakefs = realLakeFs();
 * skipNote("lakeFS contract (real)", lakefs);
 * Deno.test({ name: "lakeFS contract (real)", ignore: "skip" in lakefs, fn: async () => {
 *   // use lakefs.url and its keys
 * } });
 * ```
 */
import { LakeFsClient } from "../src/lakefs/client.ts";

/** Why a real-server test does not run (printed, never silent). */
export interface Skip {
  skip: string;
}

/** A real Conductor OSS server. */
export interface RealConductor {
  /** Server URL (with or without `/api`, as the variable gives it). */
  url: string;
}

/** A real lakeFS server and its admin keys. */
export interface RealLakeFs {
  /** Server URL without `/api/v1`, e.g. `http://127.0.0.1:18765`. */
  url: string;
  accessKeyId: string;
  secretAccessKey: string;
}

/** Where a lakeFS test repository lives: a real or a demo server and its keys. */
export type LakeFsTarget = RealLakeFs;

const env = (name: string): string | undefined => {
  const value = Deno.env.get(name)?.trim();
  return value ? value : undefined;
};

/** The real Conductor named by `PERAGO_TEST_CONDUCTOR_URL`, or why there is none. */
export function realConductor(): RealConductor | Skip {
  const url = env("PERAGO_TEST_CONDUCTOR_URL");
  if (!url) {
    return {
      skip: "PERAGO_TEST_CONDUCTOR_URL is unset (start one with scripts/conductor_oss.sh start, " +
        "or run .ci/run, which starts it where Java, Maven and PostgreSQL exist)",
    };
  }
  return { url };
}

/** The real lakeFS named by the `PERAGO_TEST_LAKEFS_*` variables, or why there is none. */
export function realLakeFs(): RealLakeFs | Skip {
  const url = env("PERAGO_TEST_LAKEFS_URL");
  const accessKeyId = env("PERAGO_TEST_LAKEFS_ACCESS_KEY_ID");
  const secretAccessKey = env("PERAGO_TEST_LAKEFS_SECRET_ACCESS_KEY");
  if (!url) {
    return {
      skip: "PERAGO_TEST_LAKEFS_URL is unset (start one with ../shared/tools/lakefs/start.sh " +
        "PORT DATA_DIR and set PERAGO_TEST_LAKEFS_URL, _ACCESS_KEY_ID, _SECRET_ACCESS_KEY, " +
        "or run .ci/run, which starts it where ../shared exists)",
    };
  }
  if (!accessKeyId || !secretAccessKey) {
    return {
      skip: "PERAGO_TEST_LAKEFS_URL is set but PERAGO_TEST_LAKEFS_ACCESS_KEY_ID or " +
        "PERAGO_TEST_LAKEFS_SECRET_ACCESS_KEY is not: set both to the server's admin keys",
    };
  }
  return { url: url.replace(/\/+$/, "").replace(/\/api\/v1$/, ""), accessKeyId, secretAccessKey };
}

/** Both real servers, or why the pair is not available (the first missing one). */
export function realServers(): { conductor: RealConductor; lakefs: RealLakeFs } | Skip {
  const conductor = realConductor();
  if ("skip" in conductor) return conductor;
  const lakefs = realLakeFs();
  if ("skip" in lakefs) return lakefs;
  return { conductor, lakefs };
}

/**
 * Prints why the real-server variant `what` is skipped, when it is (so `deno test` output
 * and the CI log say which real-server runs did not happen). Returns whether it is skipped,
 * for `Deno.test({ ignore })`.
 */
export function skipNote(what: string, settings: object): boolean {
  if (!("skip" in settings)) return false;
  // deno-lint-ignore no-console
  console.log(`real-server run skipped: ${what}: ${(settings as Skip).skip}`);
  return true;
}

/** A run-unique suffix, lowercase letters and digits: names on real servers outlive a run. */
export function uniqueSuffix(): string {
  return `${Date.now().toString(36)}${crypto.getRandomValues(new Uint32Array(1))[0]!.toString(36)}`;
}

/**
 * A lakeFS repository name unique to this call, `<label>-<suffix>` (lakeFS allows lowercase
 * letters, digits and dashes, 3 to 63 characters).
 */
export function uniqueRepositoryName(label: string): string {
  const clean = label.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "");
  return `${clean.slice(0, 40) || "perago"}-${uniqueSuffix()}`.slice(0, 63);
}

/**
 * Creates a uniquely named repository on `target` (storage namespace `local://<name>`, what
 * the real server's local block store takes and the demo accepts) and returns its name;
 * `name` replaces the unique one (for a demo server of the test's own).
 */
export async function createTestRepository(
  target: LakeFsTarget,
  label: string,
  options: { name?: string; defaultBranch?: string; signal?: AbortSignal } = {},
): Promise<string> {
  const name = options.name ?? uniqueRepositoryName(label);
  const client = new LakeFsClient({
    endpointUrl: target.url,
    accessKeyId: target.accessKeyId,
    secretAccessKey: target.secretAccessKey,
  });
  await client.createRepository(
    name,
    `local://${name}`,
    options.defaultBranch ?? "main",
    options.signal,
  );
  return name;
}

/**
 * Deletes a test repository, best effort (a leftover repository costs only disk on a
 * throwaway server); never throws.
 */
export async function deleteTestRepository(target: LakeFsTarget, name: string): Promise<void> {
  try {
    const response = await fetch(
      `${target.url}/api/v1/repositories/${encodeURIComponent(name)}`,
      {
        method: "DELETE",
        headers: {
          authorization: `Basic ${btoa(`${target.accessKeyId}:${target.secretAccessKey}`)}`,
        },
        signal: AbortSignal.timeout(15_000),
      },
    );
    await response.body?.cancel();
  } catch {
    // best effort
  }
}

/** A real lakeFS executable for tests that start their own (e.g. `perago dev --lakefs-bin`). */
export interface RealLakeFsBinary {
  path: string;
}

/**
 * The lakeFS executable named by `PERAGO_TEST_LAKEFS_BIN`, else the one
 * `../shared/tools/lakefs/start.sh --unpack` unpacks (beside the repository), or why none.
 */
export function realLakeFsBinary(): RealLakeFsBinary | Skip {
  return sharedTool("lakeFS binary", "PERAGO_TEST_LAKEFS_BIN", "start.sh", ["--unpack"]);
}

/** lakeFS's own CLI, lakectl, for tests that drive a lakeFS (demo or real) the way users do. */
export interface Lakectl {
  path: string;
}

/**
 * The lakectl executable named by `PERAGO_TEST_LAKECTL`, else the one
 * `../shared/tools/lakefs/unpack-lakectl.sh` unpacks (beside the repository), or why none.
 */
export function realLakectl(): Lakectl | Skip {
  return sharedTool("lakectl", "PERAGO_TEST_LAKECTL", "unpack-lakectl.sh", []);
}

/**
 * The executable `envVar` names, else the path `../shared/tools/lakefs/<script> <args>`
 * prints (beside the repository), or why none (`what` names it in the reason).
 */
function sharedTool(
  what: string,
  envVar: string,
  script: string,
  args: string[],
): { path: string } | Skip {
  const named = env(envVar);
  if (named) return { path: named };
  const scriptPath = new URL(`../../shared/tools/lakefs/${script}`, import.meta.url).pathname;
  try {
    Deno.statSync(scriptPath);
  } catch {
    return {
      skip: `no ${what}: ${envVar} is unset and ${scriptPath} is missing ` +
        "(../shared is not beside this clone)",
    };
  }
  const unpacked = new Deno.Command(scriptPath, { args, stderr: "piped" }).outputSync();
  const path = new TextDecoder().decode(unpacked.stdout).trim();
  if (unpacked.code !== 0 || path === "") {
    const ran = [scriptPath, ...args].join(" ");
    return { skip: `${ran} failed: ${new TextDecoder().decode(unpacked.stderr).trim()}` };
  }
  return { path };
}
