/**
 * Balancers are pure choices: given the routable instances of a service, pick one. They import
 * nothing from the registry or the health modules (proxy/health/ keeps the state: in-flight
 * counts, latencies, ejections); an instance is any object, compared by identity, with an optional
 * `weight` (balancer/weights.ts), and what a strategy needs to know of one (p2c's load) is passed in.
 */
import type { Weighted } from './weights.js';

export type { Weighted } from './weights.js';

/** Chooses one instance of a service for a request. `instances` is never empty. */
export interface Balancer {
  pick<T extends Weighted>(instances: readonly T[]): T;
}

/** What p2c reads of an instance's load (proxy/health/inflight.ts keeps it). */
export interface LoadSignals {
  /** Attempts in flight now. */
  get(instance: object): number;
  /** Moving average of the time to the response head, ms (0: no answer yet). */
  latency(instance: object): number;
}
