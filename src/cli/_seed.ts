/**
 * Seeds the demo repository (`perago dev --seed`, `deno task demo`): a lakeFS repository with
 * the sample files of src/devstack/sample_files.ts, committed on its default branch.
 *
 * @module
 */
import type { Commit, LakeFsApi } from "../lakefs/api.ts";
import { SAMPLE_FILES } from "../devstack/sample_files.ts";

/** Creates `repo` with the sample files committed on `branch`; returns the commit. */
export async function seedSampleRepository(
  lakefs: LakeFsApi,
  options: { repo: string; branch: string; storageNamespace: string; signal?: AbortSignal },
): Promise<Commit> {
  const { repo, branch, signal } = options;
  await lakefs.createRepository(repo, options.storageNamespace, branch, signal);
  for (const [path, content] of Object.entries(SAMPLE_FILES)) {
    const bytes = new TextEncoder().encode(content);
    await lakefs.uploadObject(repo, branch, path, () => Promise.resolve(bytes), {
      size: bytes.byteLength,
      ...(signal ? { signal } : {}),
    });
  }
  return await lakefs.commit(repo, branch, "seed sample files", signal ? { signal } : {});
}
