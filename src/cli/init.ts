// deno-lint-ignore-file no-console
/**
 * `perago init [dir]`: scaffolds a task project whose `deno task test` passes straight away:
 * deno.json with an import map pointing at this perago installation, an example task, its
 * test on `perago/testing`, `.env.example`, a README. Never overwrites a file.
 *
 * @module
 */
import { tmpdir } from "node:os";
import { basename, join, relative, resolve } from "node:path";
import peragoConfig from "../../deno.json" with { type: "json" };
import { parseCommandArgs } from "./_args.ts";
import { UsageError } from "./_fail.ts";
import {
  denoJson,
  envExample,
  EXAMPLE_TASK,
  EXAMPLE_TEST,
  GITIGNORE,
  type PeragoLocation,
  readme,
} from "./_init_files.ts";
import type { Command } from "./_command.ts";

const HELP = `Usage: perago init [dir]

Scaffolds a task project in <dir> (default: the current directory; created
if missing):

  deno.json              import map: "perago" and "perago/testing" point at
                         this perago installation; tasks test, check, start
                         and perago (any perago command)
  tasks/tidy_docs.ts     an example workspace task
  tests/tidy_docs_test.ts  its test, written with perago/testing
  .env.example           every setting with its default
  README.md, .gitignore

Existing files are never overwritten: if any of these exists, nothing is
written. Then:  cd <dir> && deno task test

Options:
  -h, --help  show this help`;

const TASK_MODULE = "tasks/tidy_docs.ts";
/** perago's own entries of its import map, which a project maps itself. */
const OWN_IMPORTS = new Set(["perago", "perago/testing"]);

/** Where this perago's sources are; refused when they are not files on disk. */
function peragoLocation(): PeragoLocation {
  const root = new URL("../../", import.meta.url);
  const location = {
    mod: new URL("mod.ts", root).href,
    testing: new URL("testing.ts", root).href,
    main: new URL("main.ts", root).href,
  };
  const onDisk = root.protocol === "file:" && Deno.build.standalone !== true &&
    [location.mod, location.testing, location.main].every((url) => {
      try {
        return Deno.statSync(new URL(url)).isFile;
      } catch {
        return false;
      }
    });
  if (!onDisk) {
    throw new UsageError(
      "init: this perago has no sources on disk for a project to import (a compiled " +
        "binary embeds them); run init from a perago checkout: deno run -A " +
        "<checkout>/main.ts init [dir]",
    );
  }
  return location;
}

/** The npm dependencies perago's modules import by bare name, as perago pins them. */
function dependencies(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(peragoConfig.imports as Record<string, string>)
      .filter(([name]) => !OWN_IMPORTS.has(name)),
  );
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

function osTempDir(): string {
  try {
    return tmpdir();
  } catch {
    return "/tmp";
  }
}

/**
 * Writes the project files into `dir`; returns their paths relative to it.
 *
 * @throws {UsageError} when any of the files exists (nothing is written then).
 */
export async function scaffold(dir: string): Promise<string[]> {
  const location = peragoLocation();
  const name = basename(resolve(dir)) || "tasks";
  const files: Record<string, string> = {
    "deno.json": denoJson(location, dependencies(), TASK_MODULE),
    [TASK_MODULE]: EXAMPLE_TASK,
    "tests/tidy_docs_test.ts": EXAMPLE_TEST,
    ".env.example": envExample(osTempDir()),
    "README.md": readme(name, location),
    ".gitignore": GITIGNORE,
  };
  const taken: string[] = [];
  for (const path of Object.keys(files)) {
    if (await exists(join(dir, path))) taken.push(path);
  }
  if (taken.length > 0) {
    throw new UsageError(
      `init: ${taken.join(", ")} already exist${taken.length === 1 ? "s" : ""} in ` +
        `${resolve(dir)}; nothing was written. Run init in an empty directory, or move ` +
        "those files away first",
    );
  }
  for (const [path, content] of Object.entries(files)) {
    const target = join(dir, path);
    await Deno.mkdir(join(target, ".."), { recursive: true });
    // createNew: a file that appeared since the check is still never overwritten.
    await Deno.writeTextFile(target, content, { createNew: true });
  }
  return Object.keys(files);
}

/** `perago init`. */
export const command: Command = {
  help: HELP,
  async run(args) {
    const { positionals } = parseCommandArgs("init", args, {});
    if (positionals.length > 1) {
      throw new UsageError('init: expected at most one directory; run "perago init --help"');
    }
    const dir = positionals[0] ?? ".";
    const written = await scaffold(dir);
    const shown = relative(Deno.cwd(), resolve(dir)) || ".";
    for (const path of written) console.log(`created ${join(shown, path)}`);
    console.log("");
    console.log("next:");
    if (shown !== ".") console.log(`  cd ${shown}`);
    console.log("  deno task test     # the example task's tests (no servers needed)");
    console.log("  cat README.md      # configure, register and start the task");
    return 0;
  },
};
