// deno-lint-ignore-file no-console
/**
 * The CLI's single way to report a failure: `error: <message>` on stderr and an exit code.
 * Stack traces only with PERAGO_DEBUG=1.
 *
 * @module
 */

/** An error whose message is already written for people; printed without a stack. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Whether PERAGO_DEBUG=1 asks for stack traces (read without requiring env permission). */
export function debugEnabled(): boolean {
  try {
    return Deno.env.get("PERAGO_DEBUG") === "1";
  } catch {
    return false;
  }
}

/**
 * Prints `error: <message>` (plus the stack under PERAGO_DEBUG=1) and returns exit code 1,
 * for commands to `return fail(error)`.
 */
export function fail(error: unknown): number {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`error: ${message.split("\n").join("\n  ")}`);
  if (debugEnabled() && error instanceof Error && error.stack) console.error(error.stack);
  return 1;
}
