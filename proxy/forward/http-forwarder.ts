/**
 * Forwards one request over undici's dispatch API: request body streamed up, response streamed
 * down, backpressure both ways, nothing buffered whole. An `Exchange` is one client request and is
 * itself the undici handler of each attempt (undici 7's clients call this callback interface
 * natively; the controller-style one is wrapped into it per request).
 *
 * Retries go to another instance, never silently inside undici, and only when safe:
 * - nothing was written yet (connection refused, connect timeout: undici calls onConnect right
 *   before writing the request, so an error before it means the request never left) → any method,
 *   the untouched body stream is handed to the next attempt;
 * - otherwise only idempotent methods (RFC 9110 §9.2.2) without a body, and only before the
 *   response head reached the client;
 * - always within maxAttempts and the retry budget.
 *
 * Failure after the response head was written destroys the client connection, so a cut-off body
 * never looks complete. A client that goes away aborts the upstream request.
 */
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { type ClientRequest, type ClientResponse, isHttp1 } from './client.js';
import type { Balancer } from '../balancer/balancer.js';
import type { Inflight } from '../health/inflight.js';
import type { OutlierDetector } from '../health/outliers.js';
import type { Instance } from '../registry/instance.js';
import { clientResponseHeaders } from './headers.js';
import { ClientGoneError, UpstreamTimeoutError, errorBody, toProxyError, type PuttuError } from '../errors.js';
import type { RetryBudget } from './retry-budget.js';
import { upstreamPath } from './route.js';
import { pickInstance } from './resolve.js';
import { UNTRACKED, type Deadlines, type Phase, type Timed } from './deadlines.js';
import type { UpstreamPools } from './upstream-pools.js';
import type { CompiledPolicy } from '../traffic/router.js';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** The exchange a client response belongs to, for the one shared 'close' listener below. */
const kExchange = Symbol('puttu.exchange');
type TrackedResponse = ClientResponse & { [kExchange]?: Exchange };

/** One function for every response (no closure per request): the client connection closed. */
function onResponseClose(this: TrackedResponse): void {
  this[kExchange]?.clientClosed();
}

export interface ForwarderDeps {
  pools: UpstreamPools;
  /** The strategy for a service (per-service overrides resolved once, not per request). */
  balancerFor: (service: string) => Balancer;
  inflight: Inflight;
  outliers: OutlierDetector;
  budget: RetryBudget;
  /** Attempts per request, the first included. */
  maxAttempts: number;
  /** Told once per exchange, when it has ended one way or another. */
  onDone: (exchange: Exchange) => void;
  /** Told of every failed attempt. */
  onAttemptFailed: (exchange: Exchange, error: PuttuError) => void;
  /** Monotonic milliseconds, for per-instance answer times. */
  now: () => number;
  /** Head and body deadlines of the attempts without a streamed body (the others: undici's timers). */
  deadlines: Deadlines;
  /** A service's traffic policy, if it has one (traffic/policies.ts). */
  policyFor?: (service: string) => CompiledPolicy | undefined;
  /** `--explain on`: every response carries Server-Timing and X-Puttu-Attempts. */
  explain?: boolean;
  /**
   * Told the length of each body the proxy moves in buffers it does not reuse: the response's
   * chunks but those going back to `pools.readBuffers`, and a request body read whole (the CLI's
   * runtime tuning paces collections by it; a streamed request body is not told).
   */
  onBodyBytes?: (bytes: number) => void;
}

export interface ExchangeInit {
  req: ClientRequest;
  res: ClientResponse;
  service: string;
  /** Every instance of the service in the current snapshot. */
  instances: readonly Instance[];
  rest: string;
  query: string;
  headers: string[];
  /**
   * The request body (null: none, Content-Length 0 included): Node's request stream, or the
   * whole body the fast lane read (in one buffer, or in the buffers of its reads).
   */
  body: Readable | Buffer | Buffer[] | null;
  requestId: string;
}

