import type { Instance } from '../registry/instance.js';

/** Chooses one instance of a service for a request. `instances` is never empty. */
export interface Balancer {
  pick(instances: readonly Instance[]): Instance;
}
