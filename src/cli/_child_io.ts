// deno-lint-ignore-file no-console
/**
 * Process set-up shared by the hidden child commands (`__broker`, `__executor`): stdout is
 * the protocol channel, so anything printed goes to stderr; terminal signals are ignored
 * (Ctrl-C reaches the whole process group: the supervisor drains and tells its children
 * when to stop).
 *
 * @module
 */

/** Sends `console.log`/`info`/`debug` (stdout in Deno) to stderr, like `console.error`. */
export function keepStdoutForProtocol(): void {
  const toStderr = (...args: unknown[]) => console.error(...args);
  console.log = toStderr;
  console.info = toStderr;
  console.debug = toStderr;
}

/** Ignores SIGINT and SIGTERM; the supervisor's `shutdown` message stops the child. */
export function ignoreTerminalSignals(): void {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(signal, () => {});
    } catch {
      // not supported on this platform (Windows has no SIGTERM listener)
    }
  }
}
