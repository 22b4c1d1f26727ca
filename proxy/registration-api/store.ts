/**
 * The registrations made over the REST API, kept in ZooKeeper where Curator keeps instances:
 * `<base>/<name>/<id>`, an EPHEMERAL node owned by the proxy's own session holding the instance's
 * Curator JSON. Each lives while its lease is renewed (a PUT within the TTL, ttl.ts); it goes on
 * DELETE, when the lease lapses, or with the proxy's session.
 *
 * - A renewal whose data is unchanged writes nothing: heartbeats cost ZooKeeper nothing and
 *   readers see no churn; changed data is rewritten in place (readers' data watches fire).
 * - A node already at the path that this process does not hold (left by an earlier session, or
 *   another writer's) is replaced, as Curator's `registerService()` replaces it.
 * - After a session expiry the nodes are gone: each registration still leased is written again
 *   on the new session (retried every second while ZooKeeper refuses).
 *
 * Reads go to ZooKeeper itself, as curator-x-discovery-server's do: a GET right after a PUT sees it.
 */
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import { RegistrationConflictError, RegistrationLimitError, ZkError } from '../errors.js';
import { join, servicePath } from '../registry/paths.js';
import { isNoNode, type ZkClient } from '../registry/zk-client.js';
import { encodeRecord, instanceJson, type CuratorRecord } from './instance-body.js';
import { TtlTracker } from './ttl.js';

export interface StoreOptions {
  zk: ZkClient;
  basePath: string;
  ttlMs: number;
  clock: Clock;
  logger: Logger;
  /** How often lapsed leases are looked for; default a quarter of the TTL, 50 ms to 1 s. */
  sweepMs?: number;
  retryMs?: number;
  /** Most registrations held at once (their records are kept in memory); default 10,000. */
  maxRegistrations?: number;
}

interface Held {
  record: CuratorRecord;
  data: Buffer;
  path: string;
  /** The session the node was last written on (0: not written on any yet). */
  generation: number;
  /** The data the node holds on that session. */
  written: Buffer | undefined;
  retry: NodeJS.Timeout | undefined;
}

export type PutOutcome = 'created' | 'renewed';

export const MAX_REGISTRATIONS = 10_000;

const isNodeExists = (e: unknown): boolean => e instanceof ZkError && e.zkCode === 'node_exists';

export class RestRegistrations {
  readonly #o: StoreOptions;
  readonly #held = new Map<string, Held>();
  readonly #ttl: TtlTracker<string>;
  /** Serialises the writes of one path. */
  readonly #chains = new Map<string, Promise<void>>();
  readonly #sweep: NodeJS.Timeout;
  #closed = false;