export class Exchange implements Dispatcher.DispatchHandler, Timed {
  readonly req: ClientRequest;
  readonly res: ClientResponse;
  readonly service: string;
  readonly method: string;
  readonly requestId: string;
  readonly instances: readonly Instance[];
  readonly #f: ForwarderDeps;
  readonly #rest: string;
  readonly #query: string;
  readonly #headers: string[];
  readonly #body: Readable | Buffer | Buffer[] | null;
  readonly #balancer: Balancer;
  /** The service's traffic policy and the request's sticky key under it (undefined: none). */
  readonly #policy: CompiledPolicy | undefined;
  readonly #key: string | undefined;
  readonly #maxAttempts: number;
  /** Explain: Server-Timing and X-Puttu-Attempts go out with the head (ResponseFacts). */
  readonly #explain: boolean;
  extraFields: string[] | undefined = undefined;
  /** The service policy's limit on the response head (Timed); 0: the shared one. */
  headMs = 0;
  #started = 0;
  /** The instance of the current (last) attempt. */
  instance: Instance | undefined;
  attempts = 0;
  /** Status sent to the client; 0 when the connection was cut after the head. */
  status = 0;
  /** The last upstream failure, if the exchange ended on one. */
  error: PuttuError | undefined;
  clientGone = false;
  /** Free for the caller (metrics handles, start time). */
  context: unknown;
  #tried: Instance[] | undefined;
  #written = false;
  #attemptStart = 0;
  #abort: ((err?: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  #settled = false;
  /** The response's declared Content-Length (-1: none), set by the header pass. */
  contentLength = -1;
  /** Whether part of the body went out with res.write() (so it is not sent whole by res.end()). */
  #wroteBody = false;
  /** Deadline state (Timed), for the attempts `deadlines` watches. */
  phase: Phase = UNTRACKED;
  since = 0;
  prevTimed: Timed | undefined = undefined;
  nextTimed: Timed | undefined = undefined;
  /** Whether `deadlines` watches this exchange's attempts (no streamed request body). */
  readonly #timed: boolean;
  #onDrain: (() => void) | undefined;
  /** Whether the response is HTTP/1.1 (client.ts, isHttp1), asked once rather than per chunk. */
  readonly #http1: boolean;

  constructor(deps: ForwarderDeps, init: ExchangeInit) {
    this.#f = deps;
    this.req = init.req;
    this.res = init.res;
    this.service = init.service;
    this.method = init.req.method ?? 'GET';
    this.requestId = init.requestId;
    this.instances = init.instances;
    this.#query = init.query;
    this.#headers = init.headers;
    this.#body = init.body;
    this.#http1 = isHttp1(init.res);
    this.#balancer = deps.balancerFor(init.service);
    this.#timed = init.body === null || Buffer.isBuffer(init.body) || Array.isArray(init.body);
    const policy = deps.policyFor?.(init.service);
    this.#policy = policy;
    if (policy === undefined) {
      this.#rest = init.rest;
      this.#key = undefined;
      this.#maxAttempts = deps.maxAttempts;
      this.#explain = deps.explain === true;
    } else {
      this.#rest = policy.stripPrefix ? init.rest : `/${init.service}${init.rest}`;
      this.#key = policy.keyOf(init.req.rawHeaders);
      this.#maxAttempts = policy.maxAttempts ?? deps.maxAttempts;
      this.#explain = policy.explain || deps.explain === true;
      this.headMs = policy.upstreamTimeoutMs ?? 0;
    }
  }

  start(): void {
    const body = this.#body;
    if (this.#f.onBodyBytes !== undefined && body !== null) {
      if (Buffer.isBuffer(body)) this.#f.onBodyBytes(body.length);
      else if (Array.isArray(body)) for (const b of body) this.#f.onBodyBytes(b.length);
    }
    (this.res as TrackedResponse)[kExchange] = this;
    this.res.on('close', onResponseClose);
    this.#f.budget.request();
    if (this.#explain) this.#started = this.#f.now();
    this.#attempt(pickInstance(this.#balancer, this.#f.outliers, this.service, this.instances, undefined, this.#policy, this.#key)!);
  }

  #attempt(instance: Instance): void {
    this.instance = instance;
    this.attempts++;
    this.#f.inflight.inc(instance);
    this.#attemptStart = this.#f.now();
    this.#written = false;
    this.#abort = undefined;
    this.#f.pools.get(instance).dispatch(
      {
        origin: instance.origin,
        path: upstreamPath(instance.api, this.#rest, this.#query),
        method: this.method,
        headers: this.#headers,
        // undici takes any iterable of buffers (its types list fewer): it writes them in turn.
        body: this.#body as Buffer | Readable | null,
        // Retrying is decided here, per method, never silently by undici.
        idempotent: false,
        blocking: this.method !== 'HEAD',
        // 0: no undici timers, `deadlines` watches; undefined: the pool's (undici's) timers.
        headersTimeout: this.#timed ? 0 : this.#policy?.upstreamTimeoutMs,
        bodyTimeout: this.#timed ? 0 : undefined,
      },
      this,
    );
  }

