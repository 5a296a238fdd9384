import assert from "node:assert/strict";
import {
  childCommand,
  childConfig,
  childEnv,
  childPermissionFlags,
  childPermissionSets,
  envFileExposedToExecutors,
  moduleDir,
  readGrantCovers,
} from "../../src/runtime/permissions.ts";
import { hostPort } from "../../src/runtime/net_grant.ts";

const base = {
  workspaceRoot: "/var/perago/ws",
  logRoot: "/var/perago/logs",
  modules: ["/srv/tasks/build.ts", "file:///srv/other/sum.ts"],
  conductorUrl: "http://conductor.local:8080/api",
  lakefsUrl: "https://lake.example",
  sourceRoot: "/opt/perago",
};

Deno.test("permissions: executor gets workspace, logs, module dirs, lakeFS only", () => {
  const flags = childPermissionFlags({ ...base, role: "executor" });
  assert.deepEqual(flags, [
    "--no-prompt",
    "--allow-read=/var/perago/ws,/var/perago/logs,/srv/tasks,/srv/other," +
    "/opt/perago/mod.ts,/opt/perago/src,/opt/perago/deno.json",
    "--allow-write=/var/perago/ws,/var/perago/logs",
    "--allow-net=lake.example:443",
  ]);
  assert.ok(!flags.some((flag) => flag === "-A" || flag.startsWith("--allow-all")));
  assert.ok(!flags.some((flag) => flag.startsWith("--allow-env")));
  assert.ok(!flags.some((flag) => flag.startsWith("--allow-run")));
});

Deno.test("permissions: broker gets Conductor and its logs only", () => {
  assert.deepEqual(childPermissionFlags({ ...base, role: "broker" }), [
    "--no-prompt",
    "--allow-read=/var/perago/logs,/opt/perago/mod.ts,/opt/perago/src,/opt/perago/deno.json",
    "--allow-write=/var/perago/logs",
    "--allow-net=conductor.local:8080",
  ]);
});

Deno.test("permissions: executor lanes: the broker gets every slot's socket, an executor its own only", () => {
  const lanes = ["/tmp/perago-lanes-x/0.sock", "/tmp/perago-lanes-x/1.sock"];
  assert.deepEqual(childPermissionFlags({ ...base, role: "broker", lanePaths: lanes }), [
    "--no-prompt",
    "--allow-read=/var/perago/logs,/opt/perago/mod.ts,/opt/perago/src,/opt/perago/deno.json," +
    "/tmp/perago-lanes-x/0.sock,/tmp/perago-lanes-x/1.sock",
    "--allow-write=/var/perago/logs,/tmp/perago-lanes-x/0.sock,/tmp/perago-lanes-x/1.sock",
    "--allow-net=conductor.local:8080,unix:/tmp/perago-lanes-x/0.sock," +
    "unix:/tmp/perago-lanes-x/1.sock",
  ]);
  const executor = childPermissionFlags({ ...base, role: "executor", lanePaths: [lanes[1]!] });
  assert.deepEqual(executor, [
    "--no-prompt",
    "--allow-read=/var/perago/ws,/var/perago/logs,/srv/tasks,/srv/other," +
    "/opt/perago/mod.ts,/opt/perago/src,/opt/perago/deno.json,/tmp/perago-lanes-x/1.sock",
    "--allow-write=/var/perago/ws,/var/perago/logs,/tmp/perago-lanes-x/1.sock",
    "--allow-net=lake.example:443,unix:/tmp/perago-lanes-x/1.sock",
  ]);
  // Neither the lane directory nor slot 0's socket: nothing to move aside or connect to.
  assert.ok(!executor.some((flag) => flag.includes("0.sock") || /perago-lanes-x(,|$)/.test(flag)));
});

Deno.test("permissions: host:port and module directories", () => {
  assert.equal(hostPort("http://127.0.0.1:1234/api"), "127.0.0.1:1234");
  assert.equal(hostPort("http://h"), "h:80");
  assert.equal(hostPort("https://h/x"), "h:443");
  assert.equal(moduleDir("/a/b/c.ts"), "/a/b");
  assert.equal(moduleDir("https://example.com/t.ts"), undefined);
  assert.equal(moduleDir("rel/t.ts"), `${Deno.cwd()}/rel`);
  assert.throws(
    () => childPermissionFlags({ ...base, role: "executor", workspaceRoot: "/a,b" }),
    /comma/,
  );
});

