/**
 * The demo Conductor (in the benchmark's process), with the benchmark task registered and a
 * one-task workflow for it; helpers to queue workflows and read task timings.
 *
 * @module
 */
import { join } from "node:path";
import {
  type ConductorServerHandle,
  startConductorServer,
} from "../src/devstack/conductor/server.ts";
import { loadTask } from "../src/task/loader.ts";
import { buildTaskDef } from "../src/task/taskdef.ts";
import { ROOT } from "./_common.ts";

/** Path of the benchmark's workspace-free task module. */
export const NOOP_MODULE = join(ROOT, "bench", "_noop_task.ts");
/** Its task name. */
export const NOOP_TASK = "bench_noop";
/** The one-task workflow. */
export const NOOP_WORKFLOW = "bench_noop_flow";

/** Starts the demo Conductor with the TaskDef and workflow registered. */
export async function startBenchConductor(): Promise<ConductorServerHandle> {
  const server = await startConductorServer({ sweepIntervalMs: 1000 });
  const { task } = await loadTask(NOOP_MODULE);
  server.engine.registerTaskDefs([{ ...buildTaskDef(task), responseTimeoutSeconds: 600 }]);
  server.engine.upsertWorkflowDefs([{
    name: NOOP_WORKFLOW,
    version: 1,
    schemaVersion: 2,
    ownerEmail: "bench@example.com",
    tasks: [{
      name: NOOP_TASK,
      taskReferenceName: "noop",
      type: "SIMPLE",
      inputParameters: { params: { n: "${workflow.input.n}" } },
    }],
    outputParameters: { n: "${noop.output.result.n}" },
  }]);
  return server;
}

/** Queues `count` workflows (one task each); returns their ids. */
export function queueWorkflows(server: ConductorServerHandle, count: number): string[] {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    ids.push(server.engine.startWorkflow({ name: NOOP_WORKFLOW, input: { n: i } }));
  }
  return ids;
}

/** Timings of one task, epoch ms (from the server's Task record). */
export interface TaskTimes {
  status: string;
  scheduledTime: number;
  startTime: number;
  endTime: number;
}

/** The task of each workflow (first task), with its timings. */
export function taskTimes(server: ConductorServerHandle, workflowIds: string[]): TaskTimes[] {
  return workflowIds.map((id) => {
    const workflow = server.engine.getWorkflow(id, true) as { tasks: Record<string, unknown>[] };
    const task = workflow.tasks[0] ?? {};
    return {
      status: String(task.status ?? "MISSING"),
      scheduledTime: Number(task.scheduledTime ?? 0),
      startTime: Number(task.startTime ?? 0),
      endTime: Number(task.endTime ?? 0),
    };
  });
}

/**
 * How many of the workflows are COMPLETED. Reads the engine's state directly: the API view
 * (`getWorkflow`) clones every field, and thousands of clones every 50 ms in the server's
 * own process would slow the server the benchmark measures through.
 */
export function completedCount(server: ConductorServerHandle, workflowIds: string[]): number {
  const workflows = server.engine.state.workflows;
  let n = 0;
  for (const id of workflowIds) if (workflows[id]?.status === "COMPLETED") n++;
  return n;
}
