/**
 * HTTP/2 from clients: the sessions of both listeners (h2 by ALPN on TLS, prior-knowledge h2c on
 * the plain port, handed over by server.ts) and the adapter that turns each stream into the
 * ClientRequest / ClientResponse the one proxy handler takes, so an HTTP/2 request is routed,
 * resolved, forwarded, retried, counted and logged exactly as an HTTP/1.1 one.
 *
 * Node's http2 server is used only as the session factory (its `connection` event, which Node
 * documents for injecting sockets); it never listens. Limits are its settings (concurrent
 * streams, header list size and pairs, session memory, settings entries, rejected streams,
 * invalid frames); nghttp2 itself bounds rapid resets, CONTINUATION frames and queued ACKs. Each
 * session is closed with GOAWAY when idle and on shutdown, letting its streams finish.
 *
 * gRPC (content-type application/grpc…) differs only at the edges: its errors are trailers-only
 * responses with a grpc-status (grpc.ts), a response cut mid-stream ends with UNAVAILABLE
 * instead of a reset, and grpc-timeout is enforced here as a deadline on the stream.
 */
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { ClientRequest, ClientResponse } from '../forward/client.js';
import { sendError } from '../forward/http-forwarder.js';
import { GrpcDeadlineError, HeadersTooLargeError, type PuttuError } from '../errors.js';
import { GRPC_STATUS_UNAVAILABLE, grpcStatusOf, grpcTimeoutMs, isGrpc } from '../forward/grpc.js';
import type { LaneHandler } from './fast-lane.js';

const {
  HTTP2_HEADER_STATUS,
  HTTP2_HEADER_METHOD,
  HTTP2_HEADER_PATH,
  HTTP2_HEADER_AUTHORITY,
  NGHTTP2_INTERNAL_ERROR,
  NGHTTP2_CANCEL,
  NGHTTP2_ENHANCE_YOUR_CALM,
} = http2.constants;

/**
 * Streams a client may reset before their answer, per second, before its connection is cut
 * (rapid reset, CVE-2023-44487: each reset stream costs the proxy a request upstream, the client
 * nothing). Legitimate cancellation (a gRPC deadline, a closed browser tab) is far rarer.
 */
export const MAX_RESETS_PER_SECOND = 100;

export interface H2Options {
  /** SETTINGS_MAX_CONCURRENT_STREAMS announced to clients. */
  maxConcurrentStreams: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE: the largest (uncompressed) header list a client may send. */
  maxHeaderListSize: number;
  /**
   * The receive window per stream (SETTINGS_INITIAL_WINDOW_SIZE) and for the whole connection:
   * request body bytes a client may send ahead of what the proxy has passed upstream. Default:
   * the protocol's 65,535.
   */
  windowBytes?: number;
  /** A session with no frames either way for this long is closed with GOAWAY. */
  idleTimeoutMs: number;
  /** A stream with no frames either way for this long is reset (a client that stopped reading). */
  streamIdleTimeoutMs: number;
}

export interface H2Front {
  /**
   * Takes a connection whose bytes are HTTP/2: a TLS socket that chose h2 by ALPN (nothing read
   * yet), or a plain one whose first bytes, `read`, were the preface.
   */
  accept(socket: Socket, tls: boolean, read?: readonly Buffer[]): void;
  /** GOAWAY to every session: no new streams, those in flight finish. */
  close(): void;
  /** Cut every session that is left. */
  closeAll(): void;
  readonly sessions: number;
  /** Requests received over HTTP/2 by TLS (h2) and by prior knowledge (h2c). */
  readonly requests: { h2: number; h2c: number };
}

/** The connection preface of HTTP/2 (RFC 9113 §3.4), which a prior-knowledge client sends first. */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** The preface's first line, `PRI * HTTP/2.0\r\n`: no HTTP/1.1 request begins so. */
const PREFACE_LINE = 16;

/**
 * What the first bytes of a connection say: 'h2' once they hold the preface's first line, 'h1'
 * once they cannot be it (`PUT`, `POST` and `PATCH` share only the P), undefined while too few
 * have arrived to tell.
 */
export function prefaceVerdict(buf: Buffer): 'h2' | 'h1' | undefined {
  const n = Math.min(buf.length, PREFACE_LINE);
  if (buf.compare(H2_PREFACE, 0, n, 0, n) !== 0) return 'h1';
  return buf.length >= PREFACE_LINE ? 'h2' : undefined;
}

const kTls = Symbol('puttu.h2.tls');
const kRemote = Symbol('puttu.h2.remote');
const kResets = Symbol('puttu.h2.resets');
type FrontSession = http2.ServerHttp2Session & {
  [kTls]?: boolean;
  [kRemote]?: string | undefined;
  /** Streams the client reset in the current one-second window, and when that window began. */
  [kResets]?: { count: number; since: number };
};