Deno.test("permissions: command lines from source and from a compiled binary", () => {
  const source = childCommand({
    ...base,
    role: "executor",
    execPath: "/usr/bin/deno",
    standalone: false,
    mainModule: "/opt/perago/main.ts",
    configFile: "/opt/perago/deno.json",
  });
  assert.equal(source.command, "/usr/bin/deno");
  assert.deepEqual(source.args.slice(0, 3), ["run", "--config", "/opt/perago/deno.json"]);
  assert.deepEqual(source.args.slice(-2), ["/opt/perago/main.ts", "__executor"]);
  // No update check from a sandboxed child (a compiled binary never checks).
  assert.deepEqual(source.env, { DENO_NO_UPDATE_CHECK: "1" });
  const compiled = childCommand({
    ...base,
    role: "broker",
    execPath: "/usr/local/bin/perago",
    standalone: true,
  });
  assert.deepEqual(compiled, {
    command: "/usr/local/bin/perago",
    args: ["__broker"],
    standalone: true,
  });
});

Deno.test("permissions: children's environment has no configuration variables", () => {
  const env = childEnv(
    { PATH: "/bin", LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: "s", CONDUCTOR_SERVER_URL: "u" },
    ["LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY", "CONDUCTOR_SERVER_URL"],
  );
  assert.deepEqual(env, { PATH: "/bin" });
});

