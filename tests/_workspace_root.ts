/**
 * What a test may find in a worker's workspace root after a run: the supervisor's lock and the
 * host's object cache belong there; anything else is an attempt directory left behind.
 */

/** Entries of the workspace root that perago keeps there between attempts. */
export const WORKSPACE_ROOT_FIXTURES: readonly string[] = [
  ".perago-supervisor.lock",
  ".perago-cache",
];

/** Entries of `workspaceRoot` other than {@linkcode WORKSPACE_ROOT_FIXTURES}; `[]` when missing. */
export async function leftoverAttemptDirs(workspaceRoot: string): Promise<string[]> {
  try {
    const entries = await Array.fromAsync(Deno.readDir(workspaceRoot));
    return entries.map((entry) => entry.name).filter((name) =>
      !WORKSPACE_ROOT_FIXTURES.includes(name)
    ).sort();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}
