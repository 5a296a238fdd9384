import assert from "node:assert/strict";
import { Ajv } from "ajv";
import { fileURLToPath as fromFileUrl } from "node:url";
import { z } from "zod";
import { defineTask } from "../../src/task/define.ts";
import { SchemaConversionError, toInlineJsonSchema } from "../../src/task/json_schema.ts";
import { loadTask } from "../../src/task/loader.ts";
import { buildTaskDef, renderTaskDef, taskDefWarnings } from "../../src/task/taskdef.ts";
import type { TaskDef as ConductorTaskDef } from "../../src/conductor/api.ts";
import type { TaskDefinition } from "../../src/task/types.ts";

const KEY_ORDER = [
  "name",
  "ownerEmail",
  "description",
  "retryCount",
  "retryLogic",
  "retryDelaySeconds",
  "maxRetryDelaySeconds",
  "backoffJitterMs",
  "totalTimeoutSeconds",
  "timeoutPolicy",
  "timeoutSeconds",
  "responseTimeoutSeconds",
  "pollTimeoutSeconds",
  "concurrentExecLimit",
  "rateLimitPerFrequency",
  "rateLimitFrequencyInSeconds",
  "inputKeys",
  "outputKeys",
  "inputSchema",
  "outputSchema",
];

const EXAMPLES = ["normalize_text", "text_stats", "word_count", "csv_totals"];
const examplePath = (name: string) =>
  fromFileUrl(new URL(`../../examples/${name}.ts`, import.meta.url));

/**
 * Walks a schema (telling schema keywords from data such as `required` or `default`) and
 * asserts it has no title/$ref/$defs/$schema and that every object schema is closed (true of
 * the examples, whose nested objects are output-side or strict).
 */
function assertCleanSchema(schema: unknown, where: string): void {
  const visit = (node: unknown, path: string, isSchema: boolean) => {
    if (Array.isArray(node)) {
      node.forEach((item, i) => visit(item, `${path}[${i}]`, isSchema));
      return;
    }
    if (node === null || typeof node !== "object") return;
    const record = node as Record<string, unknown>;
    if (isSchema) {
      for (const banned of ["title", "$ref", "$defs", "$schema", "$id", "definitions"]) {
        assert.ok(!(banned in record), `${where}${path} has ${banned}`);
      }
      if (record.type === "object") {
        assert.equal(record.additionalProperties, false, `${where}${path} is open`);
      }
    }
    for (const [key, value] of Object.entries(record)) {
      if (!isSchema) visit(value, `${path}.${key}`, false);
      else if (key === "properties") {
        for (const [name, sub] of Object.entries(value as object)) {
          visit(sub, `${path}.properties.${name}`, true);
        }
      } else if (["default", "const", "enum", "examples", "required"].includes(key)) {
        visit(value, `${path}.${key}`, false);
      } else visit(value, `${path}.${key}`, true);
    }
  };
  visit(schema, "", true);
}

/** The output's workspace: one closed spelling, `ref_type` by default. */
const WORKSPACE_SCHEMA = {
  type: "object",
  properties: {
    repository: { type: "string", minLength: 1 },
    branch: { type: "string", minLength: 1 },
    ref_type: { const: "commit" },
    ref: { type: "string", minLength: 1 },
  },
  required: ["repository", "branch", "ref_type", "ref"],
  additionalProperties: false,
};
/**
 * The input's workspace: `ref_type` or perago for Python's `refType`, exactly one, and the
 * optional `prefix` that narrows the attempt's scope.
 */
const WORKSPACE_INPUT_SCHEMA = {
  type: "object",
  properties: {
    repository: { type: "string", minLength: 1 },
    branch: { type: "string", minLength: 1 },
    ref_type: { const: "commit" },
    refType: { const: "commit" },
    ref: { type: "string", minLength: 1 },
    prefix: { type: "string" },
  },
  required: ["repository", "branch", "ref"],
  oneOf: [{ required: ["ref_type"] }, { required: ["refType"] }],
  additionalProperties: false,
};

