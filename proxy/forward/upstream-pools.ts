/**
 * One undici keep-alive Pool per endpoint origin, created on first use and closed when the last
 * registered endpoint with that origin leaves the registry, so sockets stay bounded by live
 * endpoints. Origins are reference-counted: two services may share one.
 */
import type net from 'node:net';
import { Pool } from 'undici';
import type { Logger } from '../logger.js';

export interface PoolOptions {
  /** DNS resolution for one upstream port; lets a policy refuse an address before any connection. */
  lookupFor?: (port: number) => net.LookupFunction;
  connections: number;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  keepAliveTimeoutMs?: number;
}

export class UpstreamPools {
  readonly #pools = new Map<string, Pool>();
  readonly #refs = new Map<string, number>();
  readonly #o: PoolOptions;
  readonly #log: Logger;
  #closed = false;

  constructor(options: PoolOptions, logger: Logger) {
    this.#o = options;
    this.#log = logger;
  }

  get size(): number {
    return this.#pools.size;
  }

  get(origin: string): Pool {
    let pool = this.#pools.get(origin);
    if (pool === undefined) {
      pool = new Pool(origin, {
        connections: this.#o.connections,
        pipelining: 1,
        connect: { timeout: this.#o.connectTimeoutMs, ...(this.#o.lookupFor && { lookup: this.#o.lookupFor(portOf(origin)) }) },
        headersTimeout: this.#o.headersTimeoutMs,
        bodyTimeout: this.#o.bodyTimeoutMs,
        keepAliveTimeout: this.#o.keepAliveTimeoutMs ?? 4_000,
        // Upstreams commonly close idle keep-alive sockets after 5 s (Node's default); stay under it.
        keepAliveMaxTimeout: 4_000,
      });
      if (!this.#closed) this.#pools.set(origin, pool);
    }
    return pool;
  }

  /** An endpoint with this origin entered the registry. */
  retain(origin: string): void {
    this.#refs.set(origin, (this.#refs.get(origin) ?? 0) + 1);
  }

  /** An endpoint with this origin left; the pool closes with the last one (in-flight requests finish). */
  release(origin: string): void {
    const n = (this.#refs.get(origin) ?? 0) - 1;
    if (n > 0) {
      this.#refs.set(origin, n);
      return;
    }
    this.#refs.delete(origin);
    const pool = this.#pools.get(origin);
    if (pool === undefined) return;
    this.#pools.delete(origin);
    this.#log.debug('closing the connection pool of a removed endpoint', { origin });
    pool.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    this.#closed = true;
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.close().catch(() => p.destroy())));
  }
}

function portOf(origin: string): number {
  const url = new URL(origin);
  return url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
}