/** A stream that ended in a reset (the client's, mostly): counted; too many in a second cut the session. */
function onStreamClose(stream: http2.ServerHttp2Stream, session: FrontSession | undefined): void {
  if (stream.rstCode === 0 || session === undefined || session.destroyed) return;
  const now = Date.now();
  const resets = (session[kResets] ??= { count: 0, since: now });
  if (now - resets.since >= 1_000) {
    resets.count = 0;
    resets.since = now;
  }
  if (++resets.count === MAX_RESETS_PER_SECOND + 1) {
    // GOAWAY (ENHANCE_YOUR_CALM) first: no stream after it is taken. The connection is cut a
    // moment later, so the frame is read before the reset its unread bytes cause.
    session.goaway(NGHTTP2_ENHANCE_YOUR_CALM);
    setTimeout(() => session.destroy(), 100).unref();
  }
}

export function createH2Front(handler: LaneHandler, options: H2Options): H2Front {
  const server = http2.createServer({
    settings: {
      maxConcurrentStreams: options.maxConcurrentStreams,
      maxHeaderListSize: options.maxHeaderListSize,
      initialWindowSize: options.windowBytes ?? 65_535,
      enablePush: false,
    },
    maxHeaderListPairs: 128,
    // Memory a session may hold (header compression, queued frames) before it is refused streams.
    maxSessionMemory: 10,
    maxSettings: 32,
    maxSessionRejectedStreams: 100,
    maxSessionInvalidFrames: 100,
    peerMaxConcurrentStreams: options.maxConcurrentStreams,
  });
  const sessions = new Set<FrontSession>();
  const requests = { h2: 0, h2c: 0 };
  let closing = false;
  let pendingTls = false;
  let pendingRemote: string | undefined;

  server.on('session', (session: FrontSession) => {
    session[kTls] = pendingTls;
    session[kRemote] = pendingRemote;
    if (closing) {
      session.close();
      return;
    }
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    if (options.windowBytes !== undefined && options.windowBytes > 65_535) session.setLocalWindowSize(options.windowBytes);
    session.on('error', noop);
    session.setTimeout(options.idleTimeoutMs, () => session.close());
    // The session's own event: a stream reset in the same read as its HEADERS has already
    // forgotten its session by the time it is handed on.
    session.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, raw: string[]) =>
      onStream(session, stream, headers, raw),
    );
  });
  function onStream(
    session: FrontSession,
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    rawHeaders: string[],
  ): void {
    if (session[kTls]) requests.h2++;
    else requests.h2c++;
    stream.on('error', noop);
    // Reset before it could be handled (rapid reset): nothing is asked of an upstream for it.
    if (stream.destroyed) return onStreamClose(stream, session);
    stream.once('close', () => onStreamClose(stream, session));
    stream.setTimeout(options.streamIdleTimeoutMs, () => stream.close(NGHTTP2_CANCEL));
    const req = new H2Request(stream, headers, rawHeaders, session[kRemote]);
    const res = new H2Response(stream, isGrpc(headers['content-type']));
    // nghttp2 applies SETTINGS_MAX_HEADER_LIST_SIZE only once the client has acknowledged it (a
    // hostile one never does): the limit is checked here too, as RFC 9113 §6.5.2 counts it.
    if (headerListSize(rawHeaders) > options.maxHeaderListSize) {
      sendError(res, new HeadersTooLargeError());
      return;
    }
    if (res.grpc) {
      const ms = grpcTimeoutMs(headers['grpc-timeout']);
      if (ms !== undefined) res.deadline(ms);
    }
    handler(req, res);
  }
  // Errors on sessions and sockets are the client's; the session is gone, nothing to report.
  server.on('sessionError', noop);

  return {
    accept(socket, tls, read) {
      if (closing) {
        socket.destroy();
        return;
      }
      // Node's HTTP server would set this on its own connections: frames go out as written.
      socket.setNoDelay(true);
      pendingTls = tls;
      pendingRemote = socket.remoteAddress;
      // The bytes already read go back in front, and the socket stays paused: a new session first
      // reads what the socket holds (socket.read()), then takes over its handle directly.
      if (read !== undefined) {
        socket.pause();
        for (let i = read.length - 1; i >= 0; i--) socket.unshift(read[i]!);
      }
      server.emit('connection', socket);
      pendingTls = false;
      pendingRemote = undefined;
    },
    close() {
      closing = true;
      for (const s of sessions) s.close();
    },
    closeAll() {
      closing = true;
      for (const s of sessions) s.destroy();
    },
    get sessions() {
      return sessions.size;
    },
    requests,
  };
}

function noop(): void {}

/** Each field's name and value plus 32 octets (RFC 9113 §6.5.2), pseudo-headers included. */
function headerListSize(raw: readonly string[]): number {
  let size = 0;
  for (let i = 0; i < raw.length; i++) size += raw[i]!.length + (i % 2 === 0 ? 32 : 0);
  return size;
}

