import type { Bench } from "./_common.ts";

/** Not written yet. */
export const bench: Bench = {
  name: "startup",
  description: "not written yet",
  run() {
    return Promise.reject(new Error("not written yet"));
  },
};
