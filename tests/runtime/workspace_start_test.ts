import { assertNormalizePublishes, NORMALIZE_EXAMPLE } from "./_normalize_example.ts";
import { startStack, startWorker } from "./_stack.ts";

Deno.test("start: a writable workspace task publishes to lakeFS from a narrowed executor", async () => {
  const stack = await startStack();
  const worker = startWorker({ ...stack, modulePath: NORMALIZE_EXAMPLE });
  try {
    await assertNormalizePublishes(stack, worker);
  } finally {
    worker.kill("SIGKILL");
    await worker.status;
    await stack.close();
  }
});
