/**
 * Example workspace-free task: counts the words and characters of a text. Its Conductor
 * input is `{ params: { text } }` and its output `{ result: { words, chars } }`.
 *
 * A text longer than {@linkcode MAX_TEXT_CHARS} characters fails with `TaskTerminalError`
 * (`FAILED_WITH_TERMINAL_ERROR`: a retry would get the same text, so Conductor must not
 * retry).
 *
 * Try it: `perago run examples/word_count.ts --input examples/inputs/word_count.json`.
 *
 * @module
 */
import { defineTask, TaskTerminalError, z } from "../mod.ts";

/** The longest text accepted, in characters (code points). */
export const MAX_TEXT_CHARS = 100_000;

/** The task: export default, as every task module does. */
export default defineTask({
  name: "word_count",
  ownerEmail: "perago-examples@example.com",
  description: "Counts the words and characters of a text",
  params: z.object({ text: z.string() }),
  result: z.object({
    words: z.number().int().nonnegative(),
    chars: z.number().int().nonnegative(),
  }),
  controls: { retry: { count: 1, delaySeconds: 1 }, timeout: { responseSeconds: 30 } },
  run({ text }, ctx) {
    const chars = [...text].length;
    if (chars > MAX_TEXT_CHARS) {
      throw new TaskTerminalError(
        `word_count: text has ${chars} characters, more than ${MAX_TEXT_CHARS}; split it into smaller texts`,
      );
    }
    const words = text.split(/\s+/).filter((word) => word !== "").length;
    ctx.log.debug("counted", { words, chars });
    return { words, chars };
  },
});
