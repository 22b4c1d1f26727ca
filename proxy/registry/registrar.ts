/**
 * Keeps this process's registrations in ZooKeeper: each an EPHEMERAL_SEQUENTIAL znode that lives
 * as long as the session. After a session expiry the nodes are gone, so each is written again on
 * the new session, exactly once: any node still carrying this registration's id (a create whose
 * answer was lost, or a session the client gave up on before the server did) is deleted first, so
 * no duplicate lingers and watchers see the change (Curator x-discovery does the same).
 *
 * Shutting down gracefully, `drain()` first rewrites each node with status DRAINING: readers stop
 * sending new requests while this process still serves, before `close()` deletes the nodes.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../logger.js';
import { ClosedError } from '../errors.js';
import { encodeRegistration, registrationIdOf, type EndpointData, type RegistrationRecord, type RegistrationStatus } from './instance.js';
import { instancePrefix, join, lastSegment, servicePath } from './paths.js';
import { isNoAuth, isNoNode, type AclEntry, type ZkClient } from './zk-client.js';

export interface Registration {
  readonly service: string;
  /** This registration's id, written into its znode data. */
  readonly id: string;
  readonly endpoint: Readonly<EndpointData>;
  /** Relative share of traffic, 1–1000. */
  readonly weight: number;
  readonly metadata: Readonly<Record<string, string>>;
  /** 'UP'; 'DRAINING' once its owner has begun shutting down, or set so with `setStatus()`. */
  readonly status: RegistrationStatus;
  /** The znode currently holding it (changes after a session expiry). */
  readonly path: string;
  /** Deletes the znode and stops maintaining it. Idempotent. */
  unregister(): Promise<void>;
  /**
   * Rewrites the znode's status in place: 'DRAINING' keeps readers from sending new requests while
   * the node stays, 'UP' makes it routable again (a failing health check, maintenance). A node
   * re-created after a session expiry carries the status last set. Rejects when the node cannot be
   * rewritten now (ZooKeeper away): the status is kept for the next write and the caller may call
   * again. No effect once unregistered.
   */
  setStatus(status: RegistrationStatus): Promise<void>;
}

/** What a registration carries besides its endpoint (validated by the caller). */
export interface RegistrationExtras {
  weight?: number;
  metadata?: Readonly<Record<string, string>>;
}

export interface RegistrarOptions {
  zk: ZkClient;
  basePath: string;
  logger: Logger;
  /** ACL of the instance nodes (e.g. digest credentials: only this identity may change them). */
  acl?: readonly AclEntry[];
  /** ACL of the base and service nodes it creates (existing ones are left alone). Default: open. */
  parentAcl?: readonly AclEntry[];
  retryMs?: number;
}

class Entry implements Registration {
  readonly service: string;
  readonly id = randomUUID();
  readonly endpoint: Readonly<EndpointData>;
  path = '';
  generation = 0;
  removed = false;
  /** Serialises writes of this registration. */
  chain: Promise<void> = Promise.resolve();
  retry: NodeJS.Timeout | undefined;
  readonly record: RegistrationRecord;
  constructor(
    service: string,
    endpoint: EndpointData,
    extras: RegistrationExtras,
    readonly registrar: Registrar,
  ) {
    this.service = service;
    this.endpoint = Object.freeze({ ...endpoint });
    this.record = {
      ...endpoint,
      id: this.id,
      registrationTimeUTC: Date.now(),
      status: 'UP',
      weight: extras.weight ?? 1,
      metadata: Object.freeze({ ...extras.metadata }),
    };
  }
  get weight(): number {
    return this.record.weight;
  }
  get metadata(): Readonly<Record<string, string>> {
    return this.record.metadata;
  }
  get status(): RegistrationStatus {
    return this.record.status;
  }
  unregister(): Promise<void> {
    return this.registrar.unregister(this);
  }
  setStatus(status: RegistrationStatus): Promise<void> {
    return this.registrar.setStatus(this, status);
  }
}

export class Registrar {
  readonly #entries = new Set<Entry>();
  readonly #o: RegistrarOptions;
  #closed = false;