for (const name of EXAMPLES) {
  Deno.test(`extract ${name}: key order, keys, schema shape`, async () => {
    const { task } = await loadTask(examplePath(name));
    const def = buildTaskDef(task);
    assert.deepEqual(Object.keys(def), KEY_ORDER);
    assert.equal(def.name, name);
    const hasWorkspace = task.workspace !== undefined;
    assert.deepEqual(def.inputKeys, hasWorkspace ? ["workspace", "params"] : ["params"]);
    assert.deepEqual(def.outputKeys, hasWorkspace ? ["workspace", "result"] : ["result"]);
    for (
      const [key, io, schemaName] of [
        ["inputSchema", "input", `${name}.input`],
        ["outputSchema", "output", `${name}.output`],
      ] as const
    ) {
      const entry = def[key];
      assert.deepEqual(Object.keys(entry), ["name", "version", "type", "data"]);
      assert.equal(entry.name, schemaName);
      assert.equal(entry.version, 1);
      assert.equal(entry.type, "JSON");
      assert.deepEqual(Object.keys(entry.data), [
        "type",
        "properties",
        "required",
        "additionalProperties",
      ]);
      assert.equal(entry.data.type, "object");
      assert.equal(entry.data.additionalProperties, false);
      const keys = io === "input" ? def.inputKeys : def.outputKeys;
      assert.deepEqual(entry.data.required, keys);
      const properties = entry.data.properties as Record<string, unknown>;
      assert.deepEqual(Object.keys(properties), keys);
      if (hasWorkspace) {
        const expected = io === "input" ? WORKSPACE_INPUT_SCHEMA : WORKSPACE_SCHEMA;
        assert.deepEqual(properties.workspace, expected);
      }
      assertCleanSchema(entry.data, `${name}.${key}`);
    }
    const rendered = renderTaskDef(task);
    assert.ok(rendered.endsWith("}\n") && !rendered.endsWith("\n\n"));
    assert.equal(rendered, `${JSON.stringify(def, null, 2)}\n`);
    assert.equal(renderTaskDef(task), rendered);
  });
}

