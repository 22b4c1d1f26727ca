/**
 * The lease of each registration made over the REST API: a PUT starts or renews it, and one not
 * renewed within `ttlMs` has lapsed. Time is the injected clock's monotonic milliseconds, measured
 * when this process received the PUT: a client's clock (its registrationTimeUTC) never decides,
 * unlike curator-x-discovery-server's InstanceCleanup, so clock skew cannot expire or keep one.
 */
import type { Clock } from '../clock.js';

export class TtlTracker<K> {
  readonly #renewedAt = new Map<K, number>();
  readonly #clock: Clock;
  readonly ttlMs: number;

  constructor(ttlMs: number, clock: Clock) {
    if (!Number.isInteger(ttlMs) || ttlMs < 1) throw new Error(`ttlMs must be a positive integer, got ${ttlMs}`);
    this.ttlMs = ttlMs;
    this.#clock = clock;
  }

  /** Starts or renews `key`'s lease, now. */
  renew(key: K): void {
    // Delete first: the map keeps insertion order, so the oldest lease is always first.
    this.#renewedAt.delete(key);
    this.#renewedAt.set(key, this.#clock.monotonic());
  }

  forget(key: K): void {
    this.#renewedAt.delete(key);
  }

  has(key: K): boolean {
    return this.#renewedAt.has(key);
  }

  get size(): number {
    return this.#renewedAt.size;
  }

  /** Milliseconds left on `key`'s lease (0 once lapsed), undefined when it has none. */
  remainingMs(key: K): number | undefined {
    const at = this.#renewedAt.get(key);
    return at === undefined ? undefined : Math.max(0, at + this.ttlMs - this.#clock.monotonic());
  }

  /** Removes and returns the keys whose lease lapsed (not renewed for more than ttlMs), oldest first. */
  takeLapsed(): K[] {
    const now = this.#clock.monotonic();
    const lapsed: K[] = [];
    for (const [key, at] of this.#renewedAt) {
      if (now - at <= this.ttlMs) break;
      lapsed.push(key);
    }
    for (const key of lapsed) this.#renewedAt.delete(key);
    return lapsed;
  }
}
