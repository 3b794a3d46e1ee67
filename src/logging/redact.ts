import { isJsonObject, type JsonObject, type JsonValue } from '../json.js';

export const REDACTED = '<redacted>';

/**
 * Replaces every known secret string with a marker. Every log line, error
 * message and dump goes through one of these before it leaves the process.
 */
export class Redactor {
  private readonly secrets = new Set<string>();
  /** Secrets that stop mattering at a time (ms since the epoch): superseded credentials. */
  private readonly retiring = new Map<string, number>();
  private pattern: RegExp | undefined;
  private list: string[] = [];

  /**
   * Remember a secret. Strings shorter than `minLength` are ignored: they
   * cannot be told apart from ordinary text, and a one-character "secret"
   * would shred every line.
   */
  add(secret: string | undefined, minLength = 4): void {
    if (secret === undefined || secret.length < minLength || this.secrets.has(secret)) return;
    this.secrets.add(secret);
    this.forgetRetired();
    this.rebuild();
  }

  /**
   * A secret that stops mattering at `at` (superseded credentials, valid
   * until they expire): forgotten once that time has passed, so a run that
   * renews its credentials for weeks does not redact an ever longer list.
   */
  retire(secret: string | undefined, at: number): void {
    if (secret !== undefined && this.secrets.has(secret)) this.retiring.set(secret, at);
  }

  private forgetRetired(now = Date.now()): void {
    for (const [secret, at] of this.retiring) {
      if (at > now) continue;
      this.retiring.delete(secret);
      this.secrets.delete(secret);
    }
  }

  private rebuild(): void {
    // Longest first, so a secret containing another one is replaced whole.
    const alternatives = [...this.secrets]
      .sort((a, b) => b.length - a.length)
      .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    this.pattern = alternatives.length === 0 ? undefined : new RegExp(alternatives.join('|'), 'g');
    this.list = [...this.secrets];
  }

  /** Whether the text contains a secret (indexOf beats a regex for a handful of secrets). */
  private mentionsSecret(text: string): boolean {
    for (const secret of this.list) if (text.includes(secret)) return true;
    return false;
  }

  redact(text: string): string {
    return this.pattern === undefined || !this.mentionsSecret(text) ? text : text.replace(this.pattern, REDACTED);
  }

  /** Redact every string (keys included) inside a JSON value; copies only when a secret is present. */
  redactValue<T extends JsonValue>(value: T): T {
    if (this.pattern === undefined || !this.containsSecret(value)) return value;
    return this.redactDeep(value) as T;
  }

  /**
   * Redact a value parsed from the JSON text `raw`. When `raw` has no
   * backslash, every string in the value (keys too) appears verbatim in it,
   * so one scan of the raw text decides; otherwise the value is walked.
   * This keeps log forwarding, hundreds of thousands of lines a second, cheap.
   */
  redactParsed<T extends JsonValue>(value: T, raw: string | undefined): T {
    if (this.pattern === undefined) return value;
    if (raw !== undefined && !raw.includes('\\') && !this.mentionsSecret(raw)) return value;
    return this.redactValue(value);
  }

  /** A scan without allocation: the common case on the log-forwarding hot path. */
  private containsSecret(value: JsonValue): boolean {
    if (typeof value === 'string') return this.mentionsSecret(value);
    if (Array.isArray(value)) return value.some((item) => this.containsSecret(item));
    if (isJsonObject(value)) {
      for (const key in value) {
        if (this.containsSecret(key) || this.containsSecret(value[key]!)) return true;
      }
    }
    return false;
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