  onConnect(abort: (err?: Error) => void): void {
    if (this.clientGone) {
      abort(new ClientGoneError());
      return;
    }
    this.#written = true;
    this.#abort = abort;
    if (this.#timed) this.#f.deadlines.track(this);
  }

  /** A deadline passed (Timed): abort the attempt as undici's own timer would. */
  deadlinePassed(): void {
    this.#abort?.(new UpstreamTimeoutError());
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx: the proxy answers Expect itself; others are informational
    this.#f.outliers.success(this.instance!);
    this.#f.inflight.observe(this.instance!, this.#f.now() - this.#attemptStart);
    this.status = statusCode;
    this.#resume = resume;
    this.#f.deadlines.headArrived(this);
    if (this.#explain) this.extraFields = this.#explainFields();
    // The fast lane copies the upstream's field bytes as they are; Node's response takes strings.
    if (this.res.writeUpstreamHead?.(statusCode, statusText, rawHeaders, this.requestId, this) !== true) {
      this.res.writeHead(statusCode, statusText || undefined, clientResponseHeaders(rawHeaders, this.requestId, this));
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.#f.deadlines.bodyMoved(this);
    // A read into one of the pools' reused buffers goes back once the client has its bytes
    // (read-buffers.ts); only for HTTP/1.1 responses, whose writes finish with the socket's.
    const giveBack = this.#http1 ? this.#f.pools.readBuffers.returnAfter(chunk, !this.#wroteBody) : undefined;
    // The runtime's collection pacing counts the body bytes that become garbage.
    if (giveBack === undefined) this.#f.onBodyBytes?.(chunk.length);
    // The usual small response: the whole declared body in the first chunk. One res.end(chunk)
    // sends head and body together, without a separate write and end.
    if (!this.#wroteBody && chunk.length === this.contentLength) {
      this.res.end(chunk, giveBack);
      return true;
    }
    this.#wroteBody = true;
    if (this.res.write(chunk, giveBack)) return true;
    // undici pauses this response until the client has drained its buffer; the body deadline
    // waits too (the upstream is not the one stalling).
    this.#f.deadlines.paused(this);
    this.res.once('drain', (this.#onDrain ??= () => this.#drained()));
    return false;
  }

  #drained(): void {
    this.#f.deadlines.resumed(this);
    this.#resume!();
  }

  onComplete(trailers?: unknown): void {
    this.#f.deadlines.untrack(this);
    this.#f.inflight.dec(this.instance!);
    this.res.setTrailers?.(trailers as Record<string, unknown> | null);
    if (!this.res.writableEnded) this.res.end();
    this.#finish();
  }

  onError(err: Error): void {
    this.#f.deadlines.untrack(this);
    if (this.clientGone) {
      this.#f.inflight.dec(this.instance!);
      return this.#finish();
    }
    const error = toProxyError(err);
    this.#f.inflight.dec(this.instance!, error.upstream);
    const instance = this.instance!;
    if (error.upstream) this.#f.outliers.failure(instance, this.instances);
    this.#f.onAttemptFailed(this, error);
    if (!this.res.headersSent) {
      const next = this.#retryable(error) ? this.#nextInstance(instance) : undefined;
      if (next !== undefined) return this.#attempt(next);
      this.status = error.status;
      sendError(this.res, error, this.requestId, this.#explain ? this.#explainFields() : undefined);
    } else {
      // Mid-body: cut the connection; a truncated body must not look complete.
      this.status = 0;
      this.res.destroy();
    }
    this.error = error;
    this.#finish();
  }

  #retryable(error: PuttuError): boolean {
    if (!error.upstream || this.attempts >= this.#maxAttempts) return false;
    const safe = !this.#written || (IDEMPOTENT.has(this.method) && this.#body === null);
    return safe && this.#f.budget.tryRetry();
  }

  /** Another instance than those tried: routable ones first, then any. */
  #nextInstance(failed: Instance): Instance | undefined {
    (this.#tried ??= []).push(failed);
    return pickInstance(this.#balancer, this.#f.outliers, this.service, this.instances, this.#tried, this.#policy, this.#key);
  }

  /** Server-Timing (the instance and the proxy's time to its answer) and the attempts made. */
  #explainFields(): string[] {
    const ms = Math.round((this.#f.now() - this.#started) * 10) / 10;
    // A quoted-string of printable ASCII: nothing in a znode name can end the field or the head.
    const id = this.instance!.id.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '');
    return ['server-timing', `puttu;desc="${id}";dur=${ms}`, 'x-puttu-attempts', String(this.attempts)];
  }

  #finish(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#f.onDone(this);
  }

  /** The client connection closed; if the response has not completed, abort the upstream. */
  clientClosed(): void {
    if (this.#settled || this.res.writableFinished) return;
    this.clientGone = true;
    this.#abort?.(new ClientGoneError());
  }
}

/** Writes a JSON error response (no internal details: the body is `errorBody`). */
export function sendError(res: ClientResponse, error: PuttuError, requestId?: string, extraFields?: readonly string[]): void {
  if (res.writeError?.(error, requestId) === true) return;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody(error);
  const fields = [
    'content-type',
    'application/json; charset=utf-8',
    'content-length',
    String(Buffer.byteLength(body)),
    'cache-control',
    'no-store',
  ];
  if (requestId !== undefined) fields.push('x-request-id', requestId);
  if (extraFields !== undefined) fields.push(...extraFields);
  res.writeHead(error.status, undefined, fields);
  res.end(body);
}
