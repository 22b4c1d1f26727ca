/**
 * Passive health: an instance that fails `consecutiveFailures` times in a row (connection refused
 * or reset, timeouts, broken responses) is ejected from routing for a backoff that grows with each
 * ejection, then readmitted. At most `maxEjectedPercent` of a service is ejected at once, and when
 * fewer than `panicPercent` of its instances remain routable the service routes to all of them
 * (panic mode), as Envoy's outlier detection does: a guess that everything is down must not make
 * everything unreachable.
 *
 * `routable()` is on the hot path: it returns a cached array, recomputed only when the snapshot or
 * an ejection changed.
 */
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import type { Instance } from '../registry/instance.js';

export interface OutlierOptions {
  consecutiveFailures: number;
  baseEjectionMs: number;
  maxEjectionMs: number;
  maxEjectedPercent: number;
  panicPercent: number;
}

export const OUTLIER_DEFAULTS: OutlierOptions = {
  consecutiveFailures: 3,
  baseEjectionMs: 5_000,
  maxEjectionMs: 120_000,
  maxEjectedPercent: 50,
  panicPercent: 50,
};

interface Health {
  failures: number;
  ejections: number;
  /** Monotonic ms until which the instance is ejected; 0 when routable. */
  ejectedUntil: number;
}

interface Cached {
  instances: readonly Instance[];
  epoch: number;
  routable: readonly Instance[];
  panic: boolean;
}

export type HealthState = 'healthy' | 'ejected';

export class OutlierDetector {
  readonly #o: OutlierOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #health = new WeakMap<Instance, Health>();
  readonly #ejected = new Set<Instance>();
  readonly #cache = new Map<string, Cached>();
  #epoch = 0;
  #nextExpiry = Infinity;
  /** Called on every ejection and readmission (metrics). */
  onChange: ((instance: Instance, state: HealthState) => void) | undefined;

  constructor(options: OutlierOptions, clock: Clock, logger: Logger) {
    this.#o = options;
    this.#clock = clock;
    this.#log = logger;
  }

  /** The instances of a service to route to now. */
  routable(service: string, instances: readonly Instance[]): readonly Instance[] {
    if (this.#ejected.size === 0) return instances;
    if (this.#clock.monotonic() >= this.#nextExpiry) this.#readmitExpired();
    const cached = this.#cache.get(service);
    if (cached !== undefined && cached.instances === instances && cached.epoch === this.#epoch) return cached.routable;
    const healthy = instances.filter((i) => !this.#ejected.has(i));
    const panic = healthy.length * 100 < instances.length * this.#o.panicPercent;
    if (panic && !cached?.panic)
      this.#log.warn('too few healthy instances: routing to all of them (panic mode)', {
        service,
        healthy: healthy.length,
        instances: instances.length,
      });
    const routable = panic ? instances : healthy;
    this.#cache.set(service, { instances, epoch: this.#epoch, routable, panic });
    return routable;
  }

  state(instance: Instance): HealthState {
    return this.#ejected.has(instance) ? 'ejected' : 'healthy';
  }

  success(instance: Instance): void {
    const h = this.#health.get(instance);
    if (h !== undefined) h.failures = 0;
  }

  failure(instance: Instance, siblings: readonly Instance[]): void {
    let h = this.#health.get(instance);
    if (h === undefined) {
      h = { failures: 0, ejections: 0, ejectedUntil: 0 };
      this.#health.set(instance, h);
    }
    h.failures++;
    if (h.failures < this.#o.consecutiveFailures || this.#ejected.has(instance)) return;
    let ejectedSiblings = 0;
    for (const s of siblings) if (this.#ejected.has(s)) ejectedSiblings++;
    const cap = siblings.length < 2 ? 0 : Math.max(1, Math.floor((siblings.length * this.#o.maxEjectedPercent) / 100));
    if (ejectedSiblings >= cap) return;
    const ms = Math.min(this.#o.baseEjectionMs * 2 ** h.ejections, this.#o.maxEjectionMs);
    h.ejections++;
    h.failures = 0;
    h.ejectedUntil = this.#clock.monotonic() + ms;
    this.#nextExpiry = Math.min(this.#nextExpiry, h.ejectedUntil);
    this.#ejected.add(instance);
    this.#epoch++;
    this.#log.warn('instance ejected after consecutive failures', { service: instance.service, id: instance.id, forMs: ms });
    this.onChange?.(instance, 'ejected');
  }

  /** Forgets instances that left the registry (their ejection ends with them). */
  removed(instances: Iterable<Instance>): void {
    for (const i of instances) {
      if (this.#ejected.delete(i)) this.#epoch++;
    }
  }

  forgetService(service: string): void {
    this.#cache.delete(service);
  }

  #readmitExpired(): void {
    const now = this.#clock.monotonic();
    let next = Infinity;
    for (const i of this.#ejected) {
      const h = this.#health.get(i)!;
      if (h.ejectedUntil <= now) {
        this.#ejected.delete(i);
        h.ejectedUntil = 0;
        this.#epoch++;
        this.#log.info('ejected instance readmitted', { service: i.service, id: i.id });
        this.onChange?.(i, 'healthy');
      } else next = Math.min(next, h.ejectedUntil);
    }
    this.#nextExpiry = next;
  }
}
