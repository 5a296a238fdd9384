/**
 * The shape every `perago <command>` module exports as `command`. Kept apart from the
 * dispatcher (main.ts) so command modules and the dispatcher do not import each other.
 *
 * @module
 */

/** A CLI command: its help text and its entry point returning an exit code. */
export interface Command {
  /** Printed for `perago <command> --help`. */
  readonly help: string;
  /** Runs the command with the arguments after its name; resolves to the exit code. */
  run(args: string[]): Promise<number>;
}
