/**
 * A cluster worker's registry: the snapshots the primary sends, rebuilt as frozen instances whose
 * identity is kept while their data does not change (pools and per-instance state key on it).
 */
import { EventEmitter } from 'node:events';
import type { Instance } from '../registry/instance.js';
import type { RegistryEvents } from '../registry/registry.js';
import type { ServiceSnapshot } from '../registry/service-cache.js';
import type { RegistryView } from '../registry/view.js';
import type { ToWorker, WireSnapshot } from './messages.js';

export class RemoteRegistry extends EventEmitter<RegistryEvents> implements RegistryView {
  readonly basePath: string;
  readonly #services = new Map<string, ServiceSnapshot>();
  readonly #instances = new Map<string, { json: string; instance: Instance }>();
  #synced = false;

  constructor(basePath: string) {
    super();
    this.basePath = basePath;
  }

  get synced(): boolean {
    return this.#synced;
  }

  /** Staleness is the primary's to report (its clock, its session); a worker reports none. */
  get staleSince(): number | undefined {
    return undefined;
  }

  get(service: string): ServiceSnapshot | undefined {
    return this.#services.get(service);
  }

  services(): string[] {
    return [...this.#services.keys()];
  }

  snapshot(): ServiceSnapshot[] {
    return [...this.#services.values()];
  }

  whenSynced(): Promise<void> {
    return this.#synced ? Promise.resolve() : new Promise((resolve) => this.once('synced', resolve));
  }

  start(): void {}

  close(): void {
    this.#synced = true;
    this.emit('synced');
  }

  /** Applies one message from the primary. */
  apply(message: ToWorker): void {
    if (message.puttu === 'synced') {
      if (!this.#synced) {
        this.#synced = true;
        this.emit('synced');
      }
    } else if (message.puttu === 'service') {
      const previous = this.#services.get(message.name);
      const next = message.snapshot ? this.#rebuild(message.snapshot) : undefined;
      if (next) this.#services.set(message.name, next);
      else this.#services.delete(message.name);
      this.emit('change', message.name, next, previous);
    }
  }

  #rebuild(wire: WireSnapshot): ServiceSnapshot {
    const instances = wire.instances.map((plain) => {
      const key = `${wire.name}/${plain.id}`;
      const json = JSON.stringify(plain);
      const known = this.#instances.get(key);
      if (known && known.json === json) return known.instance;
      const instance = Object.freeze({ ...plain }) as Instance;
      this.#instances.set(key, { json, instance });
      return instance;
    });
    const ids = new Set(wire.instances.map((i) => `${wire.name}/${i.id}`));
    for (const key of this.#instances.keys()) if (key.startsWith(`${wire.name}/`) && !ids.has(key)) this.#instances.delete(key);
    return Object.freeze({
      name: wire.name,
      instances: Object.freeze(instances),
      rejected: Object.freeze(wire.rejected.map((r) => Object.freeze({ ...r }))),
    });
  }
}
