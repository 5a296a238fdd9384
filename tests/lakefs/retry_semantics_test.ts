/**
 * Non-idempotent calls whose first answer is lost (the server acted, the client saw a dropped
 * connection) are retried and still report success with the right result.
 */
import assert from "node:assert/strict";
import { LakeFsClient } from "../../src/lakefs/client.ts";
import { LakeFsConflictError } from "../../src/lakefs/errors.ts";
import { ACCESS_KEY_ID, body, SECRET, withLakeFs } from "./_helpers.ts";

/** A proxy that forwards everything, but loses the answer of the next matching request. */
function lossyProxy(upstream: string) {
  let loseNext: ((req: Request, url: URL) => boolean) | undefined;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const payload = req.body ? new Uint8Array(await req.arrayBuffer()) : undefined;
    const res = await fetch(upstream + url.pathname + url.search, {
      method: req.method,
      headers: req.headers,
      ...(payload ? { body: payload } : {}),
    });
    if (loseNext?.(req, url)) {
      loseNext = undefined;
      await res.body?.cancel();
      return new Response(
        new ReadableStream({ start: (c) => c.error(new Error("answer lost")) }),
      );
    }
    return res;
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    lose(match: (req: Request, url: URL) => boolean) {
      loseNext = match;
    },
    close: () => server.shutdown(),
  };
}

Deno.test("retries after a lost answer: createRepository, createBranch, commit, merge, deleteBranch", async () => {
  await withLakeFs(async ({ server }) => {
    const proxy = lossyProxy(server.url);
    try {
      const client = new LakeFsClient({
        endpointUrl: proxy.url,
        accessKeyId: ACCESS_KEY_ID,
        secretAccessKey: SECRET,
        retry: { attempts: 3, baseDelayMs: 1 },
      });
      const post = (suffix: string) => (req: Request, url: URL) =>
        req.method === "POST" && url.pathname.endsWith(suffix);

      proxy.lose(post("/repositories"));
      const repo = await client.createRepository("lossy", "local://b/lossy");
      assert.equal(repo.id, "lossy");
      assert.equal(server.stats.count("createRepository"), 2);

      const main = await client.getBranch("lossy", "main");
      proxy.lose(post("/branches"));
      assert.equal(await client.createBranch("lossy", "stage", "main"), main.commit_id);
      assert.equal(server.stats.count("createBranch"), 2);
      // A genuine conflict (other source) is still a conflict.
      await client.uploadObject("lossy", "stage", "f", body("1"));
      const staged = await client.commit("lossy", "stage", "c0");
      await assert.rejects(client.createBranch("lossy", "stage", "main"), LakeFsConflictError);

      await client.uploadObject("lossy", "stage", "g", body("2"));
      proxy.lose(post("/commits"));
      const commit = await client.commit("lossy", "stage", "c1", { metadata: { a: "b" } });
      assert.equal(commit.message, "c1");
      assert.deepEqual(commit.parents, [staged.id]);

      // lakeFS merges a squash source again as a second commit, so the retry must find the
      // merge that landed instead of sending it again.
      proxy.lose(post("/merge/main"));
      const ref = await client.merge("lossy", "stage", "main", {
        squashMerge: true,
        message: "publish",
        metadata: { perago_execution_id: "e-1" },
      });
      assert.equal((await client.getBranch("lossy", "main")).commit_id, ref);
      assert.equal(server.stats.count("mergeIntoBranch"), 1);
      const published = [];
      for await (const c of client.logCommits("lossy", "main")) {
        if (c.message === "publish") published.push(c.id);
      }
      assert.deepEqual(published, [ref]);

      proxy.lose((req) => req.method === "DELETE");
      await client.deleteBranch("lossy", "stage");
      assert.equal(server.stats.count("deleteBranch"), 2);
    } finally {
      await proxy.close();
    }
  }, { repo: false });
});