/** An HTTP/2 stream's request as the proxy handler reads it (pseudo-headers out, Host from :authority). */
class H2Request implements ClientRequest {
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: string[];
  readonly headers: ClientRequest['headers'];
  readonly socket: { readonly remoteAddress?: string | undefined };
  readonly httpVersion = '2.0';
  /** The request body: the stream itself, unless the HEADERS frame ended it. */
  readonly body: Readable | null;

  constructor(
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    given: readonly string[],
    remoteAddress: string | undefined,
  ) {
    this.method = String(headers[HTTP2_HEADER_METHOD] ?? 'GET');
    this.url = String(headers[HTTP2_HEADER_PATH] ?? '/');
    const authority = headers[HTTP2_HEADER_AUTHORITY];
    const raw: string[] = [];
    // `given`: the raw name/value pairs as Node gives them, pseudo-headers first.
    let host: string | undefined = typeof authority === 'string' ? authority : undefined;
    for (let i = 0; i < given.length; i += 2) {
      const name = given[i]!;
      if (name.charCodeAt(0) === 58 /* : */) continue;
      if (name === 'host') host ??= given[i + 1];
      raw.push(name, given[i + 1]!);
    }
    // The upstream's Host comes from :authority (RFC 9113 §8.3.1); a Host field too is kept as is.
    if (host !== undefined && headers.host === undefined) raw.push('host', host);
    this.rawHeaders = raw;
    this.headers = {
      host,
      'x-request-id': headers['x-request-id'],
      'content-length': headers['content-length'],
    };
    this.socket = { remoteAddress };
    this.body = stream.endAfterHeaders ? null : bodyOf(stream);
  }
}

/**
 * The request half of a stream as a Readable of its own: undici destroys a request body once it
 * has written it, and destroying the stream itself would take the response half with it.
 */
function bodyOf(stream: http2.ServerHttp2Stream): Readable {
  const body = new Readable({
    read() {
      stream.resume();
    },
  });
  stream.on('data', (chunk: Buffer) => {
    if (!body.push(chunk)) stream.pause();
  });
  stream.once('end', () => body.push(null));
  // Read or not (a refused request never is), a reset body is nobody's error to throw.
  body.on('error', noop);
  stream.once('close', () => {
    if (!body.readableEnded) body.destroy(Object.assign(new Error('the client reset the stream'), { code: 'ECONNRESET' }));
  });
  return body;
}

type Trailers = Record<string, string | string[]>;

/**
 * What the forwarder writes, onto an HTTP/2 stream. Fields come through the one response-header
 * policy (headers.ts), which already drops every connection-specific field HTTP/2 forbids.
 * Trailers from the upstream are relayed when the client can take them (gRPC, or TE: trailers).
 */
export class H2Response implements ClientResponse {
  readonly grpc: boolean;
  readonly #stream: http2.ServerHttp2Stream;
  /** gRPC: the head is held until the first body byte or the end, so a bodiless answer is trailers-only. */
  #head: http2.OutgoingHttpHeaders | undefined;
  #trailers: Trailers | undefined;
  #wantTrailers = false;
  #ended = false;
  /** Ended by the proxy (deadline), not by the upstream's answer: the forwarder must cancel. */
  #cut = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(stream: http2.ServerHttp2Stream, grpc: boolean) {
    this.#stream = stream;
    this.grpc = grpc;
    stream.on('wantTrailers', () => {
      if (this.#trailers !== undefined) this.#sendTrailers(this.#trailers);
      else this.#wantTrailers = true;
    });
  }

  get headersSent(): boolean {
    return this.#head !== undefined || this.#stream.headersSent;
  }
  get writableEnded(): boolean {
    return this.#ended || this.#stream.writableEnded;
  }
  /** The whole answer went out: a reset stream counts as finished for Node, not here. */
  get writableFinished(): boolean {
    return !this.#cut && this.#ended && this.#stream.writableFinished && this.#stream.rstCode === 0;
  }

