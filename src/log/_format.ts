/**
 * The two renderings of a log record: one JSON object a line for the file, one readable line
 * for the console. Both scrub the literal secrets they are given.
 *
 * @module
 */
import type { LogRecord } from "../vendor/logtape.ts";
import { type JsonValue, scrubJson, scrubText, toJsonValue } from "./_json.ts";
import { isoUtc, twoDigits } from "../util/iso_time.ts";

/** Record properties lifted to top-level fields, with the property names accepted for each. */
const TASK_FIELDS: ReadonlyArray<readonly [field: string, names: readonly string[]]> = [
  ["workflow_instance_id", ["workflow_instance_id", "workflowInstanceId"]],
  ["task_id", ["task_id", "taskId"]],
  ["execution_id", ["execution_id", "executionId"]],
  ["retry_count", ["retry_count", "retryCount"]],
  ["task_def_name", ["task_def_name", "taskDefName"]],
  // The OpenTelemetry trace of the attempt, when traces are on.
  ["trace_id", ["trace_id"]],
  ["span_id", ["span_id"]],
];
const TASK_PROPERTY_NAMES = new Set(TASK_FIELDS.flatMap(([, names]) => names));

/** Renders the message parts of a record (template text interleaved with values). */
export function renderMessage(record: LogRecord): string {
  let text = "";
  record.message.forEach((part, index) => {
    if (index % 2 === 0) text += String(part);
    else text += renderValue(part);
  });
  return text;
}

function renderValue(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  if (value === undefined) return "undefined";
  const json = toJsonValue(value);
  return typeof json === "string" ? json : JSON.stringify(json);
}

/** The fields of one log line, in output order; `extra` always present (maybe empty). */
export type LineFields = Record<string, JsonValue> & { extra: Record<string, JsonValue> };

/**
 * The last record's fields: the JSONL file and the console render the same record one after
 * the other, and building (and scrubbing) its fields is most of either rendering.
 */
let last:
  | { record: LogRecord; workerId: string; secrets: readonly string[]; fields: LineFields }
  | undefined;

/**
 * Builds the fields of a record's line: task ids lifted, other properties under `extra`. The
 * result is shared with the next call for the same record: read it, never change it.
 */
export function lineFields(
  record: LogRecord,
  workerId: string,
  secrets: readonly string[],
): LineFields {
  if (last?.record === record && last.workerId === workerId && last.secrets === secrets) {
    return last.fields;
  }
  const fields: Record<string, JsonValue> = {
    ts: isoUtc(record.timestamp),
    level: record.level.toUpperCase(),
    message: renderMessage(record),
    category: record.category.join("."),
    worker_id: workerId,
  };
  for (const [field, names] of TASK_FIELDS) {
    for (const name of names) {
      const value = record.properties[name];
      if (value !== undefined && value !== null) {
        fields[field] = toJsonValue(value);
        break;
      }
    }
  }
  const extra: Record<string, JsonValue> = {};
  for (const [key, value] of Object.entries(record.properties)) {
    if (!TASK_PROPERTY_NAMES.has(key) && value !== undefined) extra[key] = toJsonValue(value);
  }
  fields.extra = extra;
  const scrubbed = scrubJson(fields, secrets) as LineFields;
  last = { record, workerId, secrets, fields: scrubbed };
  return scrubbed;
}

/** Formats a record as one JSON object and a newline. */
export function formatJsonLine(
  record: LogRecord,
  workerId: string,
  secrets: readonly string[],
): string {
  return JSON.stringify(lineFields(record, workerId, secrets)) + "\n";
}

/**
 * Formats a record for people: `HH:MM:SS.mmm LEVEL [worker_id] message key=value ...`
 * (local time), task ids first, then the other properties.
 */
export function formatConsoleLine(
  record: LogRecord,
  workerId: string,
  secrets: readonly string[],
): string {
  const fields = lineFields(record, workerId, secrets);
  const time = new Date(record.timestamp);
  // One string built by appending: the arrays, maps and joins of a line were garbage.
  let line = `${twoDigits(time.getHours())}:${twoDigits(time.getMinutes())}:${
    twoDigits(time.getSeconds())
  }.${
    String(time.getMilliseconds()).padStart(3, "0")
  } ${fields.level} [${fields.worker_id}] ${fields.message}`;
  for (const [field] of TASK_FIELDS) {
    const value = fields[field];
    if (value !== undefined) line += ` ${field}=${consoleValue(value)}`;
  }
  for (const key in fields.extra) line += ` ${key}=${consoleValue(fields.extra[key]!)}`;
  if (line.includes("\n")) line = line.replaceAll("\n", "\n    ");
  // Printed text is not parsed, so a raw replacement catches anything left.
  return scrubText(line, secrets) + "\n";
}

function consoleValue(value: JsonValue): string {
  if (typeof value === "string") {
    return value === "" || /[\s"=]/.test(value) ? JSON.stringify(value) : value;
  }
  return JSON.stringify(value);
}
