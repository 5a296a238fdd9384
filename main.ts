/**
 * perago's command line: `deno run -A main.ts <command>` is `perago <command>`, and the
 * compiled binary runs this same entry point.
 *
 * @module
 */
import { main } from "./src/cli/main.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
