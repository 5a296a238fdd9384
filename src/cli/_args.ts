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
    throw new UsageError(
      `${command}: ${(error as Error).message}; run "perago ${command} --help"`,
    );
  }
}
