/**
 * Child process of the sync and memory benchmarks: the demo lakeFS server with an on-disk data
 * directory, in its own process (so the server does not share a JS thread with the client
 * being measured). Prints one JSON line `{url, statsUrl}` on stdout, then serves until
 * SIGTERM. `GET <statsUrl>` answers the request counts; `POST <statsUrl>` resets them.
 *
 * Usage: `deno run -A bench/_lakefs_child.ts <dataDir> <accessKeyId> <secretAccessKey>`; a
 * `dataDir` of `-` keeps the server's state in memory (blobs still go to a temp dir on disk),
 * so staging many objects does not rewrite the persisted state at every change.
 *
 * @module
 */
import { startLakeFsServer } from "../src/devstack/lakefs/server.ts";

const [dataDir, accessKeyId, secretAccessKey] = Deno.args;
if (!dataDir || !accessKeyId || !secretAccessKey) {
  throw new TypeError("usage: _lakefs_child.ts <dataDir> <accessKeyId> <secretAccessKey>");
}
const server = await startLakeFsServer({
  ...(dataDir === "-" ? {} : { dataDir }),
  accessKeyId,
  secretAccessKey,
});
const control = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
  if (request.method === "POST") server.stats.reset();
  return Response.json(server.stats.snapshot());
});
const line = JSON.stringify({
  url: server.url,
  statsUrl: `http://127.0.0.1:${control.addr.port}/stats`,
});
await Deno.stdout.write(new TextEncoder().encode(line + "\n"));
const stop = async () => {
  await control.shutdown();
  await server.close();
};
await new Promise<void>((resolve) => {
  Deno.addSignalListener("SIGTERM", () => resolve());
});
await stop();
