import type { Instance } from '../registry/instance.js';

/** Requests in flight per instance (for least-loaded choices such as p2c). */
export class Inflight {
  readonly #counts = new WeakMap<Instance, number>();

  get(instance: Instance): number {
    return this.#counts.get(instance) ?? 0;
  }

  inc(instance: Instance): void {
    this.#counts.set(instance, (this.#counts.get(instance) ?? 0) + 1);
  }

  dec(instance: Instance): void {
    const n = this.#counts.get(instance) ?? 0;
    this.#counts.set(instance, n > 0 ? n - 1 : 0);
  }
}
