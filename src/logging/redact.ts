import { isJsonObject, type JsonObject, type JsonValue } from '../json.js';

export const REDACTED = '<redacted>';

/**
 * Replaces every known secret string with a marker. Every log line, error
 * message and dump goes through one of these before it leaves the process.
 */
export class Redactor {
  private readonly secrets = new Set<string>();
  private pattern: RegExp | undefined;

  /**
   * Remember a secret. Strings shorter than `minLength` are ignored: they
   * cannot be told apart from ordinary text, and a one-character "secret"
   * would shred every line.
   */
  add(secret: string | undefined, minLength = 4): void {
    if (secret === undefined || secret.length < minLength || this.secrets.has(secret)) return;
    this.secrets.add(secret);
    // Longest first, so a secret containing another one is replaced whole.
    const alternatives = [...this.secrets]
      .sort((a, b) => b.length - a.length)
      .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    this.pattern = new RegExp(alternatives.join('|'), 'g');
  }

  redact(text: string): string {
    return this.pattern === undefined ? text : text.replace(this.pattern, REDACTED);
  }

  /** Redact every string (keys included) inside a JSON value. */
  redactValue<T extends JsonValue>(value: T): T {
    if (this.pattern === undefined) return value;
    return this.redactDeep(value) as T;
  }

  private redactDeep(value: JsonValue): JsonValue {
    if (typeof value === 'string') return this.redact(value);
    if (Array.isArray(value)) return value.map((item) => this.redactDeep(item));
    if (isJsonObject(value)) {
      const result: JsonObject = {};
      for (const [key, item] of Object.entries(value)) {
        Object.defineProperty(result, this.redact(key), {
          value: this.redactDeep(item),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return result;
    }
    return value;
  }
}
