/**
 * What a Taskcluster call's HTTP response said that taskcluster-client does
 * not pass on: it throws a new Error with only the body, code and status of
 * a failed response, so its Retry-After is read from Node's diagnostics
 * channels instead. A request is tied to the call that made it when it is
 * created (in the call's async context), and its response's Retry-After is
 * written to that call, whichever socket carried it (a keep-alive socket
 * reused by consecutive calls too). No patch to the library.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { subscribe } from 'node:diagnostics_channel';

export interface CallResponse {
  /** The Retry-After header of the last response, if it had one. */
  retryAfter?: string;
  /** When that response arrived (ms since the epoch): an HTTP-date Retry-After counts from then. */
  receivedAt?: number;
}

const currentCall = new AsyncLocalStorage<CallResponse>();
const callOfRequest = new WeakMap<object, CallResponse>();
let watching = false;

function watchResponses(): void {
  if (watching) return;
  watching = true;
  subscribe('http.client.request.start', (message) => {
    const call = currentCall.getStore();
    if (call !== undefined) callOfRequest.set((message as { request: object }).request, call);
  });
  subscribe('http.client.response.finish', (message) => {
    const { request, response } = message as {
      request: object;
      response: { headers: Record<string, string | string[] | undefined> };
    };
    const call = callOfRequest.get(request);
    if (call === undefined) return;
    const header = response.headers['retry-after'];
    call.retryAfter = Array.isArray(header) ? header[0] : header;
    call.receivedAt = Date.now();
  });
}

/** Run `operation` (one client call), recording what its HTTP responses said into `response`. */
export function recordingResponse<T>(response: CallResponse, operation: () => Promise<T>): Promise<T> {
  watchResponses();
  return currentCall.run(response, operation);
}
