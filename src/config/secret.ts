/**
 * A string that must never be printed: credentials read from the configuration.
 *
 * @module
 */

const MASK = "***";

/**
 * Holds a secret string. Every way of turning it into text (`String()`, template literals,
 * `JSON.stringify`, `Deno.inspect`, `node:util.inspect`) gives a mask; only
 * {@linkcode Secret.reveal} returns the value, so a revealed secret is easy to grep for.
 * The value lives in a `#private` field: no enumerable property holds it.
 *
 * @example
 * ```ts
 * const secret = new Secret("hunter2");
 * `${secret}`; // "***"
 * secret.reveal(); // "hunter2"
 * ```
 */
export class Secret {
  readonly #value: string;

  /** Wraps `value`. */
  constructor(value: string) {
    this.#value = value;
  }

  /** The secret value itself; pass it straight to where it is needed, never to a log. */
  reveal(): string {
    return this.#value;
  }

  /** Always `"***"`. */
  toString(): string {
    return MASK;
  }

  /** Always `"***"`, so `JSON.stringify` masks it. */
  toJSON(): string {
    return MASK;
  }

  /** `Secret(***)` for `Deno.inspect` and `console.log`. */
  [Symbol.for("Deno.customInspect")](): string {
    return `Secret(${MASK})`;
  }

  /** `Secret(***)` for `node:util.inspect`. */
  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `Secret(${MASK})`;
  }
}
