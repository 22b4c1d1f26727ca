/**
 * puttu, the library: register this service in ZooKeeper and find live endpoints of others.
 *
 * ```ts
 * import { connect } from 'puttu';
 * const puttu = connect('127.0.0.1:2181', '/services');
 * await puttu.register('warehouse', { port: 10001, api: '/warehouse/v1' }, 'eth0');
 * const endpoint = await puttu.get('billing'); // { url: 'http://10.0.0.7:9000/billing', ... }
 * ```
 *
 * The module-level form works too, as puttu was first described (CommonJS or ESM): `connect()`
 * also makes its client the module's default, which `register()`, `get()`, `list()` and
 * `close()` below use.
 *
 * ```js
 * var puttu = require('puttu');
 * puttu.connect('localhost:2181', '/myRegistry/endpoints');
 * puttu.register('warehouse', data, 'en0').then(...);
 * puttu.get('warehouse').then((endpoint) => fetch(`${endpoint}/stock`)); // endpoint.url, .host, .port...
 * ```
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { pickIndex, systemClock, type Random } from './clock.js';
import {
  ClosedError,
  InvalidRegistrationError,
  NoEndpointError,
  NotConnectedError,
  ZkTlsError,
  ZooKeeperUnavailableError,
} from './errors.js';
import { silentLogger, type Logger } from './logger.js';
import { digestAuth, ownedAcl, sharedParentAcl, type Credentials } from './registry/acl.js';
import { resolveHost } from './registry/host.js';
import { validateEndpoint, validateMetadata, validateWeight, type Instance, type Protocol } from './registry/instance.js';
import { isValidServiceName, normalizeBasePath } from './registry/paths.js';
import { Registrar, type Registration } from './registry/registrar.js';
import { Registry } from './registry/registry.js';
import { kZkClient, ZkClient, type AclEntry, type AuthInfo, type ConnectionState } from './registry/zk-client.js';
import { checkZkTlsOptions, type ZkTlsOptions } from './registry/zk-tls.js';

export {
  PuttuError,
  NoEndpointError,
  InvalidRegistrationError,
  ClosedError,
  NotConnectedError,
  ZooKeeperUnavailableError,
  ZkTlsError,
} from './errors.js';
export type { ZkTlsOptions } from './registry/zk-tls.js';
export type { Registration } from './registry/registrar.js';
export type { ConnectionState, AclEntry, AuthInfo } from './registry/zk-client.js';
export { digestId } from './registry/acl.js';
export type { Credentials } from './registry/acl.js';
export type { Logger } from './logger.js';
export { createLogger } from './logger.js';

export interface ConnectOptions {
  /** ZooKeeper session timeout (the server may clamp it). Default 10 s. */
  sessionTimeoutMs?: number;
  /** Deadline of each ZooKeeper operation. Default 5 s. */
  opTimeoutMs?: number;
  /** How long `register()` and a first `get()` of a service wait for ZooKeeper. Default 15 s. */
  connectTimeoutMs?: number;
  /** Random source in [0, 1) for `get()`; tests pin it. Default Math.random. */
  random?: Random;
  logger?: Logger;
  /** Credentials added to the session, e.g. `{ scheme: 'digest', auth: 'user:password' }`. */
  auth?: readonly AuthInfo[];
  /**
   * ACL of the instance nodes `register()` creates. Default: with `credentials`, that identity
   * may do everything and anyone may read; without, open (world:anyone).
   */
  acl?: readonly AclEntry[];
  /**
   * A ZooKeeper digest identity, added to the session's auth. Instance nodes get (unless `acl` is
   * given) this identity ALL and world READ. Base and service nodes this client creates get this
   * identity ALL and world READ + CREATE: ZooKeeper checks DELETE on the parent, so that is what
   * stops others from deleting the registrations, while instances of the same service under other
   * identities can still register (existing nodes keep their ACL: an open service node lets anyone
   * delete its children).
   */
  credentials?: Credentials;
  /**
   * On `close()`: how long the registrations stay up marked DRAINING before they are deleted and
   * the session ends. Proxies and other readers stop sending new requests to a DRAINING instance
   * while it still serves the requests they sent earlier. Default 0: deleted at once.
   */
  drainMs?: number;
  /**
   * Connect over TLS, to the servers' secureClientPort: `true` trusts the system's CAs, or PEM
   * contents `{ ca, cert, key, servername }` (`cert` and `key` for servers that require a client
   * certificate). A server that fails verification is not retried: `register()`, `get()` and
   * `list()` reject with ZkTlsError (code PUTTU_ZK_TLS; `reason`: the TLS error's code).
   */
  tls?: true | ZkTlsOptions;
}

