/**
 * WebSocket upgrades through http-proxy, with its known gaps closed here:
 * - every socket gets an error handler (an unhandled 'error' on the client socket, e.g. a client
 *   that resets during the handshake, otherwise crashes the process);
 * - a failed or refused upgrade answers the client and closes it, never throws;
 * - a client that goes away before the upstream answered aborts the upstream request (http-proxy
 *   does not pass client aborts on);
 * - an upgrade the upstream does not connect or answer in time fails with a 504, as HTTP does;
 * - idle connections close after a configurable timeout; every open tunnel is closed on shutdown.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createRequire } from 'node:module';
import type httpProxy from 'http-proxy';
import type { Logger } from '../logger.js';
import type { Instance } from '../registry/instance.js';
import { toProxyError, UpstreamConnectTimeoutError, UpstreamTimeoutError, type PuttuError } from '../errors.js';
import { endWithError } from '../http/raw-error.js';

export interface WsForwarderOptions {
  idleTimeoutMs: number;
  connectTimeoutMs: number;
  /** How long the upstream has to answer the upgrade request, connecting included. */
  answerTimeoutMs: number;
  logger: Logger;
}

export type WsDone = (status: number, error: PuttuError | undefined) => void;

interface Tunnel {
  client: Duplex;
  upstream?: Socket;
  upgraded: boolean;
  done: WsDone;
  settled: boolean;
  /** Stops holding client bytes read during the handshake and puts them back in order. */
  release(): void;
}

const kTunnel = Symbol('puttu.wsTunnel');
type WithTunnel = IncomingMessage & { [kTunnel]?: Tunnel };

export class WsForwarder {
  #lazyProxy: httpProxy | undefined;
  readonly #o: WsForwarderOptions;
  readonly #open = new Set<Tunnel>();

  constructor(options: WsForwarderOptions) {
    this.#o = options;
  }

  /** http-proxy is loaded on the first upgrade: a proxy without WebSocket traffic never pays for it. */
  get #proxy(): httpProxy {
    if (this.#lazyProxy) return this.#lazyProxy;
    const httpProxyModule = createRequire(import.meta.url)('http-proxy') as typeof httpProxy;
    const proxy = httpProxyModule.createProxyServer({ ws: true, changeOrigin: true, xfwd: false, proxyTimeout: this.#o.connectTimeoutMs });
    this.#lazyProxy = proxy;
    // Without an 'error' listener http-proxy re-throws upstream errors (EventEmitter semantics).
    proxy.on('error', (err, req) => this.#fail((req as WithTunnel)[kTunnel], err));
    proxy.on('proxyReqWs', (proxyReq, req) => {
      const tunnel = (req as WithTunnel)[kTunnel];
      if (!tunnel) return;
      // http-proxy has no deadline for an upgrade (its proxyTimeout covers plain requests only):
      // an upstream that never connects, or accepts and never answers, would hold the client
      // forever. As for HTTP: connecting has connectTimeoutMs (then 504 connect timeout), the
      // answer upstreamTimeoutMs (then 504).
      const abandon = (error: PuttuError) => {
        this.#fail(tunnel, error);
        proxyReq.destroy();
      };
      let connected = false;
      proxyReq.once('socket', (socket: Socket) => {
        if (socket.connecting) socket.once('connect', () => (connected = true));
        else connected = true;
      });
      const connectDeadline = setTimeout(() => connected || abandon(new UpstreamConnectTimeoutError()), this.#o.connectTimeoutMs);
      const answerDeadline = setTimeout(() => abandon(new UpstreamTimeoutError()), this.#o.answerTimeoutMs);
      const answered = () => {
        clearTimeout(connectDeadline);
        clearTimeout(answerDeadline);
      };
      proxyReq.once('close', answered);
      // Client gone before the upstream answered: abort the upstream request too.
      tunnel.client.once('close', () => {
        answered();
        if (!tunnel.upgraded) proxyReq.destroy();
      });
      proxyReq.once('response', (res) => {
        answered();
        // A refused upgrade (any status but 101): http-proxy relays it and ends the socket.
        if (!tunnel.settled) this.#finish(tunnel, res.statusCode ?? 502, undefined);
      });
      if (tunnel.client.destroyed) proxyReq.destroy();
      proxyReq.once('upgrade', (proxyRes: IncomingMessage, upstream: Socket) => {
        answered();
        tunnel.upgraded = true;
        tunnel.upstream = upstream;
        tunnel.release();
        // Idle limit on the client socket, set here: http-proxy resets socket timeouts to 0 when
        // it starts (common.setupSocket). Writes count as activity, so traffic either way keeps it.
        (tunnel.client as Socket).setTimeout?.(this.#o.idleTimeoutMs, () => tunnel.client.destroy());
        // An upstream that dies mid-stream closes the client, and the other way round.
        upstream.on('error', () => tunnel.client.destroy());
        upstream.once('close', () => tunnel.client.destroy());
        this.#finish(tunnel, proxyRes.statusCode ?? 101, undefined);
      });
    });
    return proxy;
  }

  /** Number of open tunnels. */
  get size(): number {
    return this.#open.size;
  }

  forward(
    req: IncomingMessage,
    client: Duplex,
    head: Buffer,
    instance: Instance,
    path: string,
    headers: Record<string, string>,
    done: WsDone,
  ): void {
    // Until the upstream answers, the client socket is read (bytes held, then put back): a paused
    // socket never sees the client's FIN, so a client leaving mid-handshake would go unnoticed.
    const held: Buffer[] = [];
    const hold = (chunk: Buffer) => void held.push(chunk);
    const tunnel: Tunnel = {
      client,
      upgraded: false,
      done,
      settled: false,
      release() {
        client.off('data', hold);
        client.pause();
        if (held.length > 0) client.unshift(Buffer.concat(held.splice(0)));
      },
    };
    (req as WithTunnel)[kTunnel] = tunnel;
    this.#open.add(tunnel);
    client.on('error', () => client.destroy());
    client.on('data', hold);
    client.once('end', () => {
      if (!tunnel.upgraded) client.destroy();
    });
    client.once('close', () => {
      this.#open.delete(tunnel);
      tunnel.upstream?.destroy();
      if (!tunnel.settled) this.#finish(tunnel, 0, undefined);
    });
    req.url = path;
    req.headers = headers;
    this.#proxy.ws(req, client, head, { target: instance.origin });
  }

  /** Closes every open tunnel. */
  close(): void {
    for (const t of this.#open) t.client.destroy();
    this.#open.clear();
    this.#lazyProxy?.close();
  }

  #fail(tunnel: Tunnel | undefined, err: Error): void {
    if (!tunnel || tunnel.settled) return;
    const error = toProxyError(err);
    if (tunnel.upgraded) tunnel.client.destroy();
    else endWithError(tunnel.client, error);
    this.#finish(tunnel, error.status, error);
  }

  #finish(tunnel: Tunnel, status: number, error: PuttuError | undefined): void {
    if (tunnel.settled) return;
    tunnel.settled = true;
    tunnel.done(status, error);
  }
}
