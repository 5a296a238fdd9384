import assert from "node:assert/strict";
import { join } from "node:path";
import type { LakeFsConfig, RuntimeConfig } from "../../src/config/config.ts";
import { executorDropHosts } from "../../src/runtime/start.ts";
import { executorInit, SOURCE, startExecutor } from "./_executor_process.ts";

const NET_GRANT = new URL("../../src/runtime/net_grant.ts", import.meta.url).href;
const decoder = new TextDecoder();

/** Two loopback listeners standing in for Conductor and lakeFS; each accepts and closes. */
function twoServers() {
  const conductor = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const lakefs = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serve = async (listener: Deno.Listener) => {
    try {
      for await (const conn of listener) conn.close();
    } catch {
      // closed by the test
    }
  };
  const served = Promise.all([serve(conductor), serve(lakefs)]);
  return {
    conductor: `127.0.0.1:${(conductor.addr as Deno.NetAddr).port}`,
    lakefs: `127.0.0.1:${(lakefs.addr as Deno.NetAddr).port}`,
    async [Symbol.asyncDispose]() {
      conductor.close();
      lakefs.close();
      await served;
    },
  };
}

/** Connects to `host:port` from a probe, "ok" or the error's name. */
const CONNECT = `async (hostPort) => {
  const [hostname, port] = hostPort.split(":");
  try { (await Deno.connect({ hostname, port: Number(port) })).close(); return "ok"; }
  catch (e) { return e.name; }
}`;

async function runProbe(dir: string, probe: string, net: string): Promise<unknown> {
  const file = join(dir, `probe-${crypto.randomUUID()}.ts`);
  await Deno.writeTextFile(file, probe);
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-config", "--no-prompt", `--allow-read=${SOURCE}/src,${file}`, net, file],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(result.success, decoder.decode(result.stderr));
  return JSON.parse(decoder.decode(result.stdout));
}

Deno.test("dropHosts: Conductor dropped from a baked host:port list, lakeFS kept; a shared grant is left and said", async () => {
  await using servers = await twoServers();
  const dir = await Deno.makeTempDir({ prefix: "perago-net-grant-" });
  try {
    const probe = `
      import { dropHosts } from ${JSON.stringify(NET_GRANT)};
      const connect = ${CONNECT};
      const before = await connect(${JSON.stringify(servers.conductor)});
      const left = await dropHosts([${JSON.stringify(servers.conductor)}], ${
      JSON.stringify(servers.lakefs)
    });
      console.log(JSON.stringify({
        before, left,
        conductor: await connect(${JSON.stringify(servers.conductor)}),
        lakefs: await connect(${JSON.stringify(servers.lakefs)}),
      }));`;
    // As scripts/compile.ts bakes it: each server as host:port.
    assert.deepEqual(
      await runProbe(dir, probe, `--allow-net=${servers.conductor},${servers.lakefs}`),
      { before: "ok", left: [], conductor: "NotCapable", lakefs: "ok" },
    );
    // One grant for every port of the host: dropping Conductor would drop lakeFS too.
    assert.deepEqual(
      await runProbe(dir, probe, "--allow-net=127.0.0.1"),
      { before: "ok", left: [servers.conductor], conductor: "ok", lakefs: "ok" },
    );
    assert.deepEqual(
      await runProbe(dir, probe, "--allow-net"),
      { before: "ok", left: [servers.conductor], conductor: "ok", lakefs: "ok" },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("executor: under a binary's union of hosts, a task module cannot reach Conductor (it is dropped before tasks load); without the drop it could", async () => {
  await using servers = await twoServers();
  const dir = await Deno.makeTempDir({ prefix: "perago-net-grant-" });
  try {
    const ws = join(dir, "ws");
    const logs = join(dir, "logs");
    await Deno.mkdir(ws);
    const task = join(dir, "probe_task.ts");
    await Deno.writeTextFile(
      task,
      `import { defineTask, z } from ${JSON.stringify(`${SOURCE}/mod.ts`)};
      const connect = ${CONNECT};
      await Deno.writeTextFile(${JSON.stringify(join(ws, "probe.json"))}, JSON.stringify({
        conductor: await connect(${JSON.stringify(servers.conductor)}),
        lakefs: await connect(${JSON.stringify(servers.lakefs)}),
      }));
      export default defineTask({ name: "probe_net", ownerEmail: "tests@example.com", description: "probe",
        params: z.object({}), result: z.object({}), run: () => ({}) });`,
    );
    const probeWith = async (dropHosts: string[] | undefined) => {
      await Deno.remove(join(ws, "probe.json")).catch(() => {});
      const { child, writer } = await startExecutor(
        {
          command: Deno.execPath(),
          args: [
            "run",
            "--config",
            `${SOURCE}/deno.json`,
            "--no-prompt",
            `--allow-read=${SOURCE}/mod.ts,${SOURCE}/src,${SOURCE}/deno.json,${dir}`,
            `--allow-write=${dir}`,
            // What a compiled binary's children hold: both servers.
            `--allow-net=${servers.conductor},${servers.lakefs}`,
            `${SOURCE}/main.ts`,
            "__executor",
          ],
        },
        executorInit({
          workerId: "probe0",
          task,
          ws,
          logs,
          moduleName: "probe_task",
          extra: {
            ...(dropHosts === undefined ? {} : { dropHosts }),
            lakefs: {
              endpointUrl: `http://${servers.lakefs}`,
              accessKeyId: "AKIAEXAMPLE",
              secretAccessKey: "not-a-secret",
            },
          },
        }),
      );
      let stdout = "";
      for await (const chunk of child.stdout) {
        stdout += decoder.decode(chunk);
        if (/"type":"(ready|fatal)"/.test(stdout)) break;
      }
      await writer.close();
      const status = await child.status;
      await child.stderr.cancel();
      assert.match(stdout, /"type":"ready"/);
      assert.equal(status.code, 2, "exits 2 when the supervisor goes away");
      return JSON.parse(await Deno.readTextFile(join(ws, "probe.json")));
    };
    assert.deepEqual(await probeWith([servers.conductor]), {
      conductor: "NotCapable",
      lakefs: "ok",
    });
    assert.deepEqual(await probeWith(undefined), { conductor: "ok", lakefs: "ok" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("executorDropHosts: Conductor's host:port with its default port; none without Conductor or when lakeFS shares it", () => {
  const config = (serverUrl?: string) =>
    ({
      conductor: serverUrl === undefined ? undefined : { serverUrl },
    }) as unknown as RuntimeConfig;
  const lakefs = (endpointUrl: string) => ({ endpointUrl }) as unknown as LakeFsConfig;
  assert.deepEqual(
    executorDropHosts(config("https://conductor.internal/api"), lakefs("http://lakefs:8000")),
    ["conductor.internal:443"],
  );
  assert.deepEqual(executorDropHosts(config("http://10.0.0.5:8080/api"), undefined), [
    "10.0.0.5:8080",
  ]);
  assert.deepEqual(executorDropHosts(config(undefined), lakefs("http://lakefs:8000")), []);
  assert.deepEqual(
    executorDropHosts(config("http://both:8000/api"), lakefs("http://both:8000")),
    [],
  );
});
