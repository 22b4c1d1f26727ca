/**
 * The registry: a watched in-memory copy of `<base>/<service>/<instance>`, one ServiceCache per
 * service. `get(service)` is a map lookup of a frozen snapshot: the request path never waits on
 * ZooKeeper. While ZooKeeper is away the last snapshots keep serving; on reconnect every service is
 * re-read, and on a new session (watches lost) every watch is re-armed by that re-read.
 *
 * Two modes: `all` watches the list of services too (the proxy); `lazy` watches a service from
 * the first time someone asks for it (the library, which needs only the services it calls).
 */
import { EventEmitter } from 'node:events';
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import { isValidServiceName } from './paths.js';
import { createCoalescer, createLimiter } from './coalesce.js';
import { ServiceCache, type RejectionKind, type ServiceSnapshot } from './service-cache.js';
import type { Instance } from './instance.js';
import { isNoNode, type WatchEvent, type ZkClient } from './zk-client.js';

export type { ServiceSnapshot } from './service-cache.js';

export interface RegistryEvents {
  /** A service's snapshot changed; `undefined` when the service left the registry. */
  change: [service: string, snapshot: ServiceSnapshot | undefined, previous: ServiceSnapshot | undefined];
  /** A znode is not routed: invalid data, refused by the upstream policy, or inactive (draining, disabled). */
  rejected: [service: string, id: string, reason: string, kind: RejectionKind];
  /** The initial sync completed. */
  synced: [];
}

export interface RegistryOptions {
  zk: ZkClient;
  basePath: string;
  logger: Logger;
  clock: Clock;
  mode: 'all' | 'lazy';
  retryMs?: number;
  /** Instances this returns a reason for are refused (kept as rejected, never routed). */
  accept?: (instance: Instance) => string | undefined;
}

export class Registry extends EventEmitter<RegistryEvents> {
  readonly basePath: string;
  readonly mode: 'all' | 'lazy';
  readonly #caches = new Map<string, ServiceCache>();
  readonly #o: RegistryOptions;
  readonly #log: Logger;
  #baseListed = false;
  #synced = false;
  #closed = false;
  #staleSince: number | undefined;
  #retry: NodeJS.Timeout | undefined;
  readonly #listServices;
  /**
   * Services read at once (initial sync, re-reads after a reconnect or a new session). The rest
   * wait their turn: a burst over a thousand services then keeps only a few hundred requests and
   * their answers alive at a time, instead of the whole tree's.
   */
  readonly #reads = createLimiter(16);

  constructor(options: RegistryOptions) {
    super();
    this.#o = options;
    this.basePath = options.basePath;
    this.mode = options.mode;
    this.#log = options.logger;
    this.#listServices = createCoalescer(
      () => this.#readServices(),
      (error) => {
        this.#log.warn('listing services failed; keeping the last snapshot', { error });
        clearTimeout(this.#retry);
        // Away from ZooKeeper a retry can only time out again: #resync re-lists on its return.
        if (options.zk.state !== 'connected') return;
        this.#retry = setTimeout(() => this.#listServices.trigger(), options.retryMs ?? 1_000);
        this.#retry.unref();
      },
    );
  }

