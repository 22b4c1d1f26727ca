/**
 * HTTP/2 to one upstream origin (instances registered with protocol "h2c" or "h2"): one
 * multiplexed session per origin, opened on first use and again after the upstream closes it,
 * with every request a stream on it. It takes undici's dispatch options and calls the same
 * handler callbacks (onConnect, onHeaders, onData, onComplete, onError) as undici's pools do, so
 * the forwarder's Exchange drives it unchanged: retries, deadlines, backpressure and health alike.
 *
 * Node's http2 rather than undici's: undici 7's HTTP/2 dispatcher puts a request that is not
 * idempotent, or whose body is a stream, on a connection only when nothing else runs on it. Every
 * gRPC call is a POST with a streamed body, so through undici no two calls would ever share a
 * connection. Here streams multiplex up to the server's SETTINGS_MAX_CONCURRENT_STREAMS (nghttp2
 * queues the rest).
 *
 * A request body that fails is not destroyed from here (it may be an HTTP/2 client's stream, whose
 * other half is the response still to be written): the upstream stream is cancelled instead.
 */
import http2 from 'node:http2';
import type net from 'node:net';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;

export interface H2UpstreamOptions {
  tls: boolean;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  lookup?: net.LookupFunction;
  ca?: string[];
  rejectUnauthorized?: boolean;
}

type Handler = Dispatcher.DispatchHandler;

/** How long an upstream session may carry no frames before it is closed. */
const IDLE_SESSION_MS = 30_000;

