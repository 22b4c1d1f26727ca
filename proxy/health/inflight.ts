import type { Instance } from '../registry/instance.js';

export interface InstanceLoad {
  /** Attempts in flight now (what p2c compares). */
  inflight: number;
  /** Attempts sent since the instance appeared. */
  requests: number;
  /** Attempts that failed in the proxy's eyes (refused, reset, timed out...). */
  failures: number;
  /** Moving average of the time to the response head, ms (0 until the first answer). */
  latencyMs: number;
}

/** Weight of the newest sample in the latency average. */
const ALPHA = 0.2;

/** Per-instance load and counts, kept as long as the instance object lives (a WeakMap). */
export class Inflight {
  readonly #loads = new WeakMap<Instance, InstanceLoad>();

  #load(instance: Instance): InstanceLoad {
    let load = this.#loads.get(instance);
    if (load === undefined) {
      load = { inflight: 0, requests: 0, failures: 0, latencyMs: 0 };
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

  /** Records how long an instance took to answer (its response head). */
  observe(instance: Instance, ms: number): void {
    const load = this.#load(instance);
    load.latencyMs = load.latencyMs === 0 ? ms : load.latencyMs + ALPHA * (ms - load.latencyMs);
  }

  latency(instance: Instance): number {
    return this.#loads.get(instance)?.latencyMs ?? 0;
  }

  stats(instance: Instance): Readonly<InstanceLoad> {
    return this.#loads.get(instance) ?? { inflight: 0, requests: 0, failures: 0, latencyMs: 0 };
  }
}
