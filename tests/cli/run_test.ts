import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startLakeFsServer } from "../../src/devstack/lakefs/server.ts";
import { LakeFsClient } from "../../src/lakefs/client.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "main.ts");
const KEY = "AKIARUNTEST";
const SECRET = "run-test-secret-value";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function perago(args: string[], cwd: string, env: Record<string, string>): Promise<Run> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

async function withDemo(
  fn: (ctx: {
    tmp: string;
    env: Record<string, string>;
    lakefs: LakeFsClient;
    count: (op: string) => number;
  }) => Promise<void>,
): Promise<void> {
  const server = await startLakeFsServer({ accessKeyId: KEY, secretAccessKey: SECRET });
  const tmp = await Deno.makeTempDir({ prefix: "perago-run-test-" });
  try {
    const lakefs = new LakeFsClient({
      endpointUrl: server.url,
      accessKeyId: KEY,
      secretAccessKey: SECRET,
    });
    await lakefs.createRepository("demo", "local://demo", "main");
    const encoder = new TextEncoder();
    for (
      const [path, text] of Object.entries({
        "docs/a.txt": "hello   \r\nworld\n\n\n",
        "docs/b.md": "fine\n",
        "readme.txt": "outside the prefix",
      })
    ) {
      const bytes = encoder.encode(text);
      await lakefs.uploadObject("demo", "main", path, () => Promise.resolve(bytes));
    }
    await lakefs.commit("demo", "main", "seed");
    await fn({
      tmp,
      lakefs,
      count: (op) => server.stats.count(op),
      env: {
        PERAGO_WORKSPACE_ROOT: join(tmp, "ws"),
        PERAGO_LOG_ROOT: join(tmp, "logs"),
        LAKECTL_SERVER_ENDPOINT_URL: server.url,
        LAKECTL_CREDENTIALS_ACCESS_KEY_ID: KEY,
        LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: SECRET,
      },
    });
  } finally {
    await server.close();
    await Deno.remove(tmp, { recursive: true });
  }
}

async function text(lakefs: LakeFsClient, ref: string, path: string): Promise<string> {
  return await new Response(await lakefs.getObject("demo", ref, path)).text();
}

Deno.test("perago run --help", async () => {
  const run = await perago(["run", "--help"], ROOT, {});
  assert.equal(run.code, 0);
  assert.match(run.stdout, /Usage: perago run <module> --input <file.json> \[--dry-run\]/);
});

Deno.test("perago run: usage errors exit 1 with error:", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const module = join(ROOT, "examples/word_count.ts");
    const env = { PERAGO_WORKSPACE_ROOT: join(tmp, "ws"), PERAGO_LOG_ROOT: join(tmp, "logs") };
    const missing = await perago(["run", module], tmp, env);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^error: run: --input <file.json> is required/m);
    const noFile = await perago(["run", module, "--input", join(tmp, "nope.json")], tmp, env);
    assert.equal(noFile.code, 1);
    assert.match(noFile.stderr, /error: run: cannot read the input file/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("perago run: a workspace-free task prints its result", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const env = { PERAGO_WORKSPACE_ROOT: join(tmp, "ws"), PERAGO_LOG_ROOT: join(tmp, "logs") };
    const run = await perago(
      [
        "run",
        join(ROOT, "examples/word_count.ts"),
        "--input",
        join(ROOT, "examples/inputs/word_count.json"),
      ],
      tmp,
      env,
    );
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^status: COMPLETED$/m);
    assert.match(run.stdout, /^result: \{/m);
    const bad = join(tmp, "bad.json");
    await Deno.writeTextFile(bad, JSON.stringify({ params: { nope: 1 } }));
    const failed = await perago(["run", join(ROOT, "examples/word_count.ts"), "-i", bad], tmp, env);
    assert.equal(failed.code, 1);
    assert.match(failed.stdout, /^status: FAILED$/m);
    assert.match(failed.stdout, /^reason: TaskInputError: invalid params/m);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("perago run: writable task with a missing ref publishes to the branch head", async () => {
  await withDemo(async ({ tmp, env, lakefs, count }) => {
    const before = (await lakefs.getBranch("demo", "main")).commit_id;
    const run = await perago(
      [
        "run",
        join(ROOT, "examples/normalize_text.ts"),
        "--input",
        join(ROOT, "examples/inputs/normalize_text.json"),
      ],
      tmp,
      env,
    );
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const head = (await lakefs.getBranch("demo", "main")).commit_id;
    assert.notEqual(head, before);
    assert.match(run.stdout, new RegExp(`^published ref: ${head}$`, "m"));
    assert.match(run.stdout, /^ {2}~ docs\/a.txt \(12 bytes\)$/m);
    assert.match(run.stdout, /^ {2}\+ docs\/manifest.json/m);
    assert.equal(await text(lakefs, head, "docs/a.txt"), "hello\nworld\n");
    assert.equal(count("createBranch"), 1);
    assert.ok(!run.stdout.includes(SECRET) && !run.stderr.includes(SECRET));
    const branches = await Array.fromAsync(lakefs.listBranches("demo"), (ref) => ref.id);
    assert.deepEqual(branches, ["main"]);
  });
});

Deno.test("perago run --dry-run: prints the changes and writes nothing", async () => {
  await withDemo(async ({ tmp, env, lakefs, count }) => {
    const before = (await lakefs.getBranch("demo", "main")).commit_id;
    const uploads = count("uploadObject");
    const run = await perago(
      [
        "run",
        join(ROOT, "examples/normalize_text.ts"),
        "--input",
        join(ROOT, "examples/inputs/normalize_text.json"),
        "--dry-run",
      ],
      tmp,
      env,
    );
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /^status: COMPLETED \(dry run\)$/m);
    assert.match(run.stdout, /^would change: 1 added, 1 changed, 0 removed$/m);
    assert.match(run.stdout, /^ {2}~ docs\/a.txt \(12 bytes\)$/m);
    assert.equal((await lakefs.getBranch("demo", "main")).commit_id, before);
    assert.equal(count("uploadObject"), uploads);
    assert.equal(count("createBranch"), 0);
    assert.equal(count("commit"), 1); // the seed commit only
  });
});

Deno.test("perago run: a re-run starts from the directory the previous run left in the warm pool (nothing fetched); PERAGO_WARM_POOL_DIRS=0 turns it off", async () => {
  await withDemo(async ({ tmp, env, count }) => {
    const args = [
      "run",
      join(ROOT, "examples/normalize_text.ts"),
      "--input",
      join(ROOT, "examples/inputs/normalize_text.json"),
    ];
    // The object cache off: what a re-run does not fetch is kept from the pool.
    const noCache = { ...env, PERAGO_OBJECT_CACHE_MAX_SIZE: "0" };
    const fetched = async (extra: Record<string, string>) => {
      const before = count("getObject");
      const run = await perago(args, tmp, { ...noCache, ...extra });
      assert.equal(run.code, 0, run.stdout + run.stderr);
      return count("getObject") - before;
    };
    assert.equal(await fetched({}), 2, "the first run downloads docs/a.txt and docs/b.md");
    // The second run starts from the head the first published (docs/manifest.json added).
    assert.equal(await fetched({}), 0);
    const pool = await Array.fromAsync(
      Deno.readDir(join(env.PERAGO_WORKSPACE_ROOT!, ".perago-warm")),
    );
    assert.equal(pool.filter((e) => e.isDirectory && e.name !== "holders").length, 1);
    assert.equal(await fetched({ PERAGO_WARM_POOL_DIRS: "0" }), 3);
  });
});
