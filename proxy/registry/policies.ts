/**
 * The watched in-memory copy of the traffic policies: one JSON document per service at
 * `<policy path>/<service>` (traffic/policy.ts says what a document holds). Children and data are
 * watched (one-shot watches, re-armed on every read; a watch firing during a read makes it run
 * once more), so the request path only ever reads this map, never ZooKeeper.
 *
 * A document that fails its check is refused with its reason (`invalid` event: logged, counted,
 * shown): the last valid version of that service's policy, or none, stays in force. A deleted
 * document takes the service back to the defaults (the proxy's flags).
 */
import { EventEmitter } from 'node:events';
import type { Logger } from '../logger.js';
import { parsePolicy, type TrafficPolicy } from '../traffic/policy.js';
import { createCoalescer, type Coalescer } from './coalesce.js';
import { isValidServiceName, join } from './paths.js';
import { isNoNode, type ZkClient } from './zk-client.js';

export interface PolicyState {
  readonly service: string;
  /** The policy in force; undefined: none valid yet (the defaults apply). */
  readonly policy: TrafficPolicy | undefined;
  /** The znode version of the policy in force. */
  readonly version: number | undefined;
  /** The newest document, when it was refused: why, and its version. */
  readonly invalid?: { readonly reason: string; readonly version: number };
}

export interface PolicyEvents {
  /** A service's state changed (a new policy in force, a refused document, or removal: undefined). */
  change: [service: string, state: PolicyState | undefined];
  /** A document was refused. */
  invalid: [service: string, reason: string, version: number];
}

/** What the request path and the admin surface read: the policy state of a service. */
export interface PolicySource {
  get(service: string): PolicyState | undefined;
  all(): PolicyState[];
}

interface Watched {
  read: Coalescer;
  state: PolicyState;
  /** Data version last read (a re-read of the same version changes nothing). */
  seen: number;
}

export class PolicyWatcher extends EventEmitter<PolicyEvents> implements PolicySource {
  readonly path: string;
  readonly #zk: ZkClient;
  readonly #log: Logger;
  readonly #watched = new Map<string, Watched>();
  readonly #list: Coalescer;
  readonly #retryMs: number;
  /** Retry timers by what failed: '' the listing, else the service whose read failed. */
  readonly #retries = new Map<string, NodeJS.Timeout>();
  #closed = false;
  #synced = false;
  #syncWaiters: Array<() => void> = [];

  constructor(options: { zk: ZkClient; path: string; logger: Logger; retryMs?: number }) {
    super();
    this.#zk = options.zk;
    this.path = options.path;
    this.#log = options.logger;
    this.#retryMs = options.retryMs ?? 1_000;
    this.#list = createCoalescer(
      () => this.#readList(),
      (error) => this.#failed('listing policies failed; keeping the policies in force', error, '', () => this.#list.trigger()),
    );
  }

  start(): void {
    this.#zk.on('session', this.#resync);
    this.#zk.on('reconnected', this.#resync);
    if (this.#zk.state === 'connected') this.#resync();
  }

  close(): void {
    this.#closed = true;
    for (const timer of this.#retries.values()) clearTimeout(timer);
    this.#retries.clear();
    this.#zk.off('session', this.#resync);
    this.#zk.off('reconnected', this.#resync);
    this.#markSynced();
  }

  get(service: string): PolicyState | undefined {
    return this.#watched.get(service)?.state;
  }

  all(): PolicyState[] {
    return [...this.#watched.values()].map((w) => w.state);
  }

  /** Resolves once the first listing and the reads it started are done (or on close). */
  whenSynced(): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return new Promise((resolve) => this.#syncWaiters.push(resolve));
  }

  /** Settles when no read is in flight. */
  async idle(): Promise<void> {
    await this.#list.idle();
    await Promise.all([...this.#watched.values()].map((w) => w.read.idle()));
  }

  readonly #resync = (): void => {
    if (this.#closed) return;
    this.#list.trigger();
    for (const w of this.#watched.values()) {
      w.seen = -1;
      w.read.trigger();
    }
  };

  readonly #onList = (): void => {
    if (!this.#closed) this.#list.trigger();
  };

  #failed(message: string, error: unknown, what: string, again: () => void): void {
    this.#log.warn(message, { path: this.path, ...(what && { service: what }), error });
    if (this.#closed || this.#zk.state !== 'connected') return; // a reconnect re-reads everything
    clearTimeout(this.#retries.get(what));
    const timer = setTimeout(() => {
      this.#retries.delete(what);
      again();
    }, this.#retryMs);
    timer.unref();
    this.#retries.set(what, timer);
  }

  async #readList(): Promise<void> {
    let names: string[];
    try {
      names = await this.#zk.getChildren(this.path, this.#onList);
    } catch (error) {
      if (!isNoNode(error)) throw error;
      // No policy path yet: no policies. Watch for its creation.
      if (await this.#zk.exists(this.path, this.#onList)) return this.#list.trigger();
      names = [];
    }
    if (this.#closed) return;
    const present = new Set(names.filter(isValidServiceName));
    for (const name of present) if (!this.#watched.has(name)) this.#add(name);
    for (const [name, w] of this.#watched) {
      if (present.has(name)) continue;
      this.#watched.delete(name);
      if (w.state.policy !== undefined || w.state.invalid !== undefined)
        this.#log.info('traffic policy removed: defaults apply', { service: name });
      this.emit('change', name, undefined);
    }
    if (!this.#synced) {
      await Promise.all([...this.#watched.values()].map((w) => w.read.idle()));
      this.#markSynced();
    }
  }

  #add(service: string): void {
    const path = join(this.path, service);
    const onData = () => {
      if (!this.#closed && this.#watched.get(service) === w) w.read.trigger();
    };
    const w: Watched = {
      state: { service, policy: undefined, version: undefined },
      seen: -1,
      read: createCoalescer(
        async () => {
          let read: { data: Buffer; version: number };
          try {
            read = await this.#zk.getDataWithVersion(path, onData);
          } catch (error) {
            if (isNoNode(error)) return this.#list.trigger();
            throw error;
          }
          if (this.#closed || this.#watched.get(service) !== w || read.version === w.seen) return;
          w.seen = read.version;
          this.#apply(w, read.data, read.version);
        },
        (error) => this.#failed('reading a traffic policy failed; keeping the one in force', error, service, () => w.read.trigger()),
      ),
    };
    this.#watched.set(service, w);
    w.read.trigger();
  }

  #apply(w: Watched, data: Buffer, version: number): void {
    const { service } = w.state;
    const parsed = parsePolicy(data);
    if (parsed.ok) {
      w.state = { service, policy: parsed.policy, version };
      this.#log.info('traffic policy in force', { service, version, policy: parsed.policy });
    } else {
      w.state = { service, policy: w.state.policy, version: w.state.version, invalid: { reason: parsed.reason, version } };
      this.#log.warn('traffic policy refused: the previous one stays in force', {
        service,
        version,
        reason: parsed.reason,
        inForce: w.state.version ?? 'defaults',
      });
      this.emit('invalid', service, parsed.reason, version);
    }
    this.emit('change', service, w.state);
  }

  #markSynced(): void {
    if (this.#synced) return;
    this.#synced = true;
    for (const resolve of this.#syncWaiters.splice(0)) resolve();
  }
}
