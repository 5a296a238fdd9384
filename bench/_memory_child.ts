/**
 * Child process of the memory benchmark: loads the executor's sync modules, reports its idle
 * RSS, downloads one large object with `downloadPrefix`, then stages it back with
 * `stageChanges`, reporting VmHWM (peak RSS) after each step as one JSON line.
 *
 * Usage: `deno run -A bench/_memory_child.ts <endpoint> <keyId> <secret> <repo> <ref> <prefix>
 * <dir> <branch>`
 *
 * @module
 */
import { join } from "node:path";
import { LakeFsClient } from "../src/lakefs/client.ts";
import { downloadPrefix, stageChanges } from "../src/lakefs/sync.ts";
import { resolveInsideDir } from "../src/workspace/safe_path.ts";
import { sleep } from "../src/util/sleep.ts";

const [endpoint, keyId, secret, repo, ref, prefix, dir, branch, mode] = Deno.args as [
  string,
  string,
  string,
  string,
  string,
  string,
  string,
  string,
  string | undefined,
];

async function memory(): Promise<{ rssMiB: number; hwmMiB: number }> {
  const status = await Deno.readTextFile("/proc/self/status");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
  return { rssMiB: kb("VmRSS") / 1024, hwmMiB: kb("VmHWM") / 1024 };
}

const client = new LakeFsClient({
  endpointUrl: endpoint,
  accessKeyId: keyId,
  secretAccessKey: secret,
  requestTimeoutMs: 120_000,
});
await sleep(500);
const idle = await memory();
if (mode === "plain") {
  // Reference: a plain fetch of the same object piped to a file, nothing else.
  const started = performance.now();
  const url = `${client.baseUrl}/repositories/${repo}/refs/${ref}/objects?path=` +
    encodeURIComponent(`${prefix}big.bin`);
  const response = await fetch(url, {
    headers: { authorization: `Basic ${btoa(`${keyId}:${secret}`)}` },
  });
  const file = await Deno.open(join(dir, "plain.bin"), { write: true, createNew: true });
  await response.body!.pipeTo(file.writable);
  const afterDownload = await memory();
  const downloadMs = performance.now() - started;
  await Deno.stdout.write(
    new TextEncoder().encode(JSON.stringify({ idle, afterDownload, downloadMs }) + "\n"),
  );
  Deno.exit(0);
}
let started = performance.now();
const listing = await downloadPrefix(client, {
  repo,
  ref,
  prefix,
  resolvePath: (key) => resolveInsideDir(dir, key),
});
const afterDownload = await memory();
const downloadMs = performance.now() - started;
started = performance.now();
await stageChanges(client, {
  repo,
  branch,
  deletes: [],
  uploads: listing.map((entry) => ({
    key: entry.key,
    size: entry.size,
    open: async () => (await Deno.open(join(dir, entry.key))).readable,
  })),
});
const afterStage = await memory();
const stageMs = performance.now() - started;
await Deno.stdout.write(
  new TextEncoder().encode(
    JSON.stringify({ idle, afterDownload, afterStage, downloadMs, stageMs }) + "\n",
  ),
);
