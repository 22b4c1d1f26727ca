import type { Instance } from '../registry/instance.js';

export interface InstanceLoad {
  /** Attempts in flight now (what p2c compares). */
  inflight: number;
  /** Attempts sent since the instance appeared. */
  requests: number;
  /** Attempts that failed in the proxy's eyes (refused, reset, timed out...). */
  failures: number;
}

/** Per-instance load and counts, kept as long as the instance object lives (a WeakMap). */
export class Inflight {
  readonly #loads = new WeakMap<Instance, InstanceLoad>();

  #load(instance: Instance): InstanceLoad {
    let load = this.#loads.get(instance);
    if (load === undefined) {
      load = { inflight: 0, requests: 0, failures: 0 };
      this.#loads.set(instance, load);
    }
    return load;
  }

  get(instance: Instance): number {
    return this.#loads.get(instance)?.inflight ?? 0;
  }

  inc(instance: Instance): void {
    const load = this.#load(instance);
    load.inflight++;
    load.requests++;
  }

  dec(instance: Instance, failed = false): void {
    const load = this.#load(instance);
    if (load.inflight > 0) load.inflight--;
    if (failed) load.failures++;
  }

  stats(instance: Instance): Readonly<InstanceLoad> {
    return this.#loads.get(instance) ?? { inflight: 0, requests: 0, failures: 0 };
  }
}
