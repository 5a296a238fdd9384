/**
 * A real Prometheus text parser for the tests: the official Python client's
 * (`prometheus_client.parser.text_string_to_metric_families`), in a virtualenv under
 * `.tools/prom-venv` made on first use (python3 and PyPI needed; the tests using it are
 * skipped with a printed reason when neither a ready venv nor python3 is there).
 */
const ROOT = new URL("../", import.meta.url).pathname;
const VENV = `${ROOT}.tools/prom-venv`;
const PYTHON = `${VENV}/bin/python`;
const PACKAGE = "prometheus-client==0.26.0";

const SCRIPT = `
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": family.name, "type": family.type, "samples": [
        {"name": s.name, "labels": s.labels,
         "value": s.value if math.isfinite(s.value) else str(s.value)}
        for s in family.samples]})
print(json.dumps(out))
`;

/** One sample as the parser read it. */
export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** One family as the parser read it (`name` without `_total` for counters). */
export interface ParsedFamily {
  name: string;
  type: string;
  samples: ParsedSample[];
}

async function run(command: string, args: string[], stdin?: string) {
  const child = new Deno.Command(command, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const output = await child.output();
  return {
    ok: output.success,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

let ready: Promise<string | undefined> | undefined;

/** Makes the venv if needed; resolves `undefined` when ready, else why it is not. */
export function prometheusParserProblem(): Promise<string | undefined> {
  ready ??= (async () => {
    const probe = await run(PYTHON, ["-c", "import prometheus_client.parser"]).catch(() => null);
    if (probe?.ok) return undefined;
    const venv = await run("python3", ["-m", "venv", VENV]).catch((e) => ({
      ok: false,
      stderr: String(e),
      stdout: "",
    }));
    if (!venv.ok) return `python3 -m venv failed: ${venv.stderr.trim().slice(0, 300)}`;
    const pip = await run(`${VENV}/bin/pip`, ["install", "-q", PACKAGE]);
    if (!pip.ok) return `pip install ${PACKAGE} failed: ${pip.stderr.trim().slice(0, 300)}`;
    return undefined;
  })();
  return ready;
}

/** Parses Prometheus text with the official client's parser; throws on a parse error. */
export async function parsePrometheusText(text: string): Promise<ParsedFamily[]> {
  const problem = await prometheusParserProblem();
  if (problem !== undefined) throw new Error(`no Prometheus parser: ${problem}`);
  const result = await run(PYTHON, ["-c", SCRIPT], text);
  if (!result.ok) throw new Error(`prometheus_client could not parse the text: ${result.stderr}`);
  return JSON.parse(result.stdout) as ParsedFamily[];
}

/** The sum of the samples `name` whose labels include `labels`; 0 when there are none. */
export function sampleValue(
  families: readonly ParsedFamily[],
  name: string,
  labels: Record<string, string> = {},
): number {
  let sum = 0;
  for (const family of families) {
    for (const sample of family.samples) {
      if (sample.name !== name) continue;
      if (Object.entries(labels).every(([k, v]) => sample.labels[k] === v)) {
        sum += Number(sample.value);
      }
    }
  }
  return sum;
}