export interface RegisterData {
  /** Default 'http'. */
  protocol?: Protocol;
  port: number;
  /** The service's base path on this instance, e.g. '/warehouse/v1'. Default ''. */
  api?: string;
  /** Overrides PUTTU_IP and the interface lookup. */
  host?: string;
  /** Relative share of traffic for balancers that weigh, an integer 1–1000. Default 1. */
  weight?: number;
  /** String labels written with the registration (at most 4 KiB as JSON). Default {}. */
  metadata?: Record<string, string>;
}

/** One live endpoint of a service. */
export interface Endpoint {
  readonly id: string;
  readonly service: string;
  readonly protocol: Protocol;
  readonly host: string;
  readonly port: number;
  readonly api: string;
  /** `protocol://host:port/api`: what to call. Also what the endpoint is as a string. */
  readonly url: string;
  /** The url: `${endpoint}/path` is a URL to call. */
  toString(): string;
}

export interface Puttu {
  /** Registers this instance under `service`; resolves once its znode exists. */
  register(service: string, data: RegisterData, networkInterface?: string): Promise<Registration>;
  /** One live endpoint chosen uniformly at random; rejects with NoEndpointError when none is live. */
  get(service: string): Promise<Endpoint>;
  /** Every live endpoint of the service (empty when none). */
  list(service: string): Promise<Endpoint[]>;
  /**
   * With `drainMs`: marks every registration DRAINING and waits `drainMs`. Then deletes the
   * registrations, stops watching and ends the session. Idempotent; always settles.
   */
  close(): Promise<void>;
  readonly state: ConnectionState;
}

/** The client the module-level functions use: the one the last `connect()` returned. */
let defaultClient: Puttu | undefined;

function theDefault(): Puttu {
  if (defaultClient === undefined) throw new NotConnectedError();
  return defaultClient;
}

/** Registers this instance with the default client (see `Puttu.register`). */
export function register(service: string, data: RegisterData, networkInterface?: string): Promise<Registration> {
  return Promise.resolve().then(() => theDefault().register(service, data, networkInterface));
}

/** One random live endpoint of `service`, from the default client (see `Puttu.get`). */
export function get(service: string): Promise<Endpoint> {
  return Promise.resolve().then(() => theDefault().get(service));
}

/** Every live endpoint of `service`, from the default client. */
export function list(service: string): Promise<Endpoint[]> {
  return Promise.resolve().then(() => theDefault().list(service));
}

/** Closes the default client (its registrations go, its session ends); nothing when there is none. */
export function close(): Promise<void> {
  const client = defaultClient;
  defaultClient = undefined;
  return client?.close() ?? Promise.resolve();
}

/**
 * A client of the registry under `basePath`. It also becomes the module's default client, for
 * `register()`, `get()`, `list()` and `close()` at module level; a later `connect()` replaces it
 * as the default (the earlier client stays open until it is closed).
 */
export function connect(connectString: string, basePath: string, options: ConnectOptions = {}): Puttu {
  const client = createClient(connectString, basePath, options);
  defaultClient = client;
  return client;
}

