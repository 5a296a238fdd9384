import type { Bench } from "./_common.ts";

/** Not written yet. */
export const bench: Bench = {
  name: "throughput",
  description: "not written yet",
  run() {
    return Promise.reject(new Error("not written yet"));
  },
};
