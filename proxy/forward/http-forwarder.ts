/**
 * Forwards one request to one upstream endpoint over undici's dispatch API: request body streamed
 * up, response streamed down, backpressure both ways, nothing buffered whole.
 *
 * It implements undici's callback handler (onConnect/onHeaders/onData/onComplete/onError), which
 * undici 7's clients call natively; the controller-style API is wrapped into it per request.
 *
 * Failure rules: before the response head is written, a failure becomes a JSON error response;
 * after it, the client connection is destroyed, so a client never mistakes a cut-off body for a
 * complete one. A client that goes away aborts the upstream request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { Instance } from '../registry/instance.js';
import { clientResponseHeaders } from './headers.js';
import { errorBody, toProxyError, type ProxyError } from './errors.js';
import type { UpstreamPools } from './upstream-pools.js';

/** Told once per forwarded request, when it has ended one way or another. */
export interface ForwardOutcome {
  /** Status sent to the client (0 when the connection was cut after the head). */
  status: number;
  /** Set when the upstream failed (before or after the head). */
  error: ProxyError | undefined;
  /** The client went away before the response completed. */
  clientAborted: boolean;
}

export type ForwardDone<C> = (context: C, outcome: ForwardOutcome) => void;

class ClientGoneError extends Error {
  readonly code = 'PUTTU_CLIENT_GONE';
}

class ForwardHandler<C> implements Dispatcher.DispatchHandler {
  status = 0;
  abort: ((err?: Error) => void) | undefined;
  resume: (() => void) | undefined;
  settled = false;
  clientGone = false;

  constructor(
    readonly res: ServerResponse,
    readonly context: C,
    readonly done: ForwardDone<C>,
  ) {}

  onConnect(abort: (err?: Error) => void): void {
    if (this.clientGone) abort(new ClientGoneError('client went away'));
    else this.abort = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx: the proxy answers Expect itself; others are informational
    this.status = statusCode;
    this.resume = resume;
    this.res.writeHead(statusCode, statusText || undefined, clientResponseHeaders(rawHeaders));
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.res.write(chunk)) return true;
    // Paused by undici until the client drains its buffer.
    this.res.once('drain', this.resume!);
    return false;
  }

  onComplete(): void {
    this.res.end();
    this.finish(undefined);
  }

  onError(err: Error): void {
    if (this.clientGone) {
      this.finish(undefined);
      return;
    }
    const error = toProxyError(err);
    if (this.res.headersSent) {
      // Mid-body: cut the connection; a truncated body must not look complete.
      this.status = 0;
      this.res.destroy();
    } else {
      this.status = error.status;
      sendError(this.res, error);
    }
    this.finish(error);
  }

  finish(error: ProxyError | undefined): void {
    if (this.settled) return;
    this.settled = true;
    this.done(this.context, { status: this.status, error, clientAborted: this.clientGone });
  }

  /** The client connection closed; if the response has not completed, abort the upstream. */
  readonly onClientClose = (): void => {
    if (this.settled || this.res.writableFinished) return;
    this.clientGone = true;
    this.abort?.(new ClientGoneError('client went away'));
  };
}

export interface ForwardRequest {
  req: IncomingMessage;
  res: ServerResponse;
  instance: Instance;
  path: string;
  headers: string[];
  /** Whether the request carries a body (Content-Length > 0 or Transfer-Encoding). */
  hasBody: boolean;
}

export class HttpForwarder {
  readonly #pools: UpstreamPools;

  constructor(pools: UpstreamPools) {
    this.#pools = pools;
  }

  forward<C>(r: ForwardRequest, context: C, done: ForwardDone<C>): void {
    const handler = new ForwardHandler(r.res, context, done);
    r.res.once('close', handler.onClientClose);
    const method = r.req.method ?? 'GET';
    this.#pools.get(r.instance.origin).dispatch(
      {
        origin: r.instance.origin,
        path: r.path,
        method,
        headers: r.headers,
        body: r.hasBody ? r.req : null,
        // Retrying is the forwarder's decision (per method), never undici's silently.
        idempotent: false,
        blocking: method !== 'HEAD',
      },
      handler,
    );
  }
}

/** Writes a JSON error response (no internal details: the body is `errorBody`). */
export function sendError(res: ServerResponse, error: ProxyError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody(error);
  res.writeHead(error.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}
