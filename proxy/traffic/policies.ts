/**
 * The compiled traffic policies the request path reads, one per service that has a valid one,
 * rebuilt when the watched documents change (registry/policies.ts, or a cluster worker's copy).
 * `get()` is one Map lookup; a service without a policy is not in the map.
 */
import type { EventEmitter } from 'node:events';
import type { Logger } from '../logger.js';
import type { PolicyEvents, PolicySource } from '../registry/policies.js';
import { compilePolicy, type CompileDeps, type CompiledPolicy } from './router.js';

export class TrafficPolicies {
  readonly source: PolicySource & EventEmitter<PolicyEvents>;
  readonly #compiled = new Map<string, CompiledPolicy>();
  /** Called with each service's new compiled policy (undefined: none), e.g. to tighten deadlines. */
  onCompiled: ((service: string, policy: CompiledPolicy | undefined) => void) | undefined;

  constructor(source: PolicySource & EventEmitter<PolicyEvents>, deps: CompileDeps, logger: Logger) {
    this.source = source;
    const update = (service: string) => {
      const state = source.get(service);
      const previous = this.#compiled.get(service);
      // A refused document leaves the policy in force as it was (the same object): nothing to rebuild.
      if (state !== undefined && previous !== undefined && state.policy === previous.policy) return;
      let compiled: CompiledPolicy | undefined;
      try {
        compiled = state === undefined ? undefined : compilePolicy(state, deps);
      } catch (error) {
        logger.error('traffic policy could not be applied; the previous one stays in force', { service, error });
        return;
      }
      if (compiled === undefined) this.#compiled.delete(service);
      else this.#compiled.set(service, compiled);
      this.onCompiled?.(service, compiled);
    };
    source.on('change', (service) => update(service));
    for (const state of source.all()) update(state.service);
  }

  get(service: string): CompiledPolicy | undefined {
    return this.#compiled.get(service);
  }
}