/** An error with the errno-style code `toProxyError` maps (errors.ts). */
function coded(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

export class H2Upstream {
  readonly origin: string;
  readonly #o: H2UpstreamOptions;
  #session: http2.ClientHttp2Session | undefined;
  #closed = false;

  constructor(origin: string, options: H2UpstreamOptions) {
    this.origin = origin;
    this.#o = options;
  }

  #connect(): http2.ClientHttp2Session {
    const live = this.#session;
    if (live !== undefined && !live.closed && !live.destroyed) return live;
    const o = this.#o;
    const session = http2.connect(this.origin, {
      settings: { enablePush: false },
      ...(o.lookup && { lookup: o.lookup }),
      ...(o.tls && { ALPNProtocols: ['h2'], rejectUnauthorized: o.rejectUnauthorized !== false, ...(o.ca && { ca: o.ca }) }),
    });
    this.#session = session;
    const forget = (): void => {
      if (this.#session === session) this.#session = undefined;
    };
    // A GOAWAY or a lost connection: the streams in flight end on their own; new ones get a new session.
    session.on('goaway', forget);
    session.on('close', forget);
    session.on('error', forget);
    const timer = setTimeout(
      () => session.destroy(coded('UND_ERR_CONNECT_TIMEOUT', 'connecting to the upstream timed out')),
      o.connectTimeoutMs,
    );
    session.once('connect', () => clearTimeout(timer));
    session.once('close', () => clearTimeout(timer));
    // An idle session is closed (GOAWAY; a stream still open finishes), as keep-alive pools close
    // idle sockets; the next request opens a new one.
    session.setTimeout(IDLE_SESSION_MS, () => session.close());
    // The proxy's listeners keep the process alive; an upstream session alone need not.
    session.unref();
    // Every request waiting for the connection listens for its failure.
    session.setMaxListeners(0);
    return session;
  }

  dispatch(options: Dispatcher.DispatchOptions, handler: Handler): boolean {
    if (this.#closed) {
      queueMicrotask(() => handler.onError?.(coded('UND_ERR_CLOSED', 'the upstream pool is closed')));
      return true;
    }
    new H2Call(this.#connect(), this.#o, options, handler).start();
    return true;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const session = this.#session;
    this.#session = undefined;
    if (session === undefined || session.destroyed) return;
    await new Promise<void>((resolve) => session.close(resolve));
  }

  async destroy(): Promise<void> {
    this.#closed = true;
    this.#session?.destroy();
    this.#session = undefined;
  }
}

/** One request on a session: the stream, its body going up and the handler's callbacks coming back. */
class H2Call {
  readonly #session: http2.ClientHttp2Session;
  readonly #o: H2UpstreamOptions;
  readonly #options: Dispatcher.DispatchOptions;
  readonly #handler: Handler;
  #stream: http2.ClientHttp2Stream | undefined;
  #settled = false;
  #answered = false;
  #trailers: http2.IncomingHttpHeaders | undefined;

  constructor(session: http2.ClientHttp2Session, o: H2UpstreamOptions, options: Dispatcher.DispatchOptions, handler: Handler) {
    this.#session = session;
    this.#o = o;
    this.#options = options;
    this.#handler = handler;
  }

  start(): void {
    const session = this.#session;
    if (session.connecting) {
      // An error before the connection is up means nothing was sent: the forwarder may retry anything.
      const onError = (error: Error) => this.#fail(error);
      session.once('error', onError);
      session.once('connect', () => {
        session.removeListener('error', onError);
        this.#send();
      });
      return;
    }
    this.#send();
  }

  #send(): void {
    if (this.#settled) return;
    const session = this.#session;
    if (session.closed || session.destroyed) return this.#fail(coded('UND_ERR_SOCKET', 'the upstream session closed'));
    const { method, path, body } = this.#options;
    const url = new URL(this.#options.origin as string);
    const headers: http2.OutgoingHttpHeaders = {
      ':method': method,
      ':path': path,
      ':scheme': url.protocol === 'https:' ? 'https' : 'http',
      ':authority': url.host,
    };
    // The fields come from upstreamRequestHeaders() (headers.ts), which has already dropped every
    // connection-specific one HTTP/2 forbids (RFC 9113 §8.2.2); only gRPC's `te: trailers` is added.
    const flat = this.#options.headers as string[] | null | undefined;
    if (flat) {
      for (let i = 0; i < flat.length; i += 2) {
        const name = flat[i]!.toLowerCase();
        const value = flat[i + 1]!;
        const had = headers[name];
        headers[name] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [String(had), value];
      }
    }
    const noBody = body === null || body === undefined;
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(headers, { endStream: noBody });
    } catch (error) {
      return this.#fail(error as Error);
    }
    this.#stream = stream;
    this.#handler.onConnect?.((error?: Error) => this.#abort(error));
    if (this.#settled) return;
    const timed = this.#options.headersTimeout !== 0;
    if (timed) stream.setTimeout(this.#o.headersTimeoutMs, () => this.#timeout());
    stream.on('response', (head) => {
      const status = Number(head[':status']);
      this.#answered = true;
      if (timed) stream.setTimeout(this.#o.bodyTimeoutMs, () => this.#timeout());
      const raw: Buffer[] = [];
      for (const [name, value] of Object.entries(head)) {
        if (name.charCodeAt(0) === 58 /* : */ || value === undefined) continue;
        if (Array.isArray(value)) for (const v of value) raw.push(Buffer.from(name), Buffer.from(v));
        else raw.push(Buffer.from(name), Buffer.from(String(value)));
      }
      this.#handler.onHeaders?.(status, raw, () => stream.resume(), '');
    });
    stream.on('data', (chunk: Buffer) => {
      if (this.#settled) return;
      if (this.#handler.onData?.(chunk) === false) stream.pause();
    });
    stream.on('trailers', (trailers) => {
      this.#trailers = trailers;
    });
    stream.on('end', () => {
      if (this.#settled || !this.#answered) return;
      this.#settled = true;
      this.#done();
      this.#handler.onComplete?.((this.#trailers ?? null) as unknown as string[] | null);
    });
    stream.on('error', (error) => this.#fail(error));
    stream.on('close', () => {
      if (this.#settled) return;
      // Reset by the upstream, or its session gone, before the answer was complete.
      const refused = stream.rstCode === NGHTTP2_REFUSED_STREAM;
      this.#fail(coded(refused ? 'UND_ERR_SOCKET' : 'ECONNRESET', 'the upstream stream closed before its answer was complete'));
    });
    if (!noBody) this.#writeBody(stream, body);
  }

  #writeBody(stream: http2.ClientHttp2Stream, body: NonNullable<Dispatcher.DispatchOptions['body']>): void {
    if (Buffer.isBuffer(body) || typeof body === 'string') {
      stream.end(body);
      return;
    }
    if (Array.isArray(body)) {
      for (const chunk of body as Buffer[]) stream.write(chunk);
      stream.end();
      return;
    }
    const source = body as Readable;
    const onData = (chunk: Buffer): void => {
      if (!stream.write(chunk)) source.pause();
    };
    const onDrain = (): void => {
      source.resume();
    };
    const onEnd = (): void => {
      if (!stream.destroyed) stream.end();
    };
    const onError = (): void => this.#abort(coded('ECONNRESET', 'the request body failed'));
    source.on('data', onData);
    source.once('end', onEnd);
    source.once('error', onError);
    stream.on('drain', onDrain);
    stream.once('close', () => {
      source.removeListener('data', onData);
      source.removeListener('end', onEnd);
      source.removeListener('error', onError);
    });
  }

  #timeout(): void {
    this.#abort(
      this.#answered
        ? coded('UND_ERR_BODY_TIMEOUT', 'the upstream body went silent')
        : coded('UND_ERR_HEADERS_TIMEOUT', 'the upstream did not answer in time'),
    );
  }

  #abort(error?: Error): void {
    if (this.#settled) return;
    this.#fail(error ?? coded('UND_ERR_ABORTED', 'aborted'));
  }

  #fail(error: Error): void {
    if (this.#settled) return;
    this.#settled = true;
    const stream = this.#stream;
    if (stream !== undefined && !stream.destroyed) stream.close(NGHTTP2_CANCEL);
    this.#done();
    this.#handler.onError?.(error);
  }

  #done(): void {
    this.#stream?.setTimeout(0);
  }
}
