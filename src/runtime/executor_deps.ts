/**
 * The real task loading and attempt function of an executor process.
 *
 * @module
 */
import { loadTask } from "../task/loader.ts";
import type { TaskDefinition } from "../task/types.ts";
import { runAttempt } from "../workspace/attempt.ts";
import type { ExecutorProcessDeps } from "./executor.ts";

/** Loads task modules by task name and runs attempts with `runAttempt`. */
export const executorDeps: Pick<ExecutorProcessDeps, "loadTasks" | "runAttempt"> = {
  async loadTasks(modules) {
    const tasks = new Map<string, TaskDefinition>();
    for (const module of modules) {
      const { task } = await loadTask(module);
      tasks.set(task.name, task);
    }
    return tasks;
  },
  runAttempt,
};
