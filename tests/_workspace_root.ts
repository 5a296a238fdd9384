/**
 * What a test may find in a worker's workspace root after a run: the supervisor's lock, the
 * host's object cache and its warm pool belong there; anything else is an attempt directory
 * left behind.
 */

/** Entries of the workspace root that perago keeps there between attempts. */
export const WORKSPACE_ROOT_FIXTURES: readonly string[] = [
  ".perago-supervisor.lock",
  ".perago-cache",
  ".perago-warm",
];

/**
 * Where an attempt directory goes to be removed after its outcome was reported; the folder is
 * removed by its last removal (or by the workspace sweep when its owner died).
 */
export const TRASH_DIR = ".perago-trash";

async function entryNames(workspaceRoot: string): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(workspaceRoot))).map((entry) => entry.name);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

/**
 * Entries of `workspaceRoot` other than {@linkcode WORKSPACE_ROOT_FIXTURES}; `[]` when missing.
 * Attempt directories are removed in the background after their outcome is reported, so a
 * {@linkcode TRASH_DIR} present is waited for (up to `trashWaitMs`) and counted only when it
 * outlives that wait.
 */
export async function leftoverAttemptDirs(
  workspaceRoot: string,
  options: { trashWaitMs?: number } = {},
): Promise<string[]> {
  const deadline = Date.now() + (options.trashWaitMs ?? 10_000);
  let names = await entryNames(workspaceRoot);
  while (names.includes(TRASH_DIR) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    names = await entryNames(workspaceRoot);
  }
  return names.filter((name) => !WORKSPACE_ROOT_FIXTURES.includes(name)).sort();
}
