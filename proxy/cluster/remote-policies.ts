/**
 * A cluster worker's traffic policies: the states the primary's policy watcher sends (the primary
 * checks each document; a worker applies what it is given).
 */
import { EventEmitter } from 'node:events';
import type { PolicyEvents, PolicySource, PolicyState } from '../registry/policies.js';

export class RemotePolicies extends EventEmitter<PolicyEvents> implements PolicySource {
  readonly #states = new Map<string, PolicyState>();

  get(service: string): PolicyState | undefined {
    return this.#states.get(service);
  }

  all(): PolicyState[] {
    return [...this.#states.values()];
  }

  apply(service: string, state: PolicyState | null): void {
    if (state === null) this.#states.delete(service);
    else this.#states.set(service, state);
    this.emit('change', service, state ?? undefined);
  }
}