  /** Starts watching. Returns at once; `synced`/`whenSynced()` tell when the first view is complete. */
  start(): void {
    const { zk } = this.#o;
    zk.on('session', this.#resync);
    zk.on('reconnected', this.#resync);
    zk.on('state', this.#onState);
    if (zk.state === 'connected') this.#resync();
  }

  /** The current snapshot of a service; `undefined` for a service the registry does not know. */
  get(service: string): ServiceSnapshot | undefined {
    return this.#caches.get(service)?.snapshot;
  }

  /** The snapshot of a service whose first read has completed; `undefined` otherwise. */
  cached(service: string): ServiceSnapshot | undefined {
    const cache = this.#caches.get(service);
    return cache?.synced ? cache.snapshot : undefined;
  }

  /** Names of the known services. */
  services(): string[] {
    return [...this.#caches.keys()];
  }

  /** Every known service's snapshot (a copy: for views, not the hot path). */
  snapshot(): ServiceSnapshot[] {
    return [...this.#caches.values()].map((c) => c.snapshot);
  }

  get synced(): boolean {
    return this.#synced;
  }

  /**
   * Monotonic time since which the view may be out of date (ZooKeeper away, or the re-read after
   * its return not finished); `undefined` while it is current. Staleness = now - this.
   */
  get staleSince(): number | undefined {
    return this.#synced ? this.#staleSince : undefined;
  }

  whenSynced(): Promise<void> {
    if (this.#synced || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.once('synced', resolve));
  }

  /** Lazy mode: starts watching `service` if needed; resolves with its snapshot after the first read. */
  async watch(service: string): Promise<ServiceSnapshot | undefined> {
    let cache = this.#caches.get(service);
    if (!cache) {
      if (this.mode === 'all' || this.#closed) return undefined;
      cache = this.#add(service);
    }
    await cache.whenSynced();
    return cache.synced ? cache.snapshot : undefined;
  }

  /** Settles when no read is in flight. */
  async idle(): Promise<void> {
    await this.#listServices.idle();
    await Promise.all([...this.#caches.values()].map((c) => c.idle()));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retry);
    const { zk } = this.#o;
    zk.off('session', this.#resync);
    zk.off('reconnected', this.#resync);
    zk.off('state', this.#onState);
    for (const cache of this.#caches.values()) cache.stop();
    this.emit('synced');
  }

  /** Re-read everything: on start, after a reconnect, and after a new session (watches re-armed). */
  readonly #resync = (): void => {
    if (this.#closed) return;
    if (this.mode === 'all') this.#listServices.trigger();
    for (const cache of this.#caches.values()) cache.refresh();
    if (this.mode === 'lazy') this.#markSynced();
    void this.idle().then(() => {
      if (this.#o.zk.state === 'connected') this.#staleSince = undefined;
    });
  };

  readonly #onState = (): void => {
    // Staleness counts from the last moment the view was known to be current.
    if (this.#o.zk.state !== 'connected') this.#staleSince ??= this.#o.clock.monotonic();
  };

  readonly #onServicesChanged = (_event: WatchEvent): void => {
    if (!this.#closed) this.#listServices.trigger();
  };

  async #readServices(): Promise<void> {
    const { zk } = this.#o;
    let names: string[];
    try {
      names = await zk.getChildren(this.basePath, this.#onServicesChanged);
    } catch (error) {
      if (!isNoNode(error)) throw error;
      // No base path yet: nothing registered. Watch for its creation.
      if (await zk.exists(this.basePath, this.#onServicesChanged)) return this.#listServices.trigger();
      names = [];
    }
    if (this.#closed) return;
    const present = new Set<string>();
    for (const name of names) {
      if (!isValidServiceName(name)) {
        this.#log.warn('service node with an unusable name ignored', { name });
        continue;
      }
      present.add(name);
      if (!this.#caches.has(name)) this.#add(name);
    }
    for (const [name, cache] of this.#caches) {
      if (present.has(name)) continue;
      cache.stop();
      this.#caches.delete(name);
      this.#log.info('service removed', { service: name });
      this.emit('change', name, undefined, cache.snapshot);
    }
    if (!this.#baseListed) {
      this.#baseListed = true;
      await Promise.all([...this.#caches.values()].map((c) => c.whenSynced()));
      this.#markSynced();
    }
  }

  #add(name: string): ServiceCache {
    let previous: ServiceSnapshot | undefined;
    const cache = new ServiceCache({
      zk: this.#o.zk,
      basePath: this.basePath,
      name,
      logger: this.#log,
      retryMs: this.#o.retryMs,
      limiter: this.#reads,
      onSnapshot: (snapshot) => {
        logChange(this.#log, name, previous, snapshot);
        this.emit('change', name, snapshot, previous);
        previous = snapshot;
      },
      onRejected: (service, id, reason, kind) => this.emit('rejected', service, id, reason, kind),
      ...(this.#o.accept && { accept: this.#o.accept }),
    });
    this.#caches.set(name, cache);
    if (this.#o.zk.state === 'connected') cache.refresh();
    return cache;
  }

  #markSynced(): void {
    if (this.#synced) return;
    this.#synced = true;
    this.#log.info('registry synced', { basePath: this.basePath, services: this.#caches.size });
    this.emit('synced');
  }
}

function logChange(log: Logger, service: string, before: ServiceSnapshot | undefined, after: ServiceSnapshot): void {
  const old = new Map((before?.instances ?? []).map((i) => [i.id, i]));
  const now = new Set(after.instances.map((i) => i.id));
  for (const i of after.instances) if (old.get(i.id) !== i) log.info('instance added', { service, id: i.id, url: i.url });
  for (const [id, i] of old) if (!now.has(id)) log.info('instance removed', { service, id, url: i.url });
}
