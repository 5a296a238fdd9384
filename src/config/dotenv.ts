/**
 * The small `.env` reader: no interpolation, no multi-line values.
 *
 * @module
 */

// Every line boundary of Unicode text: CRLF, LF, CR, vertical tab, form feed, the file, group
// and record separators, NEL, and the line and paragraph separators.
// deno-lint-ignore no-control-regex
const LINE_BREAK = /\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/;

/**
 * Parses `.env` text: blank lines, lines starting with `#` and lines without `=` are skipped; an
 * optional `export ` prefix is dropped; the line is split at the first `=`; key and value are
 * trimmed; one pair of matching surrounding quotes (`'` or `"`) is removed from the value. Later
 * lines win.
 *
 * @example
 * ```ts
 * parseDotenv("export A='x y'\n# note\nB=1=2"); // { A: "x y", B: "1=2" }
 * ```
 */
export function parseDotenv(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const rawLine of text.split(LINE_BREAK)) {
    let line = rawLine.trim();
    if (line === "" || line.startsWith("#") || !line.includes("=")) continue;
    if (line.startsWith("export ")) line = line.slice("export ".length).trim();
    const at = line.indexOf("=");
    const key = line.slice(0, at).trim();
    values[key] = stripQuotes(line.slice(at + 1).trim());
  }
  return values;
}

/**
 * Reads and parses the `.env` file at `path` (see {@linkcode parseDotenv}); a missing file
 * gives `{}`. Other read errors (permission, a directory) are thrown.
 *
 * Requires `--allow-read` for `path`.
 *
 * @example
 * ```ts
 * const values = await readDotenv(".env");
 * ```
 */
export async function readDotenv(path: string | URL): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return {};
    throw error;
  }
  return parseDotenv(text);
}

function stripQuotes(value: string): string {
  const first = value[0];
  if (value.length >= 2 && (first === "'" || first === '"') && value.at(-1) === first) {
    return value.slice(1, -1);
  }
  return value;
}
