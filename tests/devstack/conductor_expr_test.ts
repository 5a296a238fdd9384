/** Parameter expressions of the demo Conductor (`${workflow.input.x}`, `${ref.output.y}`). */
import assert from "node:assert/strict";
import { lookup, resolveParams } from "../../src/devstack/conductor/_expr.ts";

const ctx = {
  workflow: {
    input: { x: 5, nested: { deep: "D" }, list: [{ v: 1 }, { v: 2 }] },
    workflowId: "w1",
  },
  tasks: { a: { output: { y: "Y", obj: { k: true } }, input: { p: 1 }, status: "COMPLETED" } },
};

Deno.test("expr: whole-string references keep their type; missing ones are null", () => {
  assert.deepEqual(
    resolveParams({
      x: "${workflow.input.x}",
      deep: "${workflow.input.nested.deep}",
      item: "${workflow.input.list[1].v}",
      obj: "${a.output.obj}",
      all: "${a.output}",
      id: "${workflow.workflowId}",
      missing: "${workflow.input.nope.deeper}",
      unknownRef: "${zzz.output.y}",
      literal: 7,
      list: ["${a.output.y}", "plain"],
    }, ctx),
    {
      x: 5,
      deep: "D",
      item: 2,
      obj: { k: true },
      all: { y: "Y", obj: { k: true } },
      id: "w1",
      missing: null,
      unknownRef: null,
      literal: 7,
      list: ["Y", "plain"],
    },
  );
});

Deno.test("expr: references inside longer strings become text", () => {
  assert.equal(resolveParams("pre-${workflow.input.x}-${a.output.y}-post", ctx), "pre-5-Y-post");
  assert.equal(resolveParams("m=${workflow.input.none}", ctx), "m=null");
  assert.equal(resolveParams("o=${a.output.obj}", ctx), 'o={"k":true}');
});

Deno.test("expr: resolved values are copies, not shared with the source", () => {
  const out = resolveParams({ o: "${a.output.obj}" }, ctx) as { o: { k: boolean } };
  out.o.k = false;
  assert.equal(lookup("a.output.obj.k", ctx), true);
});
