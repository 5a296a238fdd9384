// deno-lint-ignore-file no-console
/**
 * `perago dev`: the demo Conductor and lakeFS servers on loopback, for development, the demo
 * and the tests. Prints the connection settings in `.env` format, then serves until
 * SIGINT/SIGTERM.
 *
 * @module
 */
import { startConductorServer } from "../devstack/conductor/server.ts";
import { startLakeFsServer } from "../devstack/lakefs/server.ts";
import { DEMO_ACCESS_KEY_ID, DEMO_SECRET_ACCESS_KEY } from "../devstack/credentials.ts";
import { LakeFsClient } from "../lakefs/client.ts";
import { parseCommandArgs } from "./_args.ts";
import { countingLakeFs } from "../runtime/counting_lakefs.ts";
import { startProgress } from "./_progress.ts";
import { seedSampleRepository } from "./_seed.ts";
import { UsageError } from "./_fail.ts";
import type { Command } from "./_command.ts";

const HELP = `Usage: perago dev [--data-dir D] [--conductor-port N] [--lakefs-port N] [--seed]

Starts the demo Conductor and lakeFS servers on 127.0.0.1 and prints, in .env format:

  CONDUCTOR_SERVER_URL=http://127.0.0.1:<port>/api
  LAKECTL_SERVER_ENDPOINT_URL=http://127.0.0.1:<port>
  LAKECTL_CREDENTIALS_ACCESS_KEY_ID=...
  LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY=...

then serves until SIGINT or SIGTERM. Append the lines to .env to point perago at them:
  perago dev >> .env

Options:
  --data-dir <dir>        keep the servers' state in this directory (default: memory)
  --conductor-port <n>    Conductor port (default: a free port)
  --lakefs-port <n>       lakeFS port (default: a free port)
  --seed                  create the lakeFS repository "demo" with sample files on
                          branch main (what examples/inputs/*.json refer to)
  -h, --help              show this help

The demo servers are for development and tests: they follow the real servers' REST
behaviour for what perago uses, and have fault switches at /_perago/faults.`;

function parsePort(flag: string, value: string | undefined): number {
  if (value === undefined) return 0;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`dev: ${flag} must be a port number 0..65535 (got "${value}")`);
  }
  return port;
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
    });
    if (positionals.length > 0) {
      throw new UsageError(`dev: unexpected argument "${positionals[0]}"; run "perago dev --help"`);
    }
    const dataDir = values["data-dir"];
    if (dataDir !== undefined) await Deno.mkdir(dataDir, { recursive: true });
    const conductor = await startConductorServer({
      port: parsePort("--conductor-port", values["conductor-port"]),
      ...(dataDir === undefined ? {} : { dataDir: `${dataDir}/conductor` }),
    });
    const lakefs = await startLakeFsServer({
      port: parsePort("--lakefs-port", values["lakefs-port"]),
      accessKeyId: DEMO_ACCESS_KEY_ID,
      secretAccessKey: DEMO_SECRET_ACCESS_KEY,
      ...(dataDir === undefined ? {} : { dataDir: `${dataDir}/lakefs` }),
    });
    if (values.seed) {
      const client = new LakeFsClient({
        endpointUrl: lakefs.url,
        accessKeyId: DEMO_ACCESS_KEY_ID,
        secretAccessKey: DEMO_SECRET_ACCESS_KEY,
      });
      const exists = await client.getRepository("demo").then(() => true, () => false);
      if (!exists) {
        const storage = dataDir === undefined ? "local://demo" : `local://${dataDir}/demo`;
        const progress = startProgress('seeding "demo"');
        progress.phase("upload");
        const counted = countingLakeFs(client, { onTransfer: (c) => progress.counts(c) });
        const commit = await seedSampleRepository(counted.api, {
          repo: "demo",
          branch: "main",
          storageNamespace: storage,
        }).finally(() => progress.stop());
        console.error(`dev: seeded repository "demo" (branch main, commit ${commit.id})`);
      }
    }
    console.log(`CONDUCTOR_SERVER_URL=${conductor.url}/api`);
    console.log(`LAKECTL_SERVER_ENDPOINT_URL=${lakefs.url}`);
    console.log(`LAKECTL_CREDENTIALS_ACCESS_KEY_ID=${DEMO_ACCESS_KEY_ID}`);
    console.log(`LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY=${DEMO_SECRET_ACCESS_KEY}`);

    const stopped = Promise.withResolvers<Deno.Signal>();
    const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
    const handlers = signals.map((signal) => {
      const handler = () => stopped.resolve(signal);
      Deno.addSignalListener(signal, handler);
      return [signal, handler] as const;
    });
    try {
      const signal = await stopped.promise;
      console.error(`dev: ${signal} received, stopping the demo servers`);
    } finally {
      for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
      await Promise.allSettled([conductor.close(), lakefs.close()]);
    }
    return 0;
  },
};