Deno.test("extract word_count: exact document", async () => {
  const { task } = await loadTask(examplePath("word_count"));
  const def = buildTaskDef(task);
  assert.deepEqual(def, {
    name: "word_count",
    ownerEmail: "perago-examples@example.com",
    description: "Counts the words and characters of a text",
    retryCount: 1,
    retryLogic: "FIXED",
    retryDelaySeconds: 1,
    maxRetryDelaySeconds: 0,
    backoffJitterMs: 0,
    totalTimeoutSeconds: 0,
    timeoutPolicy: "TIME_OUT_WF",
    timeoutSeconds: 0,
    responseTimeoutSeconds: 30,
    pollTimeoutSeconds: 0,
    concurrentExecLimit: 0,
    rateLimitPerFrequency: 0,
    rateLimitFrequencyInSeconds: 1,
    inputKeys: ["params"],
    outputKeys: ["result"],
    inputSchema: {
      name: "word_count.input",
      version: 1,
      type: "JSON",
      data: {
        type: "object",
        properties: {
          params: {
            type: "object",
            properties: { text: { type: "string" } },
            required: ["text"],
            additionalProperties: false,
          },
        },
        required: ["params"],
        additionalProperties: false,
      },
    },
    outputSchema: {
      name: "word_count.output",
      version: 1,
      type: "JSON",
      data: {
        type: "object",
        properties: {
          result: {
            type: "object",
            properties: {
              words: { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
              chars: { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
            },
            required: ["words", "chars"],
            additionalProperties: false,
          },
        },
        required: ["result"],
        additionalProperties: false,
      },
    },
  });
});

Deno.test("extract maps every control and limit onto the TaskDef", () => {
  const task = defineTask({
    name: "controlled",
    ownerEmail: "o@example.com",
    description: "",
    params: z.object({}),
    result: z.null(),
    controls: {
      retry: {
        count: 5,
        logic: "LINEAR_BACKOFF",
        delaySeconds: 7,
        maxDelaySeconds: 70,
        jitterMs: 250,
      },
      timeout: {
        policy: "ALERT_ONLY",
        seconds: 90,
        responseSeconds: 30,
        pollSeconds: 15,
        totalSeconds: 900,
      },
      limits: { concurrentExecLimit: 2, rateLimitPerFrequency: 4, rateLimitFrequencyInSeconds: 10 },
    },
    run: () => null,
  });
  const def = buildTaskDef(task as TaskDefinition);
  assert.deepEqual(
    KEY_ORDER.slice(3, 16).map((key) => [key, def[key as keyof typeof def]]),
    [
      ["retryCount", 5],
      ["retryLogic", "LINEAR_BACKOFF"],
      ["retryDelaySeconds", 7],
      ["maxRetryDelaySeconds", 70],
      ["backoffJitterMs", 250],
      ["totalTimeoutSeconds", 900],
      ["timeoutPolicy", "ALERT_ONLY"],
      ["timeoutSeconds", 90],
      ["responseTimeoutSeconds", 30],
      ["pollTimeoutSeconds", 15],
      ["concurrentExecLimit", 2],
      ["rateLimitPerFrequency", 4],
      ["rateLimitFrequencyInSeconds", 10],
    ],
  );
});

Deno.test("schemas: $refs are inlined, titles stripped, property names called title kept", () => {
  const Item = z.object({ n: z.number() }).meta({ id: "perago_test_Item", title: "An item" });
  const schema = z.object({
    title: z.string().describe("the document title"),
    first: Item,
    rest: z.array(Item),
    kind: z.enum(["a", "b"]).default("a"),
  }).meta({ title: "Params" }).strict();
  const json = toInlineJsonSchema(schema, "input");
  assert.deepEqual(json, {
    type: "object",
    properties: {
      title: { type: "string", description: "the document title" },
      // Only the top level is made strict; a nested z.object accepts extra keys on input.
      first: { type: "object", properties: { n: { type: "number" } }, required: ["n"] },
      rest: {
        type: "array",
        items: { type: "object", properties: { n: { type: "number" } }, required: ["n"] },
      },
      kind: { default: "a", type: "string", enum: ["a", "b"] },
    },
    required: ["title", "first", "rest"],
    additionalProperties: false,
  });
});

Deno.test("extract output is the same bytes in a fresh process", async () => {
  const taskdefUrl = new URL("../../src/task/taskdef.ts", import.meta.url).href;
  const loaderUrl = new URL("../../src/task/loader.ts", import.meta.url).href;
  const code = `
    import { renderTaskDef } from ${JSON.stringify(taskdefUrl)};
    import { loadTask } from ${JSON.stringify(loaderUrl)};
    const out = [];
    for (const name of ${JSON.stringify(EXAMPLES)}) {
      const { task } = await loadTask(${
    JSON.stringify(examplePath("x").replace(/x\.ts$/, ""))
  } + name + ".ts");
      out.push(renderTaskDef(task));
    }
    await Deno.stdout.write(new TextEncoder().encode(out.join("")));
  `;
  const run = async () => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--ext=ts", code],
      cwd: fromFileUrl(new URL("../../", import.meta.url)),
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    return new TextDecoder().decode(output.stdout);
  };
  const [first, second] = [await run(), await run()];
  let local = "";
  for (const name of EXAMPLES) local += renderTaskDef((await loadTask(examplePath(name))).task);
  assert.equal(first, second);
  assert.equal(first, local);
});

Deno.test("the extracted TaskDef is what the Conductor client registers", async () => {
  const { task } = await loadTask(examplePath("word_count"));
  // Compile-time check: assignable to the client's TaskDef without a cast.
  const def: ConductorTaskDef = buildTaskDef(task);
  assert.equal(def.name, "word_count");
});

Deno.test("toInlineJsonSchema names the problem for recursive and unrepresentable schemas", () => {
  const Tree = z.object({
    get kids() {
      return z.array(Tree);
    },
  });
  assert.throws(() => toInlineJsonSchema(Tree, "output"), (error: Error) => {
    assert.ok(error instanceof SchemaConversionError);
    assert.match(error.message, /recursive/);
    return true;
  });
  assert.throws(
    () => toInlineJsonSchema(z.bigint(), "input"),
    (error: Error) => error instanceof SchemaConversionError && /BigInt/i.test(error.message),
  );
});

Deno.test("extract: the input takes ref_type or refType, exactly one; the output the workers' spelling", async () => {
  const { task } = await loadTask(examplePath("normalize_text"));
  const base = { repository: "repo", branch: "main", ref: "c0ffee" };
  const cases = [
    ["inputSchema", "snake", { ref_type: true, refType: true }],
    ["outputSchema", "snake", { ref_type: true, refType: false }],
    ["outputSchema", "camel", { ref_type: false, refType: true }],
  ] as const;
  for (const [key, refStyle, accepts] of cases) {
    const def = buildTaskDef(task, { refStyle });
    // An independent reading of the JSON Schema: Ajv, a standard validator (zod's importer
    // drops `required` inside `oneOf`).
    const validate = new Ajv({ strict: false }).compile(def[key].data);
    const payload = key === "inputSchema" ? { params: {} } : {
      result: { filesNormalized: 0, filesScanned: 0 },
    };
    const ok = (workspace: Record<string, unknown>) => validate({ workspace, ...payload });
    const label = `${key} (${refStyle})`;
    assert.equal(ok({ ...base, ref_type: "commit" }), accepts.ref_type, `${label}: ref_type`);
    assert.equal(ok({ ...base, refType: "commit" }), accepts.refType, `${label}: refType`);
    assert.equal(ok({ ...base, ref_type: "commit", refType: "commit" }), false, `${label}: both`);
    assert.equal(ok(base), false, `${label}: neither`);
    assert.equal(ok({ ...base, ref_type: "branch" }), false, `${label}: not a commit`);
    assert.equal(ok({ ...base, refType: "branch" }), false, `${label}: not a commit`);
    const spelled = accepts.ref_type ? { ref_type: "commit" } : { refType: "commit" };
    assert.equal(ok({ ...base, ...spelled, extra: 1 }), false, `${label}: extra key`);
    assert.equal(ok({ ...base, ...spelled, ref: "" }), false, `${label}: empty ref`);
    assert.equal(
      ok({ ...base, ...spelled, prefix: "docs/a/" }),
      key === "inputSchema",
      `${label}: prefix (input only)`,
    );
  }
});

function budgetTask(
  responseSeconds: number,
  options: { readOnly?: boolean } = {},
): TaskDefinition {
  return defineTask({
    name: "budgeted",
    ownerEmail: "t@example.com",
    description: "d",
    params: z.object({}),
    result: z.object({}),
    workspace: { readOnly: options.readOnly ?? false },
    controls: {
      timeout: { responseSeconds },
      publishBudget: {
        observedMergeP99Seconds: 20,
        safetyMarginSeconds: 10,
        lakefsMergeTimeoutSeconds: 45,
        conductorCompletionTimeoutSeconds: 15,
        workerShutdownGraceSeconds: 30,
        heartbeatIntervalSeconds: 10,
      },
    },
    run: () => ({}),
  }) as unknown as TaskDefinition;
}

Deno.test("taskDefWarnings: a publish budget longer than responseSeconds is named; the TaskDef keeps responseSeconds", () => {
  const short = budgetTask(60);
  assert.equal(short.controls.publishBudget?.responseTimeoutSeconds, 100);
  const [warning, ...rest] = taskDefWarnings(short);
  assert.deepEqual(rest, []);
  assert.match(warning!, /responseSeconds \(60\) is shorter than the publish budget it implies/);
  assert.match(
    warning!,
    /100 s = lakefsMergeTimeoutSeconds 45 \+ conductorCompletionTimeoutSeconds 15/,
  );
  assert.match(warning!, /raise timeout\.responseSeconds to at least 100/);
  assert.equal(buildTaskDef(short).responseTimeoutSeconds, 60);
  assert.deepEqual(taskDefWarnings(budgetTask(100)), []);
  assert.deepEqual(taskDefWarnings(budgetTask(600)), []);
  const [ignored] = taskDefWarnings(budgetTask(60, { readOnly: true }));
  assert.match(ignored!, /publishBudget is ignored: a read-only workspace task never publishes/);
});
