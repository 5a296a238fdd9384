/**
 * Resolution of Conductor parameter expressions: `${workflow.input.x}`, `${ref.output.y.z}`,
 * `${ref.input}`, `${workflow.workflowId}`, array indexes (`a[0]`), whole-string references
 * keeping their type, and references embedded in longer strings turned into text.
 *
 * @module
 */

/** What expressions can see: the workflow and each task by reference name. */
export interface ExprContext {
  workflow: Record<string, unknown>;
  tasks: Record<string, Record<string, unknown>>;
}

const WHOLE = /^\$\{([^{}]+)\}$/;
const EMBEDDED = /\$\{([^{}]+)\}/g;

function step(value: unknown, key: string): unknown {
  if (value === null || value === undefined) return undefined;
  if (Array.isArray(value) && /^\d+$/.test(key)) return value[Number(key)];
  if (typeof value === "object") return (value as Record<string, unknown>)[key];
  return undefined;
}

/** Looks up one dotted path such as `workflow.input.a[0].b`; `null` when missing. */
export function lookup(path: string, ctx: ExprContext): unknown {
  const parts = path.trim().replace(/\[(\d+)\]/g, ".$1").split(".").filter((p) => p !== "");
  const [head, ...rest] = parts;
  if (head === undefined) return null;
  let value: unknown = head === "workflow" ? ctx.workflow : ctx.tasks[head];
  for (const key of rest) value = step(value, key);
  return value === undefined ? null : value;
}

/** Resolves every expression inside `value` (objects and arrays recursively). */
export function resolveParams(value: unknown, ctx: ExprContext): unknown {
  if (typeof value === "string") {
    const whole = WHOLE.exec(value);
    if (whole) return structuredClone(lookup(whole[1]!, ctx));
    if (!value.includes("${")) return value;
    return value.replace(EMBEDDED, (_m, path: string) => {
      const found = lookup(path, ctx);
      if (found === null) return "null";
      return typeof found === "object" ? JSON.stringify(found) : String(found);
    });
  }
  if (Array.isArray(value)) return value.map((item) => resolveParams(item, ctx));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = resolveParams(item, ctx);
    return out;
  }
  return value;
}