function createClient(connectString: string, basePath: string, options: ConnectOptions): Puttu {
  const base = normalizeBasePath(basePath);
  const logger = options.logger ?? silentLogger;
  const random = options.random ?? Math.random;
  const connectTimeoutMs = options.connectTimeoutMs ?? 15_000;
  const drainMs = options.drainMs ?? 0;
  if (!Number.isFinite(drainMs) || drainMs < 0) throw new RangeError(`drainMs must be a finite number >= 0, got ${drainMs}`);
  const { credentials } = options;
  const auth = [...(options.auth ?? []), ...(credentials ? [digestAuth(credentials)] : [])];
  const acl = options.acl ?? (credentials && ownedAcl(credentials));
  const tls = options.tls === undefined ? undefined : checkZkTlsOptions(options.tls === true ? {} : options.tls);
  const zk = new ZkClient({
    connectString,
    logger: logger.child({ component: 'zookeeper' }),
    ...(options.sessionTimeoutMs !== undefined && { sessionTimeoutMs: options.sessionTimeoutMs }),
    ...(options.opTimeoutMs !== undefined && { opTimeoutMs: options.opTimeoutMs }),
    ...(auth.length > 0 && { auth }),
    ...(tls && { tls }),
  });
  const registry = new Registry({ zk, basePath: base, logger, clock: systemClock, mode: 'lazy' });
  const registrar = new Registrar({
    zk,
    basePath: base,
    logger,
    ...(acl && { acl }),
    ...(credentials && { parentAcl: sharedParentAcl(credentials) }),
  });
  let closing: Promise<void> | undefined;
  registry.start();
  zk.connect();

  async function ready(): Promise<void> {
    if (closing) throw new ClosedError();
    try {
      await zk.whenConnected(connectTimeoutMs);
    } catch (error) {
      if (error instanceof ZkTlsError) throw error;
      throw new ZooKeeperUnavailableError(`ZooKeeper at ${connectString} is not reachable`, { cause: error });
    }
  }

  /** From the watched cache; only a service's first call waits for its first read. */
  async function instancesOf(service: string): Promise<readonly Instance[]> {
    checkName(service);
    // A closed handle no longer watches: its cache would answer with data that silently ages.
    if (closing) throw new ClosedError();
    const cached = registry.cached(service);
    if (cached) return cached.instances;
    await ready();
    const snapshot = await withTimeout(registry.watch(service), connectTimeoutMs, service);
    return snapshot?.instances ?? [];
  }

  const handle: Puttu = {
    async register(service, data, networkInterface) {
      checkName(service);
      const host = data.host ?? resolveHost(networkInterface);
      const endpoint = validateEndpoint({ protocol: data.protocol ?? 'http', host, port: data.port, api: data.api ?? '' });
      if (typeof endpoint === 'string') throw new InvalidRegistrationError(endpoint);
      const weight = validateWeight(data.weight);
      if (typeof weight === 'string') throw new InvalidRegistrationError(weight);
      const metadata = validateMetadata(data.metadata);
      if (typeof metadata === 'string') throw new InvalidRegistrationError(metadata);
      await ready();
      return registrar.register(service, endpoint, { weight, metadata });
    },
    async get(service) {
      const instances = await instancesOf(service);
      if (instances.length === 0) throw new NoEndpointError(service);
      return toEndpoint(instances[pickIndex(random, instances.length)]!);
    },
    async list(service) {
      return (await instancesOf(service)).map(toEndpoint);
    },
    close() {
      closing ??= (async () => {
        if (drainMs > 0) {
          // DRAINING reaches watchers at once and they stop sending new requests here, while
          // requests they sent a moment earlier (or from a cache) still find this instance up.
          // Deleting first would leave no trace of why it went, and no time for those requests.
          await registrar.drain();
          await sleep(drainMs);
        }
        await registrar.close();
        registry.close();
        await zk.close();
      })();
      return closing;
    },
    get state() {
      return zk.state;
    },
  };
  // Not enumerable and not on the Puttu type: tests reach the session through it (to expire it).
  Object.defineProperty(handle, kZkClient, { value: zk });
  return handle;
}

function checkName(service: string): void {
  if (!isValidServiceName(service)) {
    throw new InvalidRegistrationError(
      `service name ${JSON.stringify(service)} is not usable: letters, digits, '.', '_', '~' and '-' only`,
    );
  }
}

function toEndpoint(i: Instance): Endpoint {
  const endpoint = { id: i.id, service: i.service, protocol: i.protocol, host: i.host, port: i.port, api: i.api, url: i.url };
  // Not enumerable: the endpoint still logs and serialises as its fields.
  return Object.defineProperty(endpoint, 'toString', { value: endpointUrl }) as Endpoint;
}

function endpointUrl(this: Endpoint): string {
  return this.url;
}

function withTimeout<T>(promise: Promise<T>, ms: number, service: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ZooKeeperUnavailableError(`no answer from ZooKeeper about "${service}" within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