Deno.test("permissions: an executor reads perago's mod.ts, src/ and deno.json, never <sourceRoot>/.env", async () => {
  const root = await Deno.makeTempDir({ prefix: "perago-perm-" });
  try {
    const sourceRoot = `${root}/perago`;
    await Deno.mkdir(`${sourceRoot}/src`, { recursive: true });
    await Deno.writeTextFile(`${sourceRoot}/.env`, "CONDUCTOR_AUTH_SECRET=s3cr3t\n");
    await Deno.writeTextFile(`${sourceRoot}/mod.ts`, "export {};\n");
    await Deno.writeTextFile(`${sourceRoot}/src/a.ts`, "export {};\n");
    await Deno.writeTextFile(`${sourceRoot}/deno.json`, "{}\n");
    await Deno.mkdir(`${root}/ws`);
    await Deno.mkdir(`${root}/logs`);
    const flags = childPermissionFlags({
      ...base,
      role: "executor",
      workspaceRoot: `${root}/ws`,
      logRoot: `${root}/logs`,
      modules: [`${root}/tasks/t.ts`],
      sourceRoot,
    });
    const probe = `
      const out = {};
      for (const name of [".env", "mod.ts", "src/a.ts", "deno.json"]) {
        try { await Deno.readTextFile(${
      JSON.stringify(sourceRoot)
    } + "/" + name); out[name] = "ok"; }
        catch (e) { out[name] = e.name; }
      }
      console.log(JSON.stringify(out));`;
    await Deno.writeTextFile(`${root}/probe.ts`, probe);
    const result = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-config", ...flags, `${root}/probe.ts`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(result.stdout);
    assert.ok(result.success, new TextDecoder().decode(result.stderr));
    assert.deepEqual(JSON.parse(text), {
      ".env": "NotCapable",
      "mod.ts": "ok",
      "src/a.ts": "ok",
      "deno.json": "ok",
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("permissions: the .env the supervisor read is denied to both children by --deny-read", () => {
  const envFile = "/srv/tasks/.env";
  for (const role of ["broker", "executor"] as const) {
    const flags = childPermissionFlags({ ...base, role, envFile });
    assert.equal(flags.at(-1), "--deny-read=/srv/tasks/.env", role);
    assert.deepEqual(childPermissionSets({ ...base, role, envFile }).denyRead, [envFile]);
  }
  assert.ok(
    !childPermissionFlags({ ...base, role: "executor" }).some((flag) =>
      flag.startsWith("--deny-read")
    ),
  );
});

Deno.test("permissions: an executor whose task module sits beside .env reads the module's files, never .env", async () => {
  const root = await Deno.makeTempDir({ prefix: "perago-perm-" });
  try {
    // An operator's project: the task module, a file it reads, and .env in one directory.
    const project = `${root}/project`;
    await Deno.mkdir(project);
    await Deno.writeTextFile(`${project}/.env`, "CONDUCTOR_AUTH_SECRET=s3cr3t\n");
    await Deno.writeTextFile(`${project}/data.txt`, "fine\n");
    await Deno.mkdir(`${root}/ws`);
    await Deno.mkdir(`${root}/logs`);
    const sets = {
      ...base,
      role: "executor" as const,
      workspaceRoot: `${root}/ws`,
      logRoot: `${root}/logs`,
      modules: [`${project}/task.ts`],
      sourceRoot: "",
      envFile: `${project}/.env`,
    };
    const probe = `
      const out = {};
      for (const name of [".env", "data.txt"]) {
        try { await Deno.readTextFile(${JSON.stringify(project)} + "/" + name); out[name] = "ok"; }
        catch (e) { out[name] = e.name; }
      }
      console.log(JSON.stringify(out));`;
    await Deno.writeTextFile(`${root}/probe.ts`, probe);
    const run = async (flags: string[]) => {
      const result = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-config", `--allow-read=${root}/probe.ts`, ...flags, `${root}/probe.ts`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(result.success, new TextDecoder().decode(result.stderr));
      return JSON.parse(new TextDecoder().decode(result.stdout));
    };
    // The attack works without the deny: the module's directory is granted as a whole.
    const { envFile: _, ...withoutDeny } = sets;
    assert.deepEqual(await run(childPermissionFlags(withoutDeny)), {
      ".env": "ok",
      "data.txt": "ok",
    });
    assert.deepEqual(await run(childPermissionFlags(sets)), {
      ".env": "NotCapable",
      "data.txt": "ok",
    });
    // Process mode from source is covered; a Worker (no deny list) is warned about.
    const executorSets = childPermissionSets(sets);
    assert.equal(envFileExposedToExecutors(sets.envFile, "process", executorSets, false), false);
    assert.equal(envFileExposedToExecutors(sets.envFile, "thread", executorSets, false), true);
    assert.equal(envFileExposedToExecutors(undefined, "thread", executorSets, false), false);
    const apart = childPermissionSets({ ...sets, envFile: `${root}/.env` });
    assert.equal(envFileExposedToExecutors(`${root}/.env`, "thread", apart, false), false);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("permissions: readGrantCovers: the path itself or a directory above it, not a sibling prefix", () => {
  assert.equal(readGrantCovers(["/srv/tasks"], "/srv/tasks/.env"), true);
  assert.equal(readGrantCovers(["/srv/tasks/"], "/srv/tasks/.env"), true);
  assert.equal(readGrantCovers(["/srv/tasks/.env"], "/srv/tasks/.env"), true);
  assert.equal(readGrantCovers(["/"], "/srv/tasks/.env"), true);
  assert.equal(readGrantCovers(["/srv/task"], "/srv/tasks/.env"), false);
  assert.equal(readGrantCovers(["/srv/tasks/sub"], "/srv/tasks/.env"), false);
  assert.equal(readGrantCovers([], "/srv/tasks/.env"), false);
});

Deno.test("permissions: children run with the supervisor's --config; executors read its import map's local modules", () => {
  const project = JSON.stringify({
    imports: {
      "perago": "/opt/perago/mod.ts",
      "greet": "./lib/greet.ts",
      "util": "./util.ts",
      "shared/": "../shared/",
      "all/": "./",
      "zod": "npm:zod@4",
    },
    scopes: { "./vendor/": { "x": "file:///srv/x/x.ts" } },
  });
  const files: Record<string, string> = {
    "/srv/project/deno.json": project,
    "/opt/perago/deno.json": "{}",
  };
  const probe = {
    standalone: false,
    mainModule: "file:///opt/perago/main.ts",
    cwd: "/srv/project",
    readConfig: (path: string) => files[path],
    peragoConfigFile: "/opt/perago/deno.json",
    sourceRoot: "/opt/perago",
  };
  const explicit = childConfig({
    ...probe,
    argv: ["deno", "run", "-A", "-c", "deno.json", "/opt/perago/main.ts", "start", "t.ts"],
  });
  assert.equal(explicit.configFile, "/srv/project/deno.json");
  // A file's directory, a mapped directory; never the project root or perago's root whole.
  assert.deepEqual(explicit.importMapReads, [
    "/opt/perago/mod.ts",
    "/srv/project/lib",
    "/srv/project/util.ts",
    "/srv/shared",
    "/srv/x",
  ]);
  const flags = childPermissionFlags({
    ...base,
    role: "executor",
    importMapReads: explicit.importMapReads,
  });
  assert.match(flags[1]!, /,\/srv\/project\/lib,/);
  assert.ok(
    !childPermissionFlags({ ...base, role: "broker", importMapReads: ["/srv/project/lib"] })
      .some((flag) => flag.includes("/srv/project")),
    "the broker imports no task code",
  );
  // Discovered (no --config): the config nearest to main.ts, perago's own: nothing extra.
  assert.deepEqual(childConfig({ ...probe, argv: ["deno", "run", "-A", "/opt/perago/main.ts"] }), {
    configFile: "/opt/perago/deno.json",
    importMapReads: [],
  });
  // Cannot tell (no /proc, or no permission to read it): perago's own, as before.
  assert.deepEqual(childConfig({ ...probe, argv: undefined }), {
    configFile: "/opt/perago/deno.json",
    importMapReads: [],
  });
  // A compiled binary's children take no --config.
  assert.deepEqual(childConfig({ ...probe, standalone: true, argv: ["perago", "start"] }), {
    configFile: undefined,
    importMapReads: [],
  });
});

Deno.test("permissions: an executor without lakeFS (workspace-free tasks) gets no --allow-net at all", () => {
  const flags = childPermissionFlags({ ...base, role: "executor", lakefsUrl: undefined });
  assert.ok(!flags.some((flag) => flag.startsWith("--allow-net")), flags.join(" "));
  assert.ok(flags.includes("--no-prompt"));
});

Deno.test("permissions: PERAGO_EXECUTOR_MAX_HEAP_MB reaches executors only, as --v8-flags or DENO_V8_FLAGS", () => {
  const options = {
    ...base,
    execPath: "/usr/bin/deno",
    standalone: false,
    mainModule: "/opt/perago/main.ts",
    configFile: undefined,
    maxHeapMb: 512,
  };
  const executor = childCommand({ ...options, role: "executor" });
  assert.equal(executor.args[0], "run");
  assert.equal(
    executor.args[1],
    "--v8-flags=--max-old-space-size=512,--expose-gc-as=__peragoExecutorGc," +
      "--invocation-count-for-maglev=1200",
  );
  assert.deepEqual(executor.env, { DENO_NO_UPDATE_CHECK: "1" });
  assert.ok(executor.args.includes("--no-code-cache"), executor.args.join(" "));
  const broker = childCommand({ ...options, role: "broker" });
  assert.ok(!broker.args.some((arg) => arg.startsWith("--v8-flags")), broker.args.join(" "));
  assert.ok(!broker.args.includes("--no-code-cache"), broker.args.join(" "));
  const compiled = childCommand({ ...options, role: "executor", standalone: true });
  assert.deepEqual(compiled.args, ["__executor"]);
  assert.deepEqual(compiled.env, {
    DENO_V8_FLAGS: "--max-old-space-size=512,--expose-gc-as=__peragoExecutorGc," +
      "--invocation-count-for-maglev=1200",
  });
  // Uncapped: no heap limit; the gc function for idle collections (idle_gc.ts) and the
  // Maglev tier-up stay.
  const uncapped = childCommand({ ...options, role: "executor", maxHeapMb: 0 });
  assert.ok(
    !uncapped.args.some((arg) => arg.includes("max-old-space-size")),
    uncapped.args.join(" "),
  );
  assert.equal(
    uncapped.args[1],
    "--v8-flags=--expose-gc-as=__peragoExecutorGc,--invocation-count-for-maglev=1200",
  );
});

Deno.test("permissions: a compiled binary's child stops reading .env (granted by itself) and keeps its other reads; .env inside a granted directory is left readable", async () => {
  const root = await Deno.makeTempDir({ prefix: "perago-perm-env-" });
  try {
    await Deno.mkdir(`${root}/project/tasks`, { recursive: true });
    await Deno.mkdir(`${root}/ws`);
    await Deno.writeTextFile(`${root}/project/.env`, "CONDUCTOR_AUTH_SECRET=s3cr3t\n");
    await Deno.writeTextFile(`${root}/project/tasks/t.ts`, "export {};\n");
    await Deno.writeTextFile(`${root}/ws/file.txt`, "workspace\n");
    const permissions = new URL("../../src/runtime/permissions.ts", import.meta.url).href;
    const probe = `
      import { narrowStandaloneChild } from ${JSON.stringify(permissions)};
      const envFile = ${JSON.stringify(`${root}/project/.env`)};
      const before = Deno.readTextFileSync(envFile).length > 0;
      await narrowStandaloneChild("executor", envFile);
      const out = { before };
      for (const [name, path] of [[".env", envFile], ["ws", ${
      JSON.stringify(`${root}/ws/file.txt`)
    }], ["task", ${JSON.stringify(`${root}/project/tasks/t.ts`)}]]) {
        try { Deno.readTextFileSync(path); out[name] = "ok"; } catch (e) { out[name] = e.name; }
      }
      console.log(JSON.stringify(out));`;
    await Deno.writeTextFile(`${root}/probe.ts`, probe);
    const source = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
    const run = async (reads: string[]) => {
      const result = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--no-config",
          "--no-prompt",
          `--allow-read=${[...reads, `${root}/probe.ts`, `${source}/src`].join(",")}`,
          // What a binary bakes and its children revoke as they start.
          "--allow-run",
          "--allow-env",
          `${root}/probe.ts`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(result.success, new TextDecoder().decode(result.stderr));
      return JSON.parse(new TextDecoder().decode(result.stdout));
    };
    // As scripts/compile.ts bakes it: the roots, the task directory and .env by itself.
    assert.deepEqual(
      await run([`${root}/ws`, `${root}/project/tasks`, `${root}/project/.env`]),
      { before: true, ".env": "NotCapable", ws: "ok", task: "ok" },
    );
    // .env inside a directory granted as a whole: revoking it would take the directory.
    assert.deepEqual(
      await run([`${root}/ws`, `${root}/project`]),
      { before: true, ".env": "ok", ws: "ok", task: "ok" },
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
