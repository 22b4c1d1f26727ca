/**
 * The watched in-memory copy of one service: its children and their data, re-read whenever a
 * watch fires (watches are one-shot: every read re-arms). Publishes a frozen snapshot whenever
 * what it holds changes; readers never see a half-built view.
 */
import type { Logger } from '../logger.js';
import { decodeInstance, type Instance } from './instance.js';
import { join, servicePath } from './paths.js';
import { createCoalescer, type Limiter } from './coalesce.js';
import { isNoNode, type WatchEvent, type ZkClient } from './zk-client.js';

/**
 * Why a znode is not routed:
 * - 'invalid': the data could not be used (malformed; counted as an invalid znode);
 * - 'refused': valid, but the upstream policy forbids its address;
 * - 'inactive': valid and allowed, but its writer says it takes no traffic (our DRAINING, Curator's
 *   `enabled: false`, Spring's instance_status other than UP, a serverset status other than ALIVE,
 *   weight 0). Not an error: an instance on its way in or out.
 */
export type RejectionKind = 'invalid' | 'refused' | 'inactive';

export interface RejectedInstance {
  readonly id: string;
  /** e.g. `status DRAINING`, `enabled: false`, `port must be an integer …`. */
  readonly reason: string;
  readonly kind: RejectionKind;
  /** The decoded instance, for 'refused' and 'inactive' (absent for 'invalid'). */
  readonly instance?: Instance;
}

export interface ServiceSnapshot {
  readonly name: string;
  /** Live, routable instances, sorted by id. */
  readonly instances: readonly Instance[];
  /** Znodes never routed (malformed, refused or inactive), sorted by id, each with why. */
  readonly rejected: readonly RejectedInstance[];
}

type Entry = { ok: true; instance: Instance; raw: string } | { ok: false; rejected: RejectedInstance; raw: string };

export interface ServiceCacheOptions {
  zk: ZkClient;
  basePath: string;
  name: string;
  logger: Logger;
  /** Called with each new snapshot (and once after the first read, even if empty). */
  onSnapshot: (snapshot: ServiceSnapshot) => void;
  /** Called once per znode version that is not routed (any kind: filter on it). */
  onRejected?: (service: string, id: string, reason: string, kind: RejectionKind) => void;
  /** A policy on decoded instances: returns why one must not be routed (e.g. a denied address). */
  accept?: (instance: Instance) => string | undefined;
  /** Retry delay after a failed read (ZooKeeper slow or away). */
  retryMs?: number;
  /** Shared by the caches of a registry: how many services are read at once. */
  limiter?: Limiter;
}

/**
 * Data reads issued at once by one service's read, at most. With the registry's limiter, this
 * bounds what a burst keeps alive (requests, promises, answers) to a few thousand objects: any
 * more would survive young-generation GCs, be promoted, and leave the old generation's
 * high-water (then the process's RSS) far above what the registry needs once read.
 */
const READ_BATCH = 64;

export class ServiceCache {
  readonly name: string;
  readonly path: string;
  #entries = new Map<string, Entry>();
  #stale = new Set<string>();
  #snapshot: ServiceSnapshot;
  #synced = false;
  #stopped = false;
  #retry: NodeJS.Timeout | undefined;
  readonly #o: ServiceCacheOptions;
  readonly #refresh;
  #syncWaiters: Array<() => void> = [];

  constructor(options: ServiceCacheOptions) {
    this.#o = options;
    this.name = options.name;
    this.path = servicePath(options.basePath, options.name);
    this.#snapshot = Object.freeze({ name: this.name, instances: Object.freeze([]), rejected: Object.freeze([]) });
    const limiter = options.limiter;
    this.#refresh = createCoalescer(limiter ? () => limiter.run(() => this.#read()) : () => this.#read(), (error) => this.#failed(error));
  }

  get snapshot(): ServiceSnapshot {
    return this.#snapshot;
  }

  /** True once the first full read has completed. */
  get synced(): boolean {
    return this.#synced;
  }

