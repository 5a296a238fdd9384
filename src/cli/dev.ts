// deno-lint-ignore-file no-console
/**
 * `perago dev`: a Conductor and a lakeFS on loopback, for development, the demo and the
 * tests: the embedded demo servers by default, or the real ones where they exist (a lakeFS
 * binary with `--lakefs-bin`, Conductor OSS with `--conductor oss`). Prints the connection
 * settings in `.env` format, then serves until SIGINT/SIGTERM and stops what it started.
 *
 * @module
 */
import { startConductorServer } from "../devstack/conductor/server.ts";
import { startConductorOss } from "../devstack/conductor_oss.ts";
import { startLakeFsServer } from "../devstack/lakefs/server.ts";
import { startRealLakeFs } from "../devstack/real_lakefs.ts";
import { DEMO_ACCESS_KEY_ID, DEMO_SECRET_ACCESS_KEY } from "../devstack/credentials.ts";
import { LakeFsClient } from "../lakefs/client.ts";
import { parseCommandArgs } from "./_args.ts";
import { countingLakeFs } from "../runtime/counting_lakefs.ts";
import { startProgress } from "./_progress.ts";
import { seedSampleRepository } from "./_seed.ts";
import { UsageError } from "./_fail.ts";
import type { Command } from "./_command.ts";

const HELP = `Usage: perago dev [--data-dir D] [--conductor-port N] [--lakefs-port N] [--seed]
                  [--lakefs-bin PATH] [--conductor demo|oss]

Starts a Conductor and a lakeFS on 127.0.0.1 (the embedded demo servers unless told
otherwise) and prints, in .env format:

  CONDUCTOR_SERVER_URL=http://127.0.0.1:<port>/api
  LAKECTL_SERVER_ENDPOINT_URL=http://127.0.0.1:<port>
  LAKECTL_CREDENTIALS_ACCESS_KEY_ID=...
  LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY=...

then serves until SIGINT or SIGTERM and stops what it started. Append the lines to .env to
point perago at them:
  perago dev >> .env

Options:
  --data-dir <dir>        keep the servers' state in this directory (default: memory, or a
                          temporary directory removed at exit for a real lakeFS)
  --conductor-port <n>    demo Conductor port (default: a free port)
  --lakefs-port <n>       lakeFS port, demo or real (default: a free port)
  --seed                  create the lakeFS repository "demo" with sample files on
                          branch main (what examples/inputs/*.json refer to)
  --lakefs-bin <path>     run this real lakeFS executable (e.g. lakeFS 1.84.0) in local mode
                          instead of the demo lakeFS: embedded KV and local block storage
                          under the data dir, loopback only, nothing outbound, the admin
                          keys above created by lakeFS at start-up (also PERAGO_DEV_LAKEFS_BIN)
  --conductor <kind>      "demo" (default) or "oss": the real Conductor OSS through
                          scripts/conductor_oss.sh (Java 17; Maven to fetch the jar once;
                          PostgreSQL); one already running is used and left running
  -h, --help              show this help

The demo servers are for development and tests: they follow the real servers' REST
behaviour for what perago uses (checked by the contract tests against the real ones), and
have fault switches at /_perago/faults.`;

function parsePort(flag: string, value: string | undefined): number {
  if (value === undefined) return 0;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`dev: ${flag} must be a port number 0..65535 (got "${value}")`);
  }
  return port;
}

/** `PERAGO_DEV_LAKEFS_BIN`, when the environment may be read and it is set. */
function lakefsBinFromEnv(): string | undefined {
  try {
    return Deno.env.get("PERAGO_DEV_LAKEFS_BIN") || undefined;
  } catch {
    return undefined;
  }
}

/** Where `perago dev` starts a server and how it stops it (closers run last first). */
interface DevServerOptions {
  port: number;
  dataDir: string | undefined;
  signal: AbortSignal;
  closers: (() => Promise<void>)[];
}

/** The demo Conductor, or Conductor OSS (one already running is used and left running). */
async function startDevConductor(kind: "demo" | "oss", options: DevServerOptions) {
  if (kind === "oss") {
    const oss = await startConductorOss({
      signal: options.signal,
      onProgress: (line) => console.error(`dev: ${line}`),
    });
    if (oss.started) options.closers.push(() => oss.close());
    else console.error(`dev: using the Conductor OSS already running at ${oss.url}`);
    return `${oss.url.replace(/\/+$/, "")}/api`;
  }
  const conductor = await startConductorServer({
    port: options.port,
    ...(options.dataDir === undefined ? {} : { dataDir: `${options.dataDir}/conductor` }),
  });
  options.closers.push(() => conductor.close());
  return `${conductor.url}/api`;
}