  writeHead(statusCode: number, _statusMessage: string | undefined, fields: string[]): this {
    if (this.#ended) return this;
    const head: http2.OutgoingHttpHeaders = { [HTTP2_HEADER_STATUS]: statusCode };
    for (let i = 0; i < fields.length; i += 2) {
      const name = fields[i]!.toLowerCase();
      const value = fields[i + 1]!;
      const had = head[name];
      if (had === undefined) head[name] = value;
      else head[name] = Array.isArray(had) ? [...had, value] : [String(had), value];
    }
    if (this.grpc) this.#head = head;
    else this.#respond(head, false);
    return this;
  }

  #respond(head: http2.OutgoingHttpHeaders, endStream: boolean): void {
    if (this.#stream.destroyed || this.#stream.headersSent) return;
    try {
      this.#stream.respond(head, { endStream, waitForTrailers: !endStream && this.grpc });
    } catch {
      // A field HTTP/2 cannot carry slipped through: the stream cannot be answered.
      this.#stream.close(NGHTTP2_INTERNAL_ERROR);
    }
  }

  #flushHead(): void {
    if (this.#head === undefined) return;
    const head = this.#head;
    this.#head = undefined;
    this.#respond(head, false);
  }

  /** The upstream's trailers (undici: Node's header object over HTTP/2, raw buffers over HTTP/1.1). */
  setTrailers(trailers: Record<string, unknown> | readonly Buffer[] | null | undefined): void {
    const t: Trailers = {};
    if (Array.isArray(trailers)) {
      for (let i = 0; i + 1 < trailers.length; i += 2) t[String(trailers[i]).toLowerCase()] = String(trailers[i + 1]);
    } else if (trailers) {
      for (const [name, value] of Object.entries(trailers)) {
        if (typeof value === 'string') t[name] = value;
        else if (Array.isArray(value)) t[name] = value.map(String);
      }
    }
    if (this.#wantTrailers) this.#sendTrailers(t);
    else this.#trailers = t;
  }

  #sendTrailers(t: Trailers): void {
    this.#wantTrailers = false;
    this.#trailers = undefined;
    if (this.#stream.destroyed) return;
    try {
      this.#stream.sendTrailers(t);
    } catch {
      this.#stream.close(NGHTTP2_INTERNAL_ERROR);
    }
  }

  write(chunk: Buffer): boolean {
    if (this.#ended) return true;
    this.#flushHead();
    if (this.#stream.destroyed) return true;
    return this.#stream.write(chunk);
  }

  end(chunk?: Buffer | string): this {
    if (this.#ended) return this;
    this.#ended = true;
    this.#clearDeadline();
    if (this.#head !== undefined && (chunk === undefined || chunk.length === 0)) {
      // A gRPC answer without a body: its status is in the trailers, sent in the one HEADERS frame.
      const head = this.#head;
      this.#head = undefined;
      const trailers = this.#trailers ?? {};
      this.#trailers = undefined;
      this.#respond({ ...head, ...trailers }, true);
      return this;
    }
    this.#flushHead();
    if (this.#stream.destroyed) return this;
    if (chunk !== undefined) this.#stream.end(chunk);
    else this.#stream.end();
    return this;
  }

  /**
   * The answer cannot be completed (the upstream failed after its head). A gRPC call ends with
   * UNAVAILABLE, as gRPC clients expect of a lost backend; anything else is reset, so a
   * truncated body never looks complete.
   */
  destroy(): this {
    this.#clearDeadline();
    if (this.grpc && !this.#stream.destroyed && !this.#ended) {
      this.#trailers = { 'grpc-status': String(GRPC_STATUS_UNAVAILABLE), 'grpc-message': 'the upstream instance went away mid-call' };
      this.end();
      return this;
    }
    if (!this.#stream.destroyed) this.#stream.close(NGHTTP2_INTERNAL_ERROR);
    return this;
  }

  /** gRPC's errors are an HTTP 200 with a grpc-status, not a JSON body (true: written here). */
  writeError(error: PuttuError, requestId: string | undefined): boolean {
    if (!this.grpc) return false;
    this.#clearDeadline();
    if (this.#ended || this.#stream.destroyed) return true;
    const status = {
      'grpc-status': String(grpcStatusOf(error)),
      'grpc-message': encodeURIComponent(error.message),
      ...(requestId !== undefined && { 'x-request-id': requestId }),
    };
    this.#ended = true;
    if (this.#stream.headersSent) {
      if (this.#wantTrailers) this.#sendTrailers(status);
      else this.#trailers = status;
      if (!this.#stream.writableEnded) this.#stream.end();
      return true;
    }
    this.#head = undefined;
    this.#respond({ [HTTP2_HEADER_STATUS]: 200, 'content-type': 'application/grpc', ...status }, true);
    return true;
  }

  /** grpc-timeout: past it the call ends with DEADLINE_EXCEEDED and the upstream request is cancelled. */
  deadline(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#cut = true;
      this.writeError(new GrpcDeadlineError(), undefined);
      // Closing the stream is what tells the forwarder the client is done with it.
      setImmediate(() => {
        if (!this.#stream.destroyed) this.#stream.close(NGHTTP2_CANCEL);
      });
    }, ms);
    this.#timer.unref();
  }

  #clearDeadline(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  // Listeners are called on this response, as Node's ServerResponse calls its own.
  once(event: 'drain', listener: () => void): this {
    this.#stream.once(event, () => listener.call(this));
    return this;
  }
  on(event: 'close', listener: () => void): this {
    this.#stream.on(event, () => listener.call(this));
    return this;
  }
}
