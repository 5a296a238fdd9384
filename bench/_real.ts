/**
 * The real servers a benchmark runs against: the lakeFS of `PERAGO_TEST_LAKEFS_URL` (with
 * `PERAGO_TEST_LAKEFS_ACCESS_KEY_ID` / `_SECRET_ACCESS_KEY`), else one started for the run from
 * `../shared/tools/lakefs/start.sh` on a free port; the Conductor of
 * `PERAGO_TEST_CONDUCTOR_URL`. Also `lakectl` (`unpack-lakectl.sh`).
 *
 * @module
 */
import { join } from "node:path";
import { LakeFsClient } from "../src/lakefs/client.ts";
import { ROOT, runCommand } from "./_common.ts";

/** A real lakeFS for one benchmark. */
export interface RealLakeFsTarget {
  readonly url: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly client: LakeFsClient;
  /** How it was found, for the results. */
  readonly label: string;
  /** Stops it when the bench started it. */
  close(): Promise<void>;
}

const TOOLS = join(ROOT, "..", "shared", "tools", "lakefs");

/** The configured real lakeFS, or one started for the run; throws with the reason if neither. */
export async function realLakeFs(tempDir: string): Promise<RealLakeFsTarget> {
  const env = (name: string) => Deno.env.get(name)?.trim() || undefined;
  const url = env("PERAGO_TEST_LAKEFS_URL");
  if (url !== undefined) {
    const accessKeyId = env("PERAGO_TEST_LAKEFS_ACCESS_KEY_ID");
    const secretAccessKey = env("PERAGO_TEST_LAKEFS_SECRET_ACCESS_KEY");
    if (accessKeyId === undefined || secretAccessKey === undefined) {
      throw new Error(
        "PERAGO_TEST_LAKEFS_URL is set without PERAGO_TEST_LAKEFS_ACCESS_KEY_ID and " +
          "PERAGO_TEST_LAKEFS_SECRET_ACCESS_KEY: set both to the server's admin keys",
      );
    }
    return target(url.replace(/\/+$/, ""), accessKeyId, secretAccessKey, "shared", async () => {});
  }
  const start = join(TOOLS, "start.sh");
  if (!(await Deno.stat(start).then((info) => info.isFile, () => false))) {
    throw new Error(
      `no real lakeFS: set PERAGO_TEST_LAKEFS_URL (and its keys), or put ../shared/tools/lakefs ` +
        `beside this checkout (${start} not found)`,
    );
  }
  let lastError: unknown;
  for (let i = 0; i < 5; i++) {
    const port = 20000 + Math.floor(Math.random() * 20000);
    try {
      const { stdout } = await runCommand(start, [String(port), join(tempDir, `lakefs-${port}`)]);
      const value = (key: string) => new RegExp(`^${key}=(.*)$`, "m").exec(stdout)?.[1] ?? "";
      const pid = value("PID");
      return target(
        value("LAKECTL_SERVER_ENDPOINT_URL"),
        value("LAKECTL_CREDENTIALS_ACCESS_KEY_ID"),
        value("LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY"),
        `started for the run on port ${port}`,
        async () => {
          await runCommand(join(TOOLS, "stop.sh"), [pid]).catch(() => {});
        },
      );
    } catch (error) {
      lastError = error;
    }
  }
  throw new Error(`cannot start a real lakeFS: ${(lastError as Error)?.message}`);
}

function target(
  url: string,
  accessKeyId: string,
  secretAccessKey: string,
  how: string,
  close: () => Promise<void>,
): RealLakeFsTarget {
  return {
    url,
    accessKeyId,
    secretAccessKey,
    client: new LakeFsClient({
      endpointUrl: url,
      accessKeyId,
      secretAccessKey,
      requestTimeoutMs: 120_000,
    }),
    label: `real lakeFS 1.84.0 at ${url} (${how})`,
    close,
  };
}

/** `lakectl` 1.84.0 from the shared tools, unpacked once; throws with the reason if absent. */
export async function lakectlPath(): Promise<string> {
  const unpack = join(TOOLS, "unpack-lakectl.sh");
  if (!(await Deno.stat(unpack).then((info) => info.isFile, () => false))) {
    throw new Error(`lakectl not available: ${unpack} not found`);
  }
  return (await runCommand(unpack, [])).stdout.trim();
}

/** Deletes a repository (best effort: a benchmark's repositories must not pile up). */
export async function deleteRepository(lakefs: RealLakeFsTarget, repo: string): Promise<void> {
  await fetch(`${lakefs.url}/api/v1/repositories/${repo}`, {
    method: "DELETE",
    headers: {
      authorization: `Basic ${btoa(`${lakefs.accessKeyId}:${lakefs.secretAccessKey}`)}`,
    },
  }).then((response) => response.body?.cancel()).catch(() => {});
}

/** A repository name unique to the run. */
export function benchRepoName(label: string): string {
  return `bench-${label}-${Date.now().toString(36)}${
    crypto.getRandomValues(new Uint32Array(1))[0]!.toString(36)
  }`.slice(0, 63);
}
