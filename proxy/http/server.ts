/** HTTP listeners with an orderly close: stop accepting, let in-flight requests finish (bounded). */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { installFastLane, type FastLane, type LaneHandler } from './fast-lane.js';
import { BadRequestError, HeadersTooLargeError, RequestTimeoutError } from '../errors.js';
import { endWithError } from './raw-error.js';

export interface Listener {
  readonly server: http.Server;
  readonly handler: http.RequestListener;
  /** The fast lane in front of Node's parser, when the listener has one. */
  readonly lane: FastLane | undefined;
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

export function createListener(handler: LaneHandler, options: ListenerOptions): Listener;
export function createListener(handler: http.RequestListener, options?: Omit<ListenerOptions, 'fastLane'>): Listener;
export function createListener(handler: http.RequestListener | LaneHandler, options: ListenerOptions = {}): Listener {
  const create = options.tls
    ? (o: http.ServerOptions, h: http.RequestListener) => https.createServer({ ...o, ...options.tls }, h)
    : http.createServer;
  const keepAliveTimeoutMs = options.keepAliveTimeoutMs ?? 5_000;
  const maxHeaderSize = options.maxHeaderSize ?? 16 * 1024;
  const server: http.Server = create(
    {
      requestTimeout: options.requestTimeoutMs ?? 300_000,
      headersTimeout: options.headersTimeoutMs ?? 10_000,
      keepAliveTimeout: keepAliveTimeoutMs,
      maxHeaderSize,
      // Parse strictly: no lenient framing a backend might read differently (request smuggling).
      insecureHTTPParser: false,
      // How often the timeouts above are checked (Node's default, 30 s, makes them coarse).
      connectionsCheckingInterval: 1_000,
    },
    handler as http.RequestListener,
  );
  server.on('clientError', onClientError);
  const lane: FastLane | undefined =
    options.fastLane && !options.tls
      ? installFastLane(server, handler as LaneHandler, { maxHeaderSize, keepAliveTimeoutMs, maxBodyBytes: options.fastLane.maxBodyBytes })
      : undefined;
  let closing: Promise<void> | undefined;
  return {
    server,
    handler: handler as http.RequestListener,
    lane,
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
        }, graceMs);
      });
      return closing;
    },
  };
}

export function urlOf(address: AddressInfo, proto = 'http'): string {
  const host = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.address;
  return `${proto}://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}
