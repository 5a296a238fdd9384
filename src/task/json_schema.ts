/**
 * JSON Schema for the Conductor TaskDef: zod 4's `z.toJSONSchema`, made self-contained
 * (every `$ref` inlined, `$defs` dropped) and quiet (`title`, `$schema` and `$id` removed).
 *
 * @module
 */
import { z } from "../vendor/zod.ts";

/** A JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | {
  [key: string]: JsonValue;
};
/** A JSON Schema object. */
export type JsonSchema = { [key: string]: JsonValue };

/** The schema could not be converted: unrepresentable type (date, transform...) or a cycle. */
export class SchemaConversionError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SchemaConversionError";
  }
}

// Keywords whose value is a schema, a list of schemas, or a map from names to schemas.
const SCHEMA_KEYWORDS = new Set([
  "items",
  "additionalItems",
  "additionalProperties",
  "unevaluatedItems",
  "unevaluatedProperties",
  "contains",
  "propertyNames",
  "not",
  "if",
  "then",
  "else",
  "contentSchema",
]);
const SCHEMA_LIST_KEYWORDS = new Set(["prefixItems", "allOf", "anyOf", "oneOf"]);
const SCHEMA_MAP_KEYWORDS = new Set(["properties", "patternProperties", "dependentSchemas"]);
// Removed wherever a schema (not a property name or a data value) has them.
const DROPPED_KEYWORDS = new Set(["$schema", "$id", "$defs", "definitions", "title"]);

/**
 * Converts a zod schema to a self-contained JSON Schema object.
 *
 * @param io `"input"` for what a caller must send (params), `"output"` for what the schema
 * produces after parsing (the published result).
 * @throws {SchemaConversionError} when zod cannot represent the schema (dates, transforms in
 * output mode, ...) or the schema is recursive (a cycle cannot be inlined).
 * @example
 * ```ts
 * import { z } from "../vendor/zod.ts";
 *
 * toInlineJsonSchema(z.strictObject({ text: z.string() }), "input");
 * // { type: "object", properties: { text: { type: "string" } }, required: ["text"],
 * //   additionalProperties: false }
 * ```
 */
export function toInlineJsonSchema(schema: z.ZodType, io: "input" | "output"): JsonSchema {
  let raw: unknown;
  try {
    raw = z.toJSONSchema(schema, {
      target: "draft-2020-12",
      io,
      unrepresentable: "throw",
      reused: "inline",
      cycles: "ref",
    });
  } catch (error) {
    throw new SchemaConversionError(
      `cannot express the ${io} schema as JSON Schema: ${
        (error as Error).message
      }; use JSON-compatible zod types`,
      { cause: error },
    );
  }
  if (!isObject(raw)) {
    throw new SchemaConversionError(
      `cannot express the ${io} schema as JSON Schema: not an object`,
    );
  }
  return inlineSchema(raw, raw, ["#"]);
}

function inlineSchema(node: JsonSchema, root: JsonSchema, refStack: readonly string[]): JsonSchema {
  let current = node;
  let stack = refStack;
  // A node that is (or starts with) a $ref is replaced by its target; sibling keywords of the
  // $ref (zod puts e.g. `description` there) are kept on top of it.
  const ref = current.$ref;
  if (typeof ref === "string") {
    if (stack.includes(ref)) {
      throw new SchemaConversionError(
        `cannot express the schema as JSON Schema: it is recursive (${ref} refers to itself); Conductor's inputSchema/outputSchema must be self-contained, so use a non-recursive schema`,
      );
    }
    stack = [...stack, ref];
    const target = resolvePointer(root, ref);
    const { $ref: _ignored, ...siblings } = current;
    current = { ...inlineSchema(target, root, stack), ...cleanSiblings(siblings, root, stack) };
    return current;
  }
  return cleanSiblings(current, root, stack);
}

function cleanSiblings(node: JsonSchema, root: JsonSchema, stack: readonly string[]): JsonSchema {
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (DROPPED_KEYWORDS.has(key)) continue;
    if (SCHEMA_KEYWORDS.has(key) && isObject(value)) {
      out[key] = inlineSchema(value, root, stack);
    } else if (SCHEMA_LIST_KEYWORDS.has(key) && Array.isArray(value)) {
      out[key] = value.map((item) => (isObject(item) ? inlineSchema(item, root, stack) : item));
    } else if (SCHEMA_MAP_KEYWORDS.has(key) && isObject(value)) {
      const map: JsonSchema = {};
      for (const [name, sub] of Object.entries(value)) {
        map[name] = isObject(sub) ? inlineSchema(sub, root, stack) : sub;
      }
      out[key] = map;
    } else {
      out[key] = structuredClone(value);
    }
  }
  return out;
}

function resolvePointer(root: JsonSchema, ref: string): JsonSchema {
  if (!ref.startsWith("#")) {
    throw new SchemaConversionError(
      `cannot express the schema as JSON Schema: external reference ${ref}; use a self-contained schema`,
    );
  }
  let node: JsonValue = root;
  const pointer = ref.slice(1);
  if (pointer !== "") {
    for (const raw of pointer.split("/").slice(1)) {
      const token = decodeURIComponent(raw).replaceAll("~1", "/").replaceAll("~0", "~");
      if (!isObject(node) || !(token in node)) {
        throw new SchemaConversionError(
          `cannot express the schema as JSON Schema: dangling ${ref}`,
        );
      }
      node = node[token]!;
    }
  }
  if (!isObject(node)) {
    throw new SchemaConversionError(
      `cannot express the schema as JSON Schema: ${ref} is not a schema`,
    );
  }
  return node;
}

function isObject(value: unknown): value is JsonSchema {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
