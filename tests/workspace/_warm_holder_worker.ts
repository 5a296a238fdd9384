/** A Worker that retires one directory into the warm pool and keeps running. */
import { trashedDirsRemoved } from "../../src/workspace/attempt_dir.ts";
import { WarmPool } from "../../src/workspace/warm_pool.ts";

interface Job {
  root: string;
  dir: string;
  repository: string;
}

const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<Job>) => void) | null;
  postMessage(message: unknown): void;
};

scope.onmessage = async (event) => {
  const { root, dir, repository } = event.data;
  const pool = new WarmPool({ root, maxDirs: 4 });
  pool.retire(dir, { repository, scope: "data/", stampMs: 0, known: new Map() });
  await trashedDirsRemoved();
  scope.postMessage("retired");
  setInterval(() => {}, 60_000); // alive until terminated
};
