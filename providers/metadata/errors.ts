/**
 * The failures of a cloud's instance metadata service, sorted by what the
 * caller can do about them: wait and try again (transient), or not
 * (permanent; a missing value is one of those).
 */
import { StartWorkerError } from '../../src/errors.js';
import { isJsonObject } from '../../src/json.js';
import { HttpRequestError } from '../../src/util/http.js';

/** A metadata request that failed; `status` when the service answered. */
export class MetadataError extends StartWorkerError {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'MetadataError';
  }
}

/** Another attempt may succeed: throttling or a server-side error. */
export class MetadataTransientError extends MetadataError {
  constructor(message: string, status?: number) {
    super(message, status);
    this.name = 'MetadataTransientError';
  }
}

/** Another attempt will fail the same way: a refusal, or an answer that is not what was asked for. */
export class MetadataPermanentError extends MetadataError {
  constructor(message: string, status?: number) {
    super(message, status);
    this.name = 'MetadataPermanentError';
  }
}

/** The service has no such value (HTTP 404): an answer, not retried. */
export class MetadataNotFoundError extends MetadataPermanentError {
  constructor(message: string) {
    super(message, 404);
    this.name = 'MetadataNotFoundError';
  }
}

/** Worth retrying: no answer at all (timeout, refused, reset), or a transient status. */
export function isTransientMetadataError(err: unknown): boolean {
  return err instanceof HttpRequestError || err instanceof MetadataTransientError;
}

const SUMMARY_LENGTH = 200;

/**
 * What an error body says, for a message: a JSON `error` field, else the
 * text without markup, shortened; '' when it says nothing.
 */
export function summarizeBody(body: string): string {
  let text = body;
  try {
    const parsed: unknown = JSON.parse(body);
    if (isJsonObject(parsed) && typeof parsed['error'] === 'string') text = parsed['error'];
  } catch {
    // not JSON: the text itself
  }
  text = text
    .replace(/<[^>]*>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return text.length > SUMMARY_LENGTH ? `${text.slice(0, SUMMARY_LENGTH)}...` : text;
}
