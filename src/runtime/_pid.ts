/**
 * Whether a process id is alive on this host, via `kill(pid, 0)` (no signal is sent).
 * Requires `--allow-run` (Deno's permission for sending signals).
 *
 * @module
 */
import process from "node:process";

/**
 * Returns `true` when a process with this pid exists (also when it belongs to another user:
 * EPERM), `false` when it does not (ESRCH) or the pid is not a positive integer.
 *
 * @example
 * ```ts
 * isPidAlive(Deno.pid); // true
 * ```
 */
export function isPidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ESRCH") return false;
    if (code === "EPERM") return true;
    throw error;
  }
}
