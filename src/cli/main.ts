// deno-lint-ignore-file no-console
/**
 * Dispatches `perago <command>` to `src/cli/<command>.ts`. Each command module exports a
 * {@linkcode Command} as `command`; this is the only place that knows them all.
 *
 * @module
 */
import { VERSION } from "../version.ts";
import type { Command } from "./_command.ts";
import { fail } from "./_fail.ts";
import { importLazily } from "../util/lazy_import.ts";

type CommandLoader = () => Promise<Command>;

/** A listed command: its one-line summary for the top-level help and its loader. */
interface CommandEntry {
  readonly summary: string;
  readonly load: CommandLoader;
}

// Loaded lazily so `perago --version` or `perago check` never imports the runtime; the
// summaries live here so the top-level help loads no command module.
const COMMANDS: Record<string, CommandEntry> = {
  check: {
    summary: "validate the configuration and a task module",
    load: async () => (await importLazily<typeof import("./check.ts")>("cli/check.ts")).command,
  },
  extract: {
    summary: "write the Conductor TaskDef of a task module",
    load: async () => (await importLazily<typeof import("./extract.ts")>("cli/extract.ts")).command,
  },
  run: {
    summary: "run one local attempt of a task (no Conductor)",
    load: async () => (await importLazily<typeof import("./run.ts")>("cli/run.ts")).command,
  },
  start: {
    summary: "serve task modules: poll Conductor and run attempts",
    load: async () => (await importLazily<typeof import("./start.ts")>("cli/start.ts")).command,
  },
  dev: {
    summary: "start the demo Conductor and lakeFS servers on loopback",
    load: async () => (await importLazily<typeof import("./dev.ts")>("cli/dev.ts")).command,
  },
  init: {
    summary: "scaffold a task project (deno.json, example task and test)",
    load: async () => (await importLazily<typeof import("./init.ts")>("cli/init.ts")).command,
  },
};

// Hidden subcommands: the runtime re-invokes this same program (or binary) for its children.
const HIDDEN: Record<string, CommandLoader> = {
  "__broker": async () =>
    (await importLazily<typeof import("./_child.ts")>("cli/_child.ts")).brokerCommand,
  "__executor": async () =>
    (await importLazily<typeof import("./_child.ts")>("cli/_child.ts")).executorCommand,
};

/** The top-level help text. */
export function topHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const lines = Object.entries(COMMANDS).map(([name, { summary }]) =>
    `  ${name.padEnd(width)}  ${summary}`
  );
  return [
    `perago ${VERSION}: Conductor task workers for versioned lakeFS workspaces`,
    "",
    "Usage: perago <command> [options]",
    "",
    "Commands:",
    ...lines,
    "",
    "Options:",
    "  -h, --help     show help (also after a command; perago help <command>)",
    "  -V, --version  print the version",
    "",
    "Configuration comes from .env in the working directory and the environment;",
    "see the README's configuration table.",
  ].join("\n");
}

/** Runs the CLI with `args` and returns the exit code. Never throws. */
export async function main(args: string[]): Promise<number> {
  return await (await prepareMain(args))();
}

/**
 * The CLI with `args` in two steps: loads what the command needs (its module) and returns a
 * function that runs it and resolves with the exit code. Neither step throws. `main.ts`
 * awaits the first at its top level and runs the second after its own evaluation has ended
 * (see there why).
 *
 * @example
 * ```ts
 * const run = await prepareMain(["--version"]);
 * const code = await run(); // prints "perago <version>"; 0
 * ```
 */
export async function prepareMain(args: string[]): Promise<() => Promise<number>> {
  const [name, ...rest] = args;
  // `perago help <command>` is `perago <command> --help`.
  if (name === "help" && rest[0] !== undefined && Object.hasOwn(COMMANDS, rest[0])) {
    return await prepareMain([rest[0], "--help"]);
  }
  if (name === undefined || name === "-h" || name === "--help" || name === "help") {
    return () => {
      console.log(topHelp());
      return Promise.resolve(name === undefined ? 1 : 0);
    };
  }
  if (name === "-V" || name === "--version" || name === "version") {
    return () => {
      console.log(`perago ${VERSION}`);
      return Promise.resolve(0);
    };
  }
  const load = COMMANDS[name]?.load ?? HIDDEN[name];
  if (load === undefined) {
    return () =>
      Promise.resolve(fail(`unknown command "${name}"; run "perago --help" for the list`));
  }
  let command: Command;
  try {
    command = await load();
  } catch (error) {
    return () => Promise.resolve(fail(error));
  }
  if (rest.includes("-h") || rest.includes("--help")) {
    return () => {
      console.log(command.help);
      return Promise.resolve(0);
    };
  }
  return async () => {
    try {
      return await command.run(rest);
    } catch (error) {
      return fail(error);
    }
  };
}
