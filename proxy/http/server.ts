/** HTTP listeners with an orderly close: stop accepting, let in-flight requests finish (bounded). */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { installFastLane, type FastLane, type LaneHandler } from './fast-lane.js';
import { BadRequestError, HeadersTooLargeError, RequestTimeoutError } from '../errors.js';
import { endWithError } from './raw-error.js';
import { putBack, takeListener } from './connection-hooks.js';
import { createH2Front, prefaceVerdict, type H2Front, type H2Options } from './h2.js';

export interface Listener {
  readonly server: http.Server;
  readonly handler: http.RequestListener;
  /** The fast lane in front of Node's parser, when the listener has one. */
  readonly lane: FastLane | undefined;
  /** HTTP/2 sessions (h2 by ALPN with TLS, prior-knowledge h2c without), when enabled. */
  readonly h2: H2Front | undefined;
  listen(port: number, host: string): Promise<AddressInfo>;
  /** Stops accepting; closes idle keep-alive sockets; after `graceMs` cuts what is left. */
  close(graceMs: number): Promise<void>;
}

export interface ListenerOptions {
  /** Whole-request receive limit (slow clients), ms. */
  requestTimeoutMs?: number;
  /** Limit for receiving the request head (trickled headers), ms. */
  headersTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  maxHeaderSize?: number;
  /** Serve over TLS with this certificate and key (PEM). */
  tls?: { cert: string; key: string };
  /**
   * Read everyday requests in the fast lane (fast-lane.ts) instead of Node's http.Server; plain
   * HTTP only (ignored with `tls`). Needs a handler that takes the lane's requests.
   */
  fastLane?: { maxBodyBytes: number };
  /** Serve HTTP/2 next to HTTP/1.1 (h2.ts); needs a handler that takes the lane's requests. */
  http2?: H2Options;
}

/**
 * Requests Node's parser refuses (smuggling shapes such as Content-Length with Transfer-Encoding,
 * duplicate or bad Content-Length, obs-fold; oversized or too slow heads) get a JSON error with a
 * stable code like every other error, and the connection is closed.
 */
function onClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable || (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent) {
    socket.destroy();
    return;
  }
  endWithError(
    socket,
    error.code === 'HPE_HEADER_OVERFLOW'
      ? new HeadersTooLargeError()
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new RequestTimeoutError()
        : new BadRequestError('malformed HTTP request'),
  );
}

/** Pipelined requests a connection may have waiting on Node's path; beyond, it is closed. */
export const MAX_PIPELINED = 64;

const kPipeline = Symbol('puttu.pipeline');
interface Pipeline {
  busy: boolean;
  /** Requests and their responses, in order: [req, res, req, res, ...]. */
  waiting: Array<http.IncomingMessage | http.ServerResponse>;
}
type PipelinedSocket = Duplex & { [kPipeline]?: Pipeline; writableNeedDrain?: boolean };

/**
 * Node's path takes a connection's pipelined requests one at a time, as the fast lane does: the
 * next is forwarded once the answer to the one before has gone out to the client. Node's server
 * parses every request in a read at once and would forward them all, their answers piling up in
 * the proxy for a client that does not read them. A client with more than `maxWaiting` waiting
 * is not pipelining but flooding: its connection is closed.
 */
function oneAtATime(handler: http.RequestListener, maxWaiting: number): http.RequestListener {
  const next = (socket: PipelinedSocket, pipeline: Pipeline): void => {
    if (socket.destroyed) {
      pipeline.waiting.length = 0;
      return;
    }
    // The answer before is still in the socket's buffer: the client has not read it yet.
    if (socket.writableNeedDrain) {
      socket.once('drain', () => next(socket, pipeline));
      return;
    }
    const req = pipeline.waiting.shift() as http.IncomingMessage | undefined;
    const res = pipeline.waiting.shift() as http.ServerResponse | undefined;
    if (req === undefined || res === undefined) {
      pipeline.busy = false;
      return;
    }
    run(socket, pipeline, req, res);
  };
  const run = (socket: PipelinedSocket, pipeline: Pipeline, req: http.IncomingMessage, res: http.ServerResponse): void => {
    res.once('close', () => next(socket, pipeline));
    handler(req, res);
  };
  return (req, res) => {
    const socket = req.socket as PipelinedSocket;
    let pipeline = socket[kPipeline];
    if (pipeline === undefined) {
      pipeline = { busy: false, waiting: [] };
      socket[kPipeline] = pipeline;
    }
    if (!pipeline.busy) {
      pipeline.busy = true;
      run(socket, pipeline, req, res);
      return;
    }
    if (socket.destroyed) return;
    if (pipeline.waiting.length >= 2 * maxWaiting) {
      pipeline.waiting.length = 0;
      socket.destroy();
      return;
    }
    pipeline.waiting.push(req, res);
  };
}

