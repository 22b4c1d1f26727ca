/**
 * One undici keep-alive Pool per upstream endpoint origin, created on first use and closed when
 * the last registered endpoint with that origin leaves the registry, so sockets stay bounded by
 * live endpoints. Origins are reference-counted (two services may share one). HTTPS upstreams are
 * verified against the system roots plus a configured CA bundle; a service may opt out of
 * verification (self-signed development certificates), which gets it pools of its own.
 */
import type net from 'node:net';
import type { Dispatcher } from 'undici';
import { Pool } from '../deps/undici.js';
import { H2Upstream } from './h2-upstream.js';
import { ReadBuffers } from './read-buffers.js';
import type { Logger } from '../logger.js';
import type { Instance } from '../registry/instance.js';

export interface PoolOptions {
  connections: number;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  keepAliveTimeoutMs?: number;
  /** DNS resolution for one upstream port; lets a policy refuse an address before any connection. */
  lookupFor?: (port: number) => net.LookupFunction;
  /** Extra trusted CAs (PEM) for HTTPS upstreams, on top of the system roots. */
  ca?: string[];
  /** Services whose HTTPS upstreams are not verified (explicit opt-out). */
  insecureServices?: ReadonlySet<string>;
  /** Services reached over HTTP/2 whatever their instances' protocol says (h2c over http, h2 over https). */
  http2Services?: ReadonlySet<string>;
}

/** What the forwarder dispatches to: an undici Pool (HTTP/1.1) or one HTTP/2 session (h2-upstream.ts). */
export interface OriginDispatcher {
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
  close(): Promise<void>;
  destroy(): Promise<void>;
}

export class UpstreamPools {
  readonly #pools = new Map<string, OriginDispatcher>();
  readonly #refs = new Map<string, number>();
  readonly #o: PoolOptions;
  readonly #log: Logger;
  #closed = false;
  /** The buffers plain-HTTP upstream sockets read into, reused once their bytes are sent. */
  readonly readBuffers = new ReadBuffers();

  constructor(options: PoolOptions, logger: Logger) {
    this.#o = options;
    this.#log = logger;
  }

  get size(): number {
    return this.#pools.size;
  }

  /** HTTP/2: registered so (h2c, h2), or the service is one of --http2-services. */
  #http2(instance: Instance): boolean {
    return instance.protocol === 'h2c' || instance.protocol === 'h2' || this.#o.http2Services?.has(instance.service) === true;
  }

  #key(instance: Instance): string {
    const tls = instance.protocol === 'https' || instance.protocol === 'h2';
    const h2 = this.#http2(instance) ? '#h2' : '';
    return tls && this.#o.insecureServices?.has(instance.service) ? `${instance.origin}${h2}#insecure` : `${instance.origin}${h2}`;
  }

  get(instance: Instance): OriginDispatcher {
    const key = this.#key(instance);
    let pool = this.#pools.get(key);
    const tls = instance.protocol === 'https' || instance.protocol === 'h2';
    if (pool === undefined && this.#http2(instance)) {
      pool = new H2Upstream(instance.origin, {
        tls,
        connectTimeoutMs: this.#o.connectTimeoutMs,
        headersTimeoutMs: this.#o.headersTimeoutMs,
        bodyTimeoutMs: this.#o.bodyTimeoutMs,
        ...(this.#o.lookupFor && { lookup: this.#o.lookupFor(instance.port) }),
        ...(tls && tlsOptions(this.#o, key.endsWith('#insecure'))),
      });
      if (!this.#closed) this.#pools.set(key, pool);
    }
    if (pool === undefined) {
      pool = new Pool(instance.origin, {
        connections: this.#o.connections,
        pipelining: 1,
        connect: {
          timeout: this.#o.connectTimeoutMs,
          ...(this.#o.lookupFor && { lookup: this.#o.lookupFor(instance.port) }),
          ...(instance.protocol === 'https' ? tlsOptions(this.#o, key.endsWith('#insecure')) : { onread: this.readBuffers.onread }),
        },
        headersTimeout: this.#o.headersTimeoutMs,
        bodyTimeout: this.#o.bodyTimeoutMs,
        keepAliveTimeout: this.#o.keepAliveTimeoutMs ?? 4_000,
        // Upstreams commonly close idle keep-alive sockets after 5 s (Node's default); stay under it.
        keepAliveMaxTimeout: 4_000,
      }) as OriginDispatcher;
      if (!this.#closed) this.#pools.set(key, pool);
    }
    return pool;
  }

  /** An endpoint entered the registry. */
  retain(instance: Instance): void {
    const key = this.#key(instance);
    this.#refs.set(key, (this.#refs.get(key) ?? 0) + 1);
  }

  /** An endpoint left; the pool closes with the last one of its origin (in-flight requests finish). */
  release(instance: Instance): void {
    const key = this.#key(instance);
    const n = (this.#refs.get(key) ?? 0) - 1;
    if (n > 0) {
      this.#refs.set(key, n);
      return;
    }
    this.#refs.delete(key);
    const pool = this.#pools.get(key);
    if (pool === undefined) return;
    this.#pools.delete(key);
    this.#log.debug('closing the connection pool of a removed endpoint', { origin: instance.origin });
    pool.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    this.#closed = true;
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.close().catch(() => p.destroy())));
  }
}

function tlsOptions(o: PoolOptions, insecure: boolean): { ca?: string[]; rejectUnauthorized: boolean } {
  if (insecure) return { rejectUnauthorized: false };
  return o.ca && o.ca.length > 0 ? { ca: o.ca, rejectUnauthorized: true } : { rejectUnauthorized: true };
}
