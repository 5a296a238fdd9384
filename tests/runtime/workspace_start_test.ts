import {
  assertNormalizePublishes,
  NORMALIZE_EXAMPLE,
  registerNormalizeTaskDef,
} from "./_normalize_example.ts";
import { startStack, startWorker } from "./_stack.ts";
import { realServers, skipNote } from "../_real_servers.ts";

Deno.test("start: a writable workspace task publishes to lakeFS from a narrowed executor", async () => {
  await using stack = await startStack();
  await registerNormalizeTaskDef(stack);
  await using worker = startWorker({ ...stack, modulePath: NORMALIZE_EXAMPLE });
  await assertNormalizePublishes(stack, worker);
});

const real = realServers();
Deno.test({
  name: "start: the writable example publishes on the real Conductor and real lakeFS",
  ignore: skipNote("writable example (process mode) on the real servers", real),
  async fn() {
    if ("skip" in real) return;
    await using stack = await startStack({ servers: real });
    await registerNormalizeTaskDef(stack);
    await using worker = startWorker({ ...stack, modulePath: NORMALIZE_EXAMPLE });
    await assertNormalizePublishes(stack, worker);
  },
});