export function createListener(handler: LaneHandler, options: ListenerOptions): Listener;
export function createListener(handler: http.RequestListener, options?: Omit<ListenerOptions, 'fastLane'>): Listener;
export function createListener(handler: http.RequestListener | LaneHandler, options: ListenerOptions = {}): Listener {
  // With HTTP/2, TLS offers h2 first by ALPN; clients without ALPN get HTTP/1.1.
  const alpn = options.http2 ? { ALPNProtocols: ['h2', 'http/1.1'] } : {};
  const create = options.tls
    ? (o: http.ServerOptions, h: http.RequestListener) => https.createServer({ ...o, ...options.tls, ...alpn }, h)
    : http.createServer;
  const keepAliveTimeoutMs = options.keepAliveTimeoutMs ?? 5_000;
  const maxHeaderSize = options.maxHeaderSize ?? 16 * 1024;
  const headersTimeout = options.headersTimeoutMs ?? 10_000;
  const requestTimeout = options.requestTimeoutMs ?? 300_000;
  const server: http.Server = create(
    {
      // Node refuses a request timeout shorter than the head's; the whole request gets at least that.
      requestTimeout: requestTimeout > 0 ? Math.max(requestTimeout, headersTimeout) : 0,
      headersTimeout,
      keepAliveTimeout: keepAliveTimeoutMs,
      maxHeaderSize,
      // Parse strictly: no lenient framing a backend might read differently (request smuggling).
      insecureHTTPParser: false,
      // How often the timeouts above are checked (Node's default, 30 s, makes them coarse).
      connectionsCheckingInterval: 1_000,
    },
    oneAtATime(handler as http.RequestListener, MAX_PIPELINED),
  );
  server.on('clientError', onClientError);
  const h2 = options.http2 ? createH2Front(handler as LaneHandler, options.http2) : undefined;
  const toH2 = h2 && ((socket: Socket, read: Buffer[]) => h2.accept(socket, false, read));
  const lane: FastLane | undefined =
    options.fastLane && !options.tls
      ? installFastLane(server, handler as LaneHandler, {
          maxHeaderSize,
          keepAliveTimeoutMs,
          maxBodyBytes: options.fastLane.maxBodyBytes,
          ...(toH2 && { toH2 }),
        })
      : undefined;
  if (h2 && options.tls) routeByAlpn(server, h2);
  else if (toH2 && !lane) sniffPreface(server, toH2, headersTimeout);
  let closing: Promise<void> | undefined;
  return {
    server,
    handler: handler as http.RequestListener,
    lane,
    h2,
    listen: (port, host) =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      }),
    close(graceMs) {
      closing ??= new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        lane?.close();
        // GOAWAY: HTTP/2 clients open no new streams; those in flight finish within the grace period.
        h2?.close();
        server.close(() => {
          clearInterval(idle);
          clearTimeout(cut);
          resolve();
        });
        // Keep-alive sockets that finish their response while we wait become idle: close them too.
        const idle = setInterval(() => server.closeIdleConnections(), 50);
        server.closeIdleConnections();
        const cut = setTimeout(() => {
          clearInterval(idle);
          server.closeAllConnections();
          lane?.closeAll();
          h2?.closeAll();
        }, graceMs);
      });
      return closing;
    },
  };
}

/** TLS connections that chose h2 by ALPN go to the HTTP/2 sessions, the others to Node's HTTP/1.1. */
function routeByAlpn(server: http.Server, h2: H2Front): void {
  const nodeSecure = takeListener<TLSSocket>(server, 'secureConnection', 'HTTP/2 over TLS');
  server.on('secureConnection', (socket: TLSSocket) => {
    if (socket.alpnProtocol === 'h2') h2.accept(socket, true);
    else nodeSecure(socket);
  });
}

/**
 * Without the fast lane, the first bytes of each plain connection are looked at once: the HTTP/2
 * preface goes to the HTTP/2 sessions, anything else back to Node's parser as it came.
 */
function sniffPreface(server: http.Server, toH2: (socket: Socket, read: Buffer[]) => void, silentMs: number): void {
  const nodeConnection = takeListener(server, 'connection', 'h2c');
  const silent = function (this: Socket): void {
    this.destroy();
  };
  server.on('connection', (socket: Socket) => {
    // Until its first bytes, a connection is no one's: it is closed if they do not come.
    socket.setTimeout(silentMs, silent);
    socket.on('error', noop);
    const read: Buffer[] = [];
    const onData = (chunk: Buffer): void => {
      read.push(chunk);
      const verdict = prefaceVerdict(read.length === 1 ? chunk : Buffer.concat(read));
      if (verdict === undefined) return; // too few bytes to tell yet
      socket.removeListener('data', onData);
      socket.setTimeout(0);
      socket.removeListener('timeout', silent);
      socket.removeListener('error', noop);
      socket.pause();
      if (verdict === 'h2') return toH2(socket, read);
      putBack(socket, read);
      nodeConnection(socket);
      socket.resume();
    };
    socket.on('data', onData);
  });
}

function noop(): void {}

export function urlOf(address: Pick<AddressInfo, 'address' | 'port'>, proto = 'http'): string {
  const host = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.address;
  return `${proto}://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}