  constructor(options: StoreOptions) {
    this.#o = options;
    this.#ttl = new TtlTracker(options.ttlMs, options.clock);
    options.zk.on('session', this.#onSession);
    const every = options.sweepMs ?? Math.min(1_000, Math.max(50, Math.floor(options.ttlMs / 4)));
    this.#sweep = setInterval(() => this.sweep(), every);
    this.#sweep.unref();
  }

  get ttlMs(): number {
    return this.#ttl.ttlMs;
  }

  /** Registers or renews `record`; resolves once its node holds the record on the current session. */
  async put(record: CuratorRecord): Promise<PutOutcome> {
    const path = join(servicePath(this.#o.basePath, record.name), record.id);
    const data = encodeRecord(record);
    let held = this.#held.get(path);
    const outcome: PutOutcome = held ? 'renewed' : 'created';
    if (held) {
      // The node keeps the registration's first time: a heartbeat that only sends a new
      // registrationTimeUTC (as Curator's REST clients do) must not rewrite it, or every reader
      // would see a changed instance, and lose its health state for it, on every renewal.
      const kept = { ...record, registrationTimeUTC: held.record.registrationTimeUTC };
      const keptData = encodeRecord(kept);
      const onlyTime = keptData.equals(held.data);
      held.record = onlyTime ? kept : record;
      held.data = onlyTime ? keptData : data;
    } else {
      const max = this.#o.maxRegistrations ?? MAX_REGISTRATIONS;
      if (this.#held.size >= max) {
        throw new RegistrationLimitError(`${max} registrations are held, the most this proxy keeps; DELETE one or let it lapse first`);
      }
      held = { record, data, path, generation: 0, written: undefined, retry: undefined };
      this.#held.set(path, held);
    }
    const h = held;
    try {
      await this.#serially(path, () => this.#ensure(h));
    } catch (error) {
      // A first PUT that could not be written leaves nothing behind; a renewal keeps its lease
      // (its node, if this session has one, still holds the earlier data).
      if (outcome === 'created' && this.#held.get(path) === h && h.written === undefined) this.#held.delete(path);
      else this.#ttl.renew(path);
      throw error;
    }
    if (this.#held.get(path) === h) this.#ttl.renew(path);
    if (outcome === 'created') this.#o.logger.info('registered over REST', { service: record.name, id: record.id, path });
    return outcome;
  }

  /**
   * Removes `<name>/<id>`: a registration of this API, or any Curator instance at that path (as
   * curator-x-discovery-server's DELETE does). True when something was removed.
   */
  async delete(name: string, id: string): Promise<boolean> {
    const path = join(servicePath(this.#o.basePath, name), id);
    const held = this.#held.get(path);
    if (held) this.#drop(path, held);
    return this.#serially(path, async () => {
      if (!held) {
        const data = await this.#o.zk.getData(path).catch((e) => (isNoNode(e) ? undefined : Promise.reject(e)));
        if (data === undefined || instanceJson(data) === undefined) return false;
      }
      try {
        await this.#o.zk.remove(path);
      } catch (error) {
        if (isNoNode(error)) return held !== undefined;
        throw error;
      }
      this.#o.logger.info('deregistered over REST', { service: name, id, path });
      return true;
    });
  }

  /** Drops the registrations whose lease lapsed and deletes their nodes. */
  sweep(): void {
    for (const path of this.#ttl.takeLapsed()) {
      const held = this.#held.get(path);
      if (!held) continue;
      this.#drop(path, held);
      this.#o.logger.info('REST registration lapsed: not renewed within the TTL', {
        service: held.record.name,
        id: held.record.id,
        ttlMs: this.#ttl.ttlMs,
      });
      this.#removeLapsed(path, held.generation);
    }
  }

  /** Deletes a lapsed registration's node; retried while its session lives and nobody re-PUT it. */
  #removeLapsed(path: string, generation: number): void {
    void this.#serially(path, async () => {
      // A node of an earlier session went with it; one re-PUT since then is a new registration.
      if (this.#closed || this.#held.has(path) || generation !== this.#o.zk.generation) return;
      try {
        await this.#o.zk.remove(path);
      } catch (error) {
        if (isNoNode(error)) return;
        this.#o.logger.warn('deleting a lapsed REST registration failed; retrying', { path, error });
        const retry = setTimeout(() => this.#removeLapsed(path, generation), this.#o.retryMs ?? 1_000);
        retry.unref();
      }
    }).catch(() => undefined);
  }

  /** The service names under the base path, sorted. */
  async names(): Promise<string[]> {
    const children = await this.#o.zk.getChildren(this.#o.basePath).catch((e) => (isNoNode(e) ? [] : Promise.reject(e)));
    return children.sort();
  }

  /** The Curator instances of a service, by id; nodes of other formats are left out. */
  async instances(name: string): Promise<Array<Record<string, unknown>>> {
    const dir = servicePath(this.#o.basePath, name);
    const children = await this.#o.zk.getChildren(dir).catch((e) => (isNoNode(e) ? [] : Promise.reject(e)));
    const found = await Promise.all(children.sort().map((child) => this.#read(join(dir, child))));
    return found.filter((i) => i !== undefined);
  }

  /** One Curator instance, or undefined when there is none at `<name>/<id>`. */
  instance(name: string, id: string): Promise<Record<string, unknown> | undefined> {
    return this.#read(join(servicePath(this.#o.basePath, name), id));
  }

  /** Stops leasing and sweeping; the nodes go with the proxy's session, which closes next. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweep);
    this.#o.zk.off('session', this.#onSession);
    for (const held of this.#held.values()) clearTimeout(held.retry);
  }

  async #read(path: string): Promise<Record<string, unknown> | undefined> {
    const data = await this.#o.zk.getData(path).catch((e) => (isNoNode(e) ? undefined : Promise.reject(e)));
    return data === undefined ? undefined : instanceJson(data);
  }

  #drop(path: string, held: Held): void {
    clearTimeout(held.retry);
    this.#held.delete(path);
    this.#ttl.forget(path);
  }

  /** Makes the node hold `held.data` on the current session. */
  async #ensure(held: Held): Promise<void> {
    const { zk, basePath } = this.#o;
    if (this.#held.get(held.path) !== held) return;
    let current = held.generation !== 0 && held.generation === zk.generation;
    if (current && held.written?.equals(held.data)) {
      // Unchanged: nothing to write, unless someone deleted the node (another API's DELETE, an
      // operator); then this renewal creates it again, as a Curator heartbeat would. With
      // ZooKeeper away the renewal succeeds without looking: the node is kept or re-made later.
      if (zk.state !== 'connected' || (await zk.exists(held.path))) return;
      current = false;
    }
    const data = held.data;
    if (current) {
      try {
        await zk.setData(held.path, data);
        held.written = data;
        return;
      } catch (error) {
        if (!isNoNode(error)) throw error; // deleted behind our back: created again below
      }
    }
    await zk.mkdirp(servicePath(basePath, held.record.name));
    try {
      await zk.create(held.path, data, 'ephemeral');
    } catch (error) {
      if (!isNodeExists(error)) throw error;
      // Another Curator instance (an earlier session's, or another writer's) is replaced; a node of
      // another format (a puttu registration, a serverset member) is not this API's to delete.
      const existing = await zk.getData(held.path).catch((e) => (isNoNode(e) ? undefined : Promise.reject(e)));
      if (existing !== undefined && instanceJson(existing) === undefined) {
        throw new RegistrationConflictError(`${held.path} holds a znode that is not a Curator instance; it is left alone`);
      }
      await zk.remove(held.path).catch((e) => (isNoNode(e) ? undefined : Promise.reject(e)));
      await zk.create(held.path, data, 'ephemeral');
    }
    // The session that answered: a write sent while the first session was being set up belongs to it.
    held.generation = zk.generation;
    held.written = data;
    // Deleted (or lapsed) while being written: nobody maintains the node now.
    if (this.#held.get(held.path) !== held) await zk.remove(held.path).catch(() => undefined);
  }

  #serially<T>(path: string, run: () => Promise<T>): Promise<T> {
    const before = this.#chains.get(path) ?? Promise.resolve();
    const next = before.then(run);
    const settled = next.then(
      () => undefined,
      () => undefined,
    );
    this.#chains.set(path, settled);
    void settled.then(() => {
      if (this.#chains.get(path) === settled) this.#chains.delete(path);
    });
    return next;
  }

  readonly #onSession = (generation: number): void => {
    for (const held of this.#held.values()) if (held.generation !== generation) this.#rewrite(held);
  };

  #rewrite(held: Held): void {
    if (this.#closed) return;
    this.#serially(held.path, () => this.#ensure(held)).then(
      () => this.#o.logger.info('REST registration written on the new session', { path: held.path }),
      (error) => {
        if (this.#closed || this.#held.get(held.path) !== held) return;
        this.#o.logger.warn('writing a REST registration on the new session failed; retrying', { path: held.path, error });
        clearTimeout(held.retry);
        held.retry = setTimeout(() => this.#rewrite(held), this.#o.retryMs ?? 1_000);
        held.retry.unref();
      },
    );
  }
}
