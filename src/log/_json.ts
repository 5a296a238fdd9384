/**
 * Turns any log property value into a plain JSON value (cycles, errors, bigints and class
 * instances included), so a log line never throws and never loses an error's message.
 *
 * @module
 */

/** A plain JSON value. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonValue[]
  | { [key: string]: JsonValue };

const MAX_DEPTH = 20;

/**
 * Converts `value` to a plain JSON value. `toJSON` is honoured (so a `Secret` gives `"***"`),
 * errors become `{name, message, stack, cause, ...}`, cycles `"[Circular]"`.
 */
export function toJsonValue(value: unknown, seen: Set<object> = new Set(), depth = 0): JsonValue {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      return Number.isFinite(value) ? value : String(value);
    case "bigint":
      return value.toString();
    case "symbol":
      return value.toString();
    case "function":
      return `[Function ${value.name || "anonymous"}]`;
  }
  const object = value as object;
  if (seen.has(object)) return "[Circular]";
  if (depth >= MAX_DEPTH) return "[Object]";
  seen.add(object);
  try {
    if (object instanceof Error) return errorToJson(object, seen, depth);
    const toJSON = (object as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === "function") {
      return toJsonValue(toJSON.call(object), seen, depth + 1);
    }
    if (Array.isArray(object)) return object.map((item) => toJsonValue(item, seen, depth + 1));
    if (object instanceof Map) {
      const result: Record<string, JsonValue> = {};
      for (const [key, item] of object) result[String(key)] = toJsonValue(item, seen, depth + 1);
      return result;
    }
    if (object instanceof Set) return [...object].map((item) => toJsonValue(item, seen, depth + 1));
    if (ArrayBuffer.isView(object)) {
      return `[${object.constructor.name}(${object.byteLength} bytes)]`;
    }
    const result: Record<string, JsonValue> = {};
    for (const [key, item] of Object.entries(object)) {
      if (item !== undefined) result[key] = toJsonValue(item, seen, depth + 1);
    }
    return result;
  } finally {
    seen.delete(object);
  }
}

function errorToJson(error: Error, seen: Set<object>, depth: number): JsonValue {
  const result: Record<string, JsonValue> = { name: error.name, message: error.message };
  if (error.stack !== undefined) result.stack = error.stack;
  if (error.cause !== undefined) result.cause = toJsonValue(error.cause, seen, depth + 1);
  for (const [key, item] of Object.entries(error)) {
    if (!(key in result) && item !== undefined) result[key] = toJsonValue(item, seen, depth + 1);
  }
  return result;
}

/**
 * Replaces every occurrence of each literal in `secrets` by `***`, in every string of a JSON
 * value (keys included). `secrets` must be sorted longest first.
 */
export function scrubJson(value: JsonValue, secrets: readonly string[]): JsonValue {
  // Most lines hold no secret: looking costs no allocation, a copy of every line did.
  if (secrets.length === 0 || !holdsSecret(value, secrets)) return value;
  if (typeof value === "string") return scrubText(value, secrets);
  if (Array.isArray(value)) return value.map((item) => scrubJson(item, secrets));
  if (value !== null && typeof value === "object") {
    const result: Record<string, JsonValue> = {};
    for (const [key, item] of Object.entries(value)) {
      result[scrubText(key, secrets)] = scrubJson(item, secrets);
    }
    return result;
  }
  return value;
}

/** Whether any string of `value` (keys included) contains one of `secrets`. */
function holdsSecret(value: JsonValue, secrets: readonly string[]): boolean {
  if (typeof value === "string") return secrets.some((secret) => value.includes(secret));
  if (Array.isArray(value)) return value.some((item) => holdsSecret(item, secrets));
  if (value !== null && typeof value === "object") {
    for (const key in value) {
      if (holdsSecret(key, secrets) || holdsSecret(value[key]!, secrets)) return true;
    }
  }
  return false;
}

/** Replaces every occurrence of each literal in `secrets` (longest first) by `***`. */
export function scrubText(text: string, secrets: readonly string[]): string {
  let result = text;
  for (const secret of secrets) {
    if (result.includes(secret)) result = result.replaceAll(secret, "***");
  }
  return result;
}