/** The demo lakeFS, or the real lakeFS executable `bin` (data in a temporary dir by default). */
async function startDevLakeFs(bin: string | undefined, options: DevServerOptions) {
  if (bin === undefined) {
    const lakefs = await startLakeFsServer({
      port: options.port,
      accessKeyId: DEMO_ACCESS_KEY_ID,
      secretAccessKey: DEMO_SECRET_ACCESS_KEY,
      ...(options.dataDir === undefined ? {} : { dataDir: `${options.dataDir}/lakefs` }),
    });
    options.closers.push(() => lakefs.close());
    return lakefs.url;
  }
  let lakefsDir = `${options.dataDir}/lakefs-real`;
  if (options.dataDir === undefined) {
    const tempDir = await Deno.makeTempDir({ prefix: "perago-dev-lakefs-" });
    options.closers.push(() => Deno.remove(tempDir, { recursive: true }));
    lakefsDir = tempDir;
  }
  const lakefs = await startRealLakeFs({
    bin,
    dataDir: lakefsDir,
    port: options.port,
    accessKeyId: DEMO_ACCESS_KEY_ID,
    secretAccessKey: DEMO_SECRET_ACCESS_KEY,
    signal: options.signal,
  });
  options.closers.push(() => lakefs.close());
  console.error(`dev: real lakeFS ${bin} (pid ${lakefs.pid}, log ${lakefs.logFile})`);
  return lakefs.url;
}

/** Creates the repository "demo" with the sample files, unless it exists. */
async function seedDemo(lakefsUrl: string, storageNamespace: string): Promise<void> {
  const client = new LakeFsClient({
    endpointUrl: lakefsUrl,
    accessKeyId: DEMO_ACCESS_KEY_ID,
    secretAccessKey: DEMO_SECRET_ACCESS_KEY,
  });
  const exists = await client.getRepository("demo").then(() => true, () => false);
  if (exists) return;
  const progress = startProgress('seeding "demo"');
  progress.phase("upload");
  const counted = countingLakeFs(client, { onTransfer: (c) => progress.counts(c) });
  const commit = await seedSampleRepository(counted.api, {
    repo: "demo",
    branch: "main",
    storageNamespace,
  }).finally(() => progress.stop());
  console.error(`dev: seeded repository "demo" (branch main, commit ${commit.id})`);
}

/** `perago dev`. */
export const command: Command = {
  help: HELP,
  async run(args) {
    const { values, positionals } = parseCommandArgs("dev", args, {
      "data-dir": { type: "string" },
      "conductor-port": { type: "string" },
      "lakefs-port": { type: "string" },
      seed: { type: "boolean", default: false },
      "lakefs-bin": { type: "string" },
      conductor: { type: "string", default: "demo" },
    });
    if (positionals.length > 0) {
      throw new UsageError(`dev: unexpected argument "${positionals[0]}"; run "perago dev --help"`);
    }
    const kind = values.conductor;
    if (kind !== "demo" && kind !== "oss") {
      throw new UsageError(`dev: --conductor must be "demo" or "oss" (got "${kind}")`);
    }
    if (kind === "oss" && values["conductor-port"] !== undefined) {
      throw new UsageError(
        "dev: --conductor-port is for the demo Conductor; Conductor OSS takes CONDUCTOR_OSS_PORT",
      );
    }
    const lakefsBin = values["lakefs-bin"] ?? lakefsBinFromEnv();
    const dataDir = values["data-dir"];
    if (dataDir !== undefined) await Deno.mkdir(dataDir, { recursive: true });
    const conductorPort = parsePort("--conductor-port", values["conductor-port"]);
    const lakefsPort = parsePort("--lakefs-port", values["lakefs-port"]);

    // Signals stop the servers at any point, also while a slow one is still starting.
    const stopping = new AbortController();
    const stopped = Promise.withResolvers<Deno.Signal>();
    const handlers = (["SIGINT", "SIGTERM"] as const).map((signal) => {
      const handler = () => {
        stopped.resolve(signal);
        stopping.abort(new Error(`dev: ${signal} received`));
      };
      Deno.addSignalListener(signal, handler);
      return [signal, handler] as const;
    });
    const closers: (() => Promise<void>)[] = [];
    try {
      const conductorUrl = await startDevConductor(kind, {
        port: conductorPort,
        dataDir,
        signal: stopping.signal,
        closers,
      });
      const lakefsUrl = await startDevLakeFs(lakefsBin, {
        port: lakefsPort,
        dataDir,
        signal: stopping.signal,
        closers,
      });
      if (values.seed) {
        // A real lakeFS keeps "local://" namespaces under its own block directory.
        const storage = dataDir === undefined || lakefsBin !== undefined
          ? "local://demo"
          : `local://${dataDir}/demo`;
        await seedDemo(lakefsUrl, storage);
      }
      console.log(`CONDUCTOR_SERVER_URL=${conductorUrl}`);
      console.log(`LAKECTL_SERVER_ENDPOINT_URL=${lakefsUrl}`);
      console.log(`LAKECTL_CREDENTIALS_ACCESS_KEY_ID=${DEMO_ACCESS_KEY_ID}`);
      console.log(`LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY=${DEMO_SECRET_ACCESS_KEY}`);

      const signal = await stopped.promise;
      console.error(`dev: ${signal} received, stopping the servers`);
    } catch (error) {
      if (!stopping.signal.aborted) throw error;
      console.error(`dev: ${await stopped.promise} received while starting; stopped`);
    } finally {
      for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
      for (const close of closers.reverse()) await close().catch(() => {});
    }
    return 0;
  },
};
