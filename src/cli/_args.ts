/**
 * Argument parsing for the CLI commands, on `node:util` `parseArgs` (a built-in: no CLI
 * dependency needed for this handful of flags).
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "./_fail.ts";

/**
 * Parses `args` strictly; unknown flags or missing values become a {@linkcode UsageError}
 * that names the command and points to `--help`.
 */
export function parseCommandArgs<T extends NonNullable<ParseArgsConfig["options"]>>(
  command: string,
  args: string[],
  options: T,
): ReturnType<
  typeof parseArgs<{ args: string[]; options: T; allowPositionals: true; strict: true }>
> {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`${command}: ${usageDetail(error)}; run "perago ${command} --help"`);
  }
}

/**
 * The part of a `parseArgs` error worth printing, on one line: an unknown option by its name
 * alone (node's message goes on about positionals after `--`), anything else as node's first
 * line words it (its further lines are hints such as `--concurrency=-XYZ`).
 */
function usageDetail(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const unknown = /^Unknown option '([^']+)'/.exec(message);
  if ((error as { code?: string }).code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && unknown) {
    return `unknown option ${unknown[1]}`;
  }
  return (message.split("\n")[0] ?? message).trim().replace(/\.$/, "");
}
