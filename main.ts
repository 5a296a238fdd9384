/**
 * perago's command line: `deno run -A main.ts <command>` is `perago <command>`, and the
 * compiled binary runs this same entry point.
 *
 * @module
 */
import { prepareMain } from "./src/cli/main.ts";

if (import.meta.main) {
  // The command's module is loaded under this top-level await, and the command runs after
  // this module has finished evaluating, not under `Deno.exit(await main(...))`: with the
  // entry's top-level await pending for the process's whole life (as a worker process's
  // `perago start`, broker or executor is), or with the command's module still loading when
  // the entry finished, Deno kept about 4.5 MiB more of the memory it used loading the
  // program's modules (measured in an idle executor process: malloc heap 7.6 -> 3.1 MiB,
  // RSS 56.3 -> 51.5 MiB; the supervisor and the broker likewise).
  const run = await prepareMain(Deno.args);
  // A never-settled top-level await would exit 1; so does an event loop that runs dry first.
  Deno.exitCode = 1;
  run().then((code) => Deno.exit(code));
}