  whenSynced(): Promise<void> {
    if (this.#synced || this.#stopped) return Promise.resolve();
    return new Promise((resolve) => this.#syncWaiters.push(resolve));
  }

  /** Re-reads everything (after a reconnect or a new session, or at start). */
  refresh(): void {
    if (this.#stopped) return;
    for (const id of this.#entries.keys()) this.#stale.add(id);
    this.#refresh.trigger();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#retry);
    this.#resolveSync();
  }

  /** Settles when no read is in flight (tests and orderly shutdown). */
  idle(): Promise<void> {
    return this.#refresh.idle();
  }

  // Stable functions: the client dedupes watchers by identity, so re-arming never piles them up.
  readonly #onChildren = (_event: WatchEvent): void => {
    if (!this.#stopped) this.#refresh.trigger();
  };

  readonly #onData = (event: WatchEvent): void => {
    if (this.#stopped) return;
    if (event.type === 'data') this.#stale.add(event.path.slice(this.path.length + 1));
    this.#refresh.trigger();
  };

  async #read(): Promise<void> {
    if (this.#stopped) return;
    const { zk } = this.#o;
    let children: string[];
    try {
      children = await zk.getChildren(this.path, this.#onChildren);
    } catch (error) {
      if (!isNoNode(error)) throw error;
      // The service node is gone (a Curator container node is reaped when empty): watch for it
      // to come back, and serve an empty service meanwhile.
      this.#entries.clear();
      if (await zk.exists(this.path, this.#onChildren)) this.#refresh.trigger();
      this.#publish();
      return;
    }
    if (this.#stopped) return;
    const present = new Set(children);
    for (const id of this.#entries.keys()) if (!present.has(id)) this.#entries.delete(id);
    const toRead = children.filter((id) => !this.#entries.has(id) || this.#stale.has(id));
    let failure: unknown;
    for (let start = 0; start < toRead.length; start += READ_BATCH) {
      const batch = toRead.slice(start, start + READ_BATCH);
      const results = await Promise.allSettled(batch.map((id) => zk.getData(join(this.path, id), this.#onData)));
      if (this.#stopped) return;
      results.forEach((result, i) => {
        const id = batch[i]!;
        this.#stale.delete(id);
        if (result.status === 'fulfilled') this.#accept(id, result.value);
        else if (isNoNode(result.reason))
          this.#entries.delete(id); // gone meanwhile; the child watch fires
        else {
          this.#stale.add(id);
          failure ??= result.reason;
        }
      });
    }
    this.#publish();
    if (failure) throw failure;
  }

  #accept(id: string, data: Buffer): void {
    const raw = data.toString('latin1');
    const previous = this.#entries.get(id);
    if (previous && previous.raw === raw) return;
    const verdict = this.#judge(id, data);
    if (!('kind' in verdict)) {
      this.#entries.set(id, { ok: true, instance: verdict, raw });
      return;
    }
    const rejected: RejectedInstance = Object.freeze({ id, ...verdict });
    this.#entries.set(id, { ok: false, rejected, raw });
    const { reason, kind, instance } = rejected;
    const log = { service: this.name, id, reason, ...(instance && { url: instance.url, format: instance.format }) };
    if (kind === 'inactive') this.#o.logger.info('instance not routed: its registration says it takes no traffic', log);
    else this.#o.logger.warn(kind === 'refused' ? 'instance refused by the upstream policy' : 'invalid instance znode skipped', log);
    this.#o.onRejected?.(this.name, id, reason, kind);
  }

  /**
   * Decodes a znode and decides whether it is routed. The policy comes before the writer's own
   * state: a denied address is reported as refused (a poisoning attempt) even while inactive.
   */
  #judge(id: string, data: Buffer): Instance | Omit<RejectedInstance, 'id'> {
    const decoded = decodeInstance(this.name, id, data);
    if (!decoded.ok) return { reason: decoded.reason, kind: 'invalid' };
    const { instance } = decoded;
    const refusal = this.#o.accept?.(instance);
    if (refusal !== undefined) return { reason: refusal, kind: 'refused', instance };
    if (decoded.inactive !== undefined) return { reason: decoded.inactive, kind: 'inactive', instance };
    return instance;
  }

  #publish(): void {
    if (this.#stopped) return;
    const ids = [...this.#entries.keys()].sort();
    const instances: Instance[] = [];
    const rejected: RejectedInstance[] = [];
    for (const id of ids) {
      const e = this.#entries.get(id)!;
      if (e.ok) instances.push(e.instance);
      else rejected.push(e.rejected);
    }
    const changed = !sameInstances(this.#snapshot.instances, instances) || !sameRejected(this.#snapshot.rejected, rejected);
    const first = !this.#synced;
    if (changed)
      this.#snapshot = Object.freeze({ name: this.name, instances: Object.freeze(instances), rejected: Object.freeze(rejected) });
    this.#resolveSync();
    if (changed || first) this.#o.onSnapshot(this.#snapshot);
  }

  #resolveSync(): void {
    this.#synced = true;
    for (const resolve of this.#syncWaiters.splice(0)) resolve();
  }

  #failed(error: unknown): void {
    if (this.#stopped) return;
    this.#o.logger.warn('service read failed; keeping the last snapshot', { service: this.name, error });
    clearTimeout(this.#retry);
    // Away from ZooKeeper a retry can only time out again; the registry refreshes every service
    // when the connection (or a new session) is back.
    if (this.#o.zk.state !== 'connected') return;
    this.#retry = setTimeout(() => this.#refresh.trigger(), this.#o.retryMs ?? 1_000);
    this.#retry.unref();
  }
}

function sameInstances(a: readonly Instance[], b: readonly Instance[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameRejected(a: readonly RejectedInstance[], b: readonly RejectedInstance[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false; // entries are kept while their data is unchanged
  return true;
}
