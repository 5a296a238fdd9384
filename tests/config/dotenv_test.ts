import assert from "node:assert/strict";
import { join } from "node:path";
import { parseDotenv, readDotenv } from "../../src/config/dotenv.ts";

const cases: Array<[string, string, Record<string, string>]> = [
  ["plain pair", "A=1", { A: "1" }],
  ["blank lines and comments skipped", "\n  \n# A=1\n  # B=2\nC=3", { C: "3" }],
  ["line without = skipped", "JUSTAWORD\nD=4", { D: "4" }],
  ["export prefix dropped", "export E=5", { E: "5" }],
  ["export prefix with extra spaces", "export    F = 6", { F: "6" }],
  ["split at the first =", "G=a=b=c", { G: "a=b=c" }],
  ["key and value trimmed", "  H  =   spaced value   ", { H: "spaced value" }],
  ["double quotes stripped", 'I="quoted # not a comment"', { I: "quoted # not a comment" }],
  ["single quotes stripped", "J='single'", { J: "single" }],
  ["whitespace inside quotes kept", "K=' x '", { K: " x " }],
  ["mismatched quotes kept", "L=\"half'", { L: "\"half'" }],
  ["a lone quote kept", 'M="', { M: '"' }],
  ["only one pair stripped", "N=\"'x'\"", { N: "'x'" }],
  ["empty value", "O=", { O: "" }],
  ["empty quoted value", 'P=""', { P: "" }],
  ["later lines win", "Q=1\nQ=2", { Q: "2" }],
  ["CRLF line ends", "R=1\r\nS=2\r\n", { R: "1", S: "2" }],
  ["inline # is part of the value", "T=a # b", { T: "a # b" }],
  ["exported is not export", "exported=1", { exported: "1" }],
];

for (const [name, text, expected] of cases) {
  Deno.test(`parseDotenv: ${name}`, () => {
    assert.deepEqual(parseDotenv(text), expected);
  });
}

Deno.test("readDotenv reads a file and returns {} for a missing one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, ".env");
    assert.deepEqual(await readDotenv(path), {});
    await Deno.writeTextFile(path, "export A='x y'\n# c\nB=2\n");
    assert.deepEqual(await readDotenv(path), { A: "x y", B: "2" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readDotenv throws for a directory instead of pretending it is empty", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(dir, ".env"));
    await assert.rejects(() => readDotenv(join(dir, ".env")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
