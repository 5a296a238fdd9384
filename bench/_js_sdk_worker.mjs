// The Conductor JavaScript SDK worker of the throughput benchmark (run with Node).
// Usage: node bench/_js_sdk_worker.mjs <sdkDir> <conductorUrl> <taskType> <concurrency> [pollIntervalMs]
// Completes every task of <taskType> with {result: {n}} until SIGTERM.
import { createRequire } from "node:module";
import { join } from "node:path";

const [sdkDir, serverUrl, taskType, concurrency, pollInterval] = process.argv.slice(2);
const require = createRequire(join(sdkDir, "package.json"));
const { orkesConductorClient, TaskManager } = require("@io-orkes/conductor-javascript");

const client = await orkesConductorClient({ serverUrl });
const worker = {
  taskDefName: taskType,
  concurrency: Number(concurrency),
  ...(pollInterval ? { pollInterval: Number(pollInterval) } : {}),
  execute: (task) =>
    Promise.resolve({
      status: "COMPLETED",
      outputData: { result: { n: task.inputData?.params?.n ?? 0 } },
    }),
};
const silent = {
  info() {},
  debug() {},
  warn() {},
  error: (...a) => process.stderr.write(a.join(" ") + "\n"),
};
const manager = new TaskManager(client, [worker], {
  logger: silent,
  options: { workerID: "js-sdk-bench", concurrency: Number(concurrency) },
});
manager.startPolling();
process.stdout.write(JSON.stringify({ ready: true }) + "\n");
process.on("SIGTERM", async () => {
  await manager.stopPolling();
  process.exit(0);
});