  constructor(options: RegistrarOptions) {
    this.#o = options;
    options.zk.on('session', this.#onSession);
  }

  get registrations(): readonly Registration[] {
    return [...this.#entries];
  }

  /** Writes the registration; resolves once its znode exists. Kept alive across sessions after that. */
  async register(service: string, endpoint: EndpointData, extras: RegistrationExtras = {}): Promise<Registration> {
    if (this.#closed) throw new ClosedError('registrar');
    const entry = new Entry(service, endpoint, extras, this);
    this.#entries.add(entry);
    try {
      await this.#write(entry, false);
    } catch (error) {
      this.#entries.delete(entry);
      entry.removed = true;
      throw error;
    }
    return entry;
  }

  async unregister(reg: Registration): Promise<void> {
    const entry = reg as Entry;
    if (entry.removed) return entry.chain;
    entry.removed = true;
    clearTimeout(entry.retry);
    this.#entries.delete(entry);
    entry.chain = entry.chain.then(() => this.#remove(entry));
    return entry.chain;
  }

  /**
   * Marks every registration DRAINING: its node's data is rewritten in place (readers' data
   * watches fire and they stop routing new requests to it), and a node re-created after a session
   * expiry is written DRAINING too. Never rejects: a node it cannot rewrite now (ZooKeeper away)
   * is logged and left to the deletion that follows the drain.
   */
  async drain(): Promise<void> {
    await Promise.all(
      [...this.#entries].map((entry) => {
        if (entry.record.status !== 'DRAINING') {
          entry.record.status = 'DRAINING';
          entry.chain = entry.chain.then(() => this.#markDraining(entry));
        }
        return entry.chain;
      }),
    );
  }

  /** See `Registration.setStatus()`. */
  setStatus(reg: Registration, status: RegistrationStatus): Promise<void> {
    const entry = reg as Entry;
    if (entry.removed) return Promise.resolve();
    entry.record.status = status;
    const write = entry.chain.then(() => this.#writeStatus(entry));
    entry.chain = write.catch(() => undefined);
    return write;
  }

  /** Deletes every registration (before the session is closed). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#o.zk.off('session', this.#onSession);
    await Promise.all([...this.#entries].map((e) => this.unregister(e)));
  }

  /** Settles when no write or delete of any registration is in flight (tests, orderly shutdown). */
  async idle(): Promise<void> {
    for (;;) {
      const chains = [...this.#entries].map((e) => e.chain);
      await Promise.all(chains);
      if ([...this.#entries].every((e, i) => e.chain === chains[i])) return;
    }
  }

  /**
   * Deletes the node of a removed registration. While its session lives, a failed delete is
   * retried: the node would otherwise stay routable with nobody maintaining it. When the registrar
   * is closing and ZooKeeper is away, the node is left to the session's end (close or expiry)
   * instead of waiting out an operation that cannot succeed.
   */
  async #remove(entry: Entry): Promise<void> {
    const { zk, logger } = this.#o;
    if (!entry.path || zk.state === 'closed' || zk.generation !== entry.generation) return;
    if (this.#closed && zk.state !== 'connected') return;
    try {
      await zk.remove(entry.path);
      logger.info('deregistered', { service: entry.service, path: entry.path });
    } catch (error) {
      if (isNoNode(error)) return;
      if (isNoAuth(error)) {
        // ZooKeeper checks DELETE on the parent: a service node owned by another identity refuses
        // it for good. Retrying cannot help; the ephemeral node goes when the session ends.
        logger.error('deregistration refused: the service node does not grant this identity DELETE; the node goes with the session', {
          path: entry.path,
        });
        return;
      }
      const retry = !this.#closed && zk.generation === entry.generation;
      logger.warn(retry ? 'deregistration failed; retrying' : 'deregistration failed; the node goes with the session', {
        path: entry.path,
        error,
      });
      if (!retry) return;
      entry.retry = setTimeout(() => {
        entry.chain = entry.chain.then(() => this.#remove(entry));
      }, this.#o.retryMs ?? 1_000);
      entry.retry.unref();
    }
  }

  async #markDraining(entry: Entry): Promise<void> {
    const { zk, logger } = this.#o;
    // No node on this session yet: the write that re-creates it encodes the record, DRAINING.
    if (entry.removed || !entry.path || zk.generation !== entry.generation) return;
    if (zk.state !== 'connected') {
      logger.warn('ZooKeeper away: the registration cannot be marked DRAINING; it is deleted after the drain', { path: entry.path });
      return;
    }
    try {
      await zk.setData(entry.path, encodeRegistration(entry.record));
      logger.info('draining: registration marked DRAINING', { service: entry.service, path: entry.path });
    } catch (error) {
      if (isNoNode(error)) return; // gone with its session; the re-creation writes DRAINING
      logger.warn('marking the registration DRAINING failed; it is deleted after the drain', { path: entry.path, error });
    }
  }

  async #writeStatus(entry: Entry): Promise<void> {
    const { zk, logger } = this.#o;
    // No node on this session yet: the write that re-creates it encodes the record, new status included.
    if (entry.removed || !entry.path || zk.generation !== entry.generation) return;
    try {
      await zk.setData(entry.path, encodeRegistration(entry.record));
    } catch (error) {
      if (isNoNode(error)) return; // gone with its session; the re-creation writes the status
      throw error;
    }
    logger.info(`registration marked ${entry.record.status}`, { service: entry.service, path: entry.path });
  }

  readonly #onSession = (generation: number): void => {
    for (const entry of this.#entries) {
      if (entry.generation === generation) continue;
      this.#write(entry, true).catch(() => {
        /* #write schedules its own retry and logs */
      });
    }
  };

  /** Writes `entry` on the current session, once; `recover` first deletes nodes it left earlier. */
  #write(entry: Entry, recover: boolean): Promise<void> {
    const run = async () => {
      if (entry.removed || this.#closed) return;
      const { zk, basePath, acl, logger } = this.#o;
      const generation = zk.generation;
      if (entry.generation === generation && entry.generation !== 0) return;
      try {
        // Not the instances' ACL: every instance of the service, whatever its identity, must be
        // able to create its node under the service node (see acl.ts, sharedParentAcl).
        await zk.mkdirp(servicePath(basePath, entry.service), this.#o.parentAcl);
        if (recover) await this.#deleteOwn(entry);
        const path = await zk.create(
          instancePrefix(basePath, entry.service),
          encodeRegistration(entry.record),
          'ephemeral_sequential',
          acl,
        );
        entry.path = path;
        // The session that answered, not the one seen at the start: a write sent while the first
        // session was being established (generation 0) belongs to that session, and recording 0
        // made its 'session' event delete and re-create the node right after register() resolved.
        entry.generation = zk.generation;
        logger.info(recover ? 're-registered on the new session' : 'registered', {
          service: entry.service,
          path,
          url: `${entry.endpoint.protocol}://${entry.endpoint.host}:${entry.endpoint.port}${entry.endpoint.api}`,
        });
        if (entry.removed) await zk.remove(path).catch(() => undefined);
      } catch (error) {
        if (entry.removed || this.#closed) return;
        logger.warn('registration write failed; retrying', { service: entry.service, error });
        clearTimeout(entry.retry);
        entry.retry = setTimeout(() => void this.#write(entry, true).catch(() => undefined), this.#o.retryMs ?? 1_000);
        entry.retry.unref();
        throw error;
      }
    };
    const next = entry.chain.then(run);
    entry.chain = next.catch(() => undefined);
    return next;
  }

  async #deleteOwn(entry: Entry): Promise<void> {
    const { zk, basePath } = this.#o;
    const dir = servicePath(basePath, entry.service);
    let children: string[];
    try {
      children = await zk.getChildren(dir);
    } catch (error) {
      if (isNoNode(error)) return;
      throw error;
    }
    const prefix = lastSegment(instancePrefix(basePath, entry.service));
    await Promise.all(
      children
        .filter((c) => c.startsWith(prefix))
        .map(async (child) => {
          const path = join(dir, child);
          const data = await zk.getData(path).catch((e) => (isNoNode(e) ? undefined : Promise.reject(e)));
          if (registrationIdOf(data) !== entry.id) return;
          try {
            await zk.remove(path);
            this.#o.logger.info('deleted a stale node of this registration', { path });
          } catch (error) {
            if (isNoNode(error)) return;
            // Not ours to delete (see #remove); it vanishes when its old session expires on the server.
            if (isNoAuth(error))
              return this.#o.logger.warn('a stale node of this registration cannot be deleted (ACL); it goes with its session', { path });
            throw error;
          }
        }),
    );
  }
}
