/**
 * The one adapter over `node-zookeeper-client`: nothing else in puttu imports the library. It turns callbacks into promises
 * and hides the library's known gaps from the rest of puttu:
 *
 * - Every operation has a timeout: requests queued while disconnected are otherwise never answered
 *   when the session then expires (they sit in the library's packet queue forever).
 * - An operation issued while disconnected waits here, not in the library's queue, and is sent only
 *   once connected: one that timed out is never sent later behind its caller's back (a create the
 *   caller was told failed would otherwise appear on reconnect, a node nobody maintains).
 * - A session expiry (or a disconnection longer than the session timeout, after which the server
 *   has certainly expired it, as Curator also assumes) replaces the underlying client with a new
 *   one and emits `session` once the new session is established. Watches do not survive a new
 *   session: listeners of `session` re-read and re-arm (ZooKeeper Programmer's Guide, "ZooKeeper
 *   Watches": watches are tied to the session).
 * - A server that stops answering (frozen, or a connection that swallows the handshake) is dropped
 *   after a read timeout and the next one tried; the library alone would wait on it forever.
 * - `close()` always ends, even when no server answers; nothing keeps the process alive after it.
 * - With `tls`, it speaks TLS (deps/zookeeper-client.ts, tlsSockets). A server that fails
 *   verification or refuses the handshake is skipped like an unreachable one; once every server of
 *   the connect string has failed so, with no connection in between, the client stops in state
 *   `tls_failed`: certificates do not fix themselves, so retrying would only loop. Operations and
 *   `whenConnected()` then reject with the ZkTlsError (`tlsError`), which names the reason.
 */
import { EventEmitter } from 'node:events';
import type Zk from 'node-zookeeper-client';
import type { Logger } from '../logger.js';
import { ZkError } from '../errors.js';

export { ZkError };
import { closeClient, frameReads, guardReads, leanWatchers, LibraryEvent, tlsSockets, zookeeper } from '../deps/zookeeper-client.js';
import { tlsFailure, type ZkTlsError, type ZkTlsOptions } from './zk-tls.js';

export type ConnectionState = 'connecting' | 'connected' | 'disconnected' | 'expired' | 'auth_failed' | 'tls_failed' | 'closed';
export const CONNECTION_STATES: readonly ConnectionState[] = [
  'connecting',
  'connected',
  'disconnected',
  'expired',
  'auth_failed',
  'tls_failed',
  'closed',
];

export type CreateMode = 'persistent' | 'ephemeral' | 'ephemeral_sequential';
export type WatchEventType = 'created' | 'deleted' | 'data' | 'children';
export interface WatchEvent {
  readonly type: WatchEventType;
  readonly path: string;
}
export type Watcher = (event: WatchEvent) => void;

export interface AuthInfo {
  scheme: string;
  auth: string;
}

/** An ACL entry in our own terms, so no caller imports the ZooKeeper library. */
export interface AclEntry {
  scheme: 'world' | 'digest' | 'auth' | 'ip';
  id: string;
  perms: Array<'read' | 'write' | 'create' | 'delete' | 'admin' | 'all'>;
}

export interface ZkClientOptions {
  connectString: string;
  sessionTimeoutMs?: number;
  /** Per-operation deadline (sent while disconnected included). */
  opTimeoutMs?: number;
  /** Sleep between rounds over the server list when none answers. */
  spinDelayMs?: number;
  auth?: readonly AuthInfo[];
  /** Connect over TLS (to the servers' secureClientPort). */
  tls?: ZkTlsOptions;
  logger: Logger;
  /** Tests reattach to a session to expire it deterministically. */
  session?: { id: Buffer; password: Buffer };
}

/**
 * Internal: the ZkClient behind a `connect()` handle, kept off its public type and enumeration.
 * Tests use it to expire the handle's session; applications have no use for it.
 */
export const kZkClient: unique symbol = Symbol('puttu.zkClient');

export const isNoNode = (e: unknown): boolean => e instanceof ZkError && e.zkCode === 'no_node';
export const isNoAuth = (e: unknown): boolean => e instanceof ZkError && e.zkCode === 'no_auth';

const DEFAULTS = { sessionTimeoutMs: 10_000, opTimeoutMs: 5_000, spinDelayMs: 200 };
const CLOSE_GRACE_MS = 2_000;

const CODE_NAMES: Record<number, string> = {
  [zookeeper.Exception.CONNECTION_LOSS]: 'connection_loss',
  [zookeeper.Exception.NO_NODE]: 'no_node',
  [zookeeper.Exception.NODE_EXISTS]: 'node_exists',
  [zookeeper.Exception.NOT_EMPTY]: 'not_empty',
  [zookeeper.Exception.NO_AUTH]: 'no_auth',
  [zookeeper.Exception.BAD_VERSION]: 'bad_version',
  [zookeeper.Exception.SESSION_EXPIRED]: 'session_expired',
  [zookeeper.Exception.AUTH_FAILED]: 'auth_failed',
  [zookeeper.Exception.INVALID_ACL]: 'invalid_acl',
  [zookeeper.Exception.NO_CHILDREN_FOR_EPHEMERALS]: 'no_children_for_ephemerals',
  [zookeeper.Exception.OPERATION_TIMEOUT]: 'operation_timeout',
};

const EVENT_TYPES: Record<number, WatchEventType> = {
  [zookeeper.Event.NODE_CREATED]: 'created',
  [zookeeper.Event.NODE_DELETED]: 'deleted',
  [zookeeper.Event.NODE_DATA_CHANGED]: 'data',
  [zookeeper.Event.NODE_CHILDREN_CHANGED]: 'children',
};

const MODES: Record<CreateMode, number> = {
  persistent: zookeeper.CreateMode.PERSISTENT,
  ephemeral: zookeeper.CreateMode.EPHEMERAL,
  ephemeral_sequential: zookeeper.CreateMode.EPHEMERAL_SEQUENTIAL,
};

const PERMS: Record<AclEntry['perms'][number], number> = {
  read: zookeeper.Permission.READ,
  write: zookeeper.Permission.WRITE,
  create: zookeeper.Permission.CREATE,
  delete: zookeeper.Permission.DELETE,
  admin: zookeeper.Permission.ADMIN,
  all: zookeeper.Permission.ALL,
};

type Callback<T> = (error: Error | Zk.Exception | null, result: T) => void;

export interface ZkClientEvents {
  state: [state: ConnectionState];
  /** A session was established: the first one, or a new one after expiry. Re-read and re-arm. */
  session: [generation: number];
  /** The same session is connected again after a disconnection: watches were kept (SetWatches). */
  reconnected: [];
}

export class ZkClient extends EventEmitter<ZkClientEvents> {
  readonly connectString: string;
  #state: ConnectionState = 'connecting';
  #client: Zk.Client | undefined;
  #generation = 0;
  #sessionEstablished = false;
  #expiryTimer: NodeJS.Timeout | undefined;
  #stopGuard: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  /** Operations awaiting an answer, by the library client they were sent on. */
  readonly #pending = new Map<Zk.Client, Set<(error: ZkError | ZkTlsError) => void>>();
  /** Operations issued while not connected, to be sent once connected. */
  readonly #waiting = new Set<{ send(): void; fail(error: ZkError | ZkTlsError): void }>();
  readonly #opts: Required<Omit<ZkClientOptions, 'session' | 'auth' | 'tls'>> & Pick<ZkClientOptions, 'session' | 'auth' | 'tls'>;
  /** Servers whose TLS handshake failed since the last connection; all of them: tls_failed. */
  readonly #tlsFailed = new Set<string>();
  readonly #serverCount: number;
  #tlsError: ZkTlsError | undefined;
  readonly #log: Logger;

  constructor(options: ZkClientOptions) {
    super();
    this.#opts = { ...DEFAULTS, ...options };
    this.connectString = options.connectString;
    this.#log = options.logger;
    this.#serverCount = new Set(
      options.connectString
        .split('/')[0]!
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    ).size;
  }

  /** Why the client stopped for good after a TLS failure (state `tls_failed`, then `closed`); undefined otherwise. */
  get tlsError(): ZkTlsError | undefined {
    return this.#tlsError;
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** How many sessions this client has had; bumps on each new session. */
  get generation(): number {
    return this.#generation;
  }

  get sessionTimeoutMs(): number {
    return this.#client?.getSessionTimeout() ?? this.#opts.sessionTimeoutMs;
  }

  /** Starts connecting; returns at once. Watch `state`/`session`, or await `whenConnected()`. */
  connect(): void {
    if (this.#client || this.#closing) return;
    this.#open(this.#opts.session);
  }

  /** The current session's id and password (tests use them to expire the session). */
  sessionCredentials(): { id: Buffer; password: Buffer } {
    if (!this.#client) throw new ZkError('closed', 'not connected');
    return { id: this.#client.getSessionId(), password: this.#client.getSessionPassword() };
  }

  /** Resolves when connected; rejects after `timeoutMs` or when closed. */
  whenConnected(timeoutMs: number): Promise<void> {
    if (this.#state === 'connected') return Promise.resolve();
    if (this.#tlsError) return Promise.reject(this.#tlsError);
    if (this.#state === 'closed' || this.#closing) return Promise.reject(new ZkError('closed', 'ZooKeeper client closed'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => done(new ZkError('timeout', `not connected to ZooKeeper (${this.connectString}) within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const onState = (s: ConnectionState) => {
        if (s === 'connected') done();
        else if (s === 'tls_failed') done(this.#tlsError);
        else if (s === 'closed' || s === 'auth_failed') done(new ZkError(s, `ZooKeeper client ${s}`));
      };
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.off('state', onState);
        err ? reject(err) : resolve();
      };
      this.on('state', onState);
    });
  }

  getChildren(path: string, watcher?: Watcher): Promise<string[]> {
    return this.#call<string[]>('getChildren', path, (c, cb) =>
      watcher ? c.getChildren(path, wrapWatcher(watcher), cb) : c.getChildren(path, cb),
    );
  }

  /** The node's data (an empty buffer for none). */
  getData(path: string, watcher?: Watcher): Promise<Buffer> {
    return this.#call<Buffer>('getData', path, (c, cb) => (watcher ? c.getData(path, wrapWatcher(watcher), cb) : c.getData(path, cb))).then(
      (data) => data ?? Buffer.alloc(0),
    );
  }

  /** The node's data (empty for none) and its data version (the znode's `version`, bumped by every write). */
  getDataWithVersion(path: string, watcher?: Watcher): Promise<{ data: Buffer; version: number }> {
    return this.#call<{ data: Buffer; version: number }>('getData', path, (c, cb) => {
      const done = (error: Error | Zk.Exception | null, data: Buffer | undefined, stat: Zk.Stat | undefined) =>
        cb(error, { data: data ?? Buffer.alloc(0), version: stat?.version ?? 0 });
      return watcher ? c.getData(path, wrapWatcher(watcher), done) : c.getData(path, done);
    });
  }

  /** Whether the node exists; with a watcher, also watches its creation/deletion/data. */
  async exists(path: string, watcher?: Watcher): Promise<boolean> {
    const stat = await this.#call<Zk.Stat | null>('exists', path, (c, cb) =>
      watcher ? c.exists(path, wrapWatcher(watcher), cb) : c.exists(path, cb),
    );
    return !!stat;
  }

  create(path: string, data: Buffer, mode: CreateMode, acl?: readonly AclEntry[]): Promise<string> {
    const acls = toAcls(acl);
    return this.#call<string>('create', path, (c, cb) => c.create(path, data, acls, MODES[mode], cb));
  }

  /** Creates `path` and its missing parents as persistent nodes; an existing node is fine. */
  async mkdirp(path: string, acl?: readonly AclEntry[]): Promise<void> {
    // The server checks CREATE on the parent before it looks for the node, so creating a node that
    // exists under a parent we may not create in fails with NO_AUTH, not NODE_EXISTS: look first.
    if (await this.exists(path)) return;
    const acls = toAcls(acl);
    await this.#call<string>('mkdirp', path, (c, cb) => c.mkdirp(path, acls, zookeeper.CreateMode.PERSISTENT, cb));
  }

  /** The node's ACL, in our terms (`all` when every permission is granted). */
  getAcl(path: string): Promise<AclEntry[]> {
    return this.#call<Zk.ACL[]>('getAcl', path, (c, cb) => c.getACL(path, cb)).then((acls) => acls.map(fromAcl));
  }

  setData(path: string, data: Buffer): Promise<void> {
    return this.#call<unknown>('setData', path, (c, cb) => c.setData(path, data, -1, cb)).then(() => undefined);
  }

  remove(path: string): Promise<void> {
    return this.#call<void>('remove', path, (c, cb) => c.remove(path, -1, cb as Callback<void>));
  }

  /** Ends the session (its ephemeral nodes vanish) and stops for good. Always settles. */
  close(): Promise<void> {
    this.#closing ??= this.#closeNow();
    return this.#closing;
  }

  async #closeNow(): Promise<void> {
    clearTimeout(this.#expiryTimer);
    const client = this.#client;
    this.#client = undefined;
    this.#stopGuard?.();
    // Their answers may never come (the library keeps unsent requests queued forever), and their
    // timers would keep the process alive until they fire.
    if (client) this.#failPending(client, 'closed', 'client closed while waiting for an answer');
    for (const w of [...this.#waiting]) w.fail(new ZkError('closed', 'client closed while waiting for a connection'));
    if (client) await closeClient(client, this.#state === 'connected' ? CLOSE_GRACE_MS : 0);
    this.#setState('closed');
    this.removeAllListeners('session');
    this.removeAllListeners('reconnected');
  }

  #open(session?: { id: Buffer; password: Buffer }): void {
    const client = zookeeper.createClient(this.connectString, {
      sessionTimeout: this.#opts.sessionTimeoutMs,
      spinDelay: this.#opts.spinDelayMs,
      retries: 0,
      ...(session ? { sessionId: session.id, sessionPassword: session.password } : {}),
    } as Partial<Zk.Option>);
    for (const { scheme, auth } of this.#opts.auth ?? []) client.addAuthInfo(scheme, Buffer.from(auth));
    this.#client = client;
    this.#sessionEstablished = false;
    this.#stopGuard?.();
    const { tls } = this.#opts;
    if (tls && !tlsSockets(client, tls, (error, server) => this.#onSocketError(client, error, server))) {
      // Never fall back to plain TCP: that would send the session's traffic unencrypted.
      throw new Error('node-zookeeper-client cannot be made to speak TLS (its ConnectionManager changed)');
    }
    this.#stopGuard = guardReads(client, this.#opts.sessionTimeoutMs);
    frameReads(client);
    leanWatchers(client, (event) => LibraryEvent.create(event));
    client.on('state', (s: Zk.State) => {
      if (this.#client === client) this.#onState(client, s);
    });
    this.#setState('connecting');
    client.connect();
  }

  #onState(client: Zk.Client, s: Zk.State): void {
    const S = zookeeper.State;
    if (s === S.SYNC_CONNECTED || s === S.CONNECTED_READ_ONLY) {
      this.#tlsFailed.clear();
      clearTimeout(this.#expiryTimer);
      this.#expiryTimer = undefined;
      this.#setState('connected');
      for (const w of [...this.#waiting]) w.send();
      if (!this.#sessionEstablished) {
        this.#sessionEstablished = true;
        this.#generation += 1;
        this.#log.info('zookeeper session established', {
          session: client.getSessionId().toString('hex'),
          timeoutMs: client.getSessionTimeout(),
          generation: this.#generation,
        });
        this.emit('session', this.#generation);
      } else {
        this.#log.info('zookeeper reconnected', { session: client.getSessionId().toString('hex') });
        this.emit('reconnected');
      }
    } else if (s === S.DISCONNECTED) {
      this.#setState('disconnected');
      this.#log.warn('zookeeper disconnected', { connectString: this.connectString });
      // The server expires a session it has not heard from for its timeout; a client cut off that
      // long cannot learn of it until it reconnects, so it treats the session as gone itself.
      if (this.#sessionEstablished && !this.#expiryTimer) {
        this.#expiryTimer = setTimeout(
          () => this.#expire(client, 'disconnected longer than the session timeout'),
          client.getSessionTimeout(),
        );
        this.#expiryTimer.unref();
      }
    } else if (s === S.EXPIRED) {
      this.#expire(client, 'session expired');
    } else if (s === S.AUTH_FAILED) {
      this.#log.error('zookeeper authentication failed', { connectString: this.connectString });
      this.#setState('auth_failed');
    }
  }

  /** A socket error on `server`: when it is a TLS failure on every server, stop for good. */
  #onSocketError(client: Zk.Client, error: Error & { code?: string }, server: string): void {
    if (this.#client !== client || this.#closing) return;
    const failure = tlsFailure(error, server);
    if (!failure) return;
    if (!this.#tlsFailed.has(server)) {
      this.#tlsFailed.add(server);
      this.#log.error('zookeeper TLS handshake failed', { server, reason: failure.reason, error: failure.message });
    }
    if (this.#tlsFailed.size < this.#serverCount) return; // the next server may verify
    this.#log.error('zookeeper TLS failed on every server: not retrying', { connectString: this.connectString, reason: failure.reason });
    this.#tlsError = failure;
    clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    this.#client = undefined;
    this.#stopGuard?.();
    this.#stopGuard = undefined;
    const pending = this.#pending.get(client);
    this.#pending.delete(client);
    for (const fail of pending ?? []) fail(failure);
    for (const w of [...this.#waiting]) w.fail(failure);
    void closeClient(client, 0);
    this.#setState('tls_failed');
  }

  /** The session is gone: drop the old client and start a fresh session. */
  #expire(client: Zk.Client, reason: string): void {
    if (this.#client !== client || this.#closing) return;
    clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    this.#log.warn('zookeeper session lost; opening a new session', { reason, session: client.getSessionId().toString('hex') });
    this.#setState('expired');
    this.#client = undefined;
    this.#stopGuard?.();
    this.#stopGuard = undefined;
    this.#failPending(client, 'session_expired', 'session lost while waiting for an answer');
    void closeClient(client, 0);
    this.#open();
  }

  #setState(state: ConnectionState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit('state', state);
  }

  #failPending(client: Zk.Client, zkCode: string, why: string): void {
    const pending = this.#pending.get(client);
    this.#pending.delete(client);
    for (const fail of pending ?? []) fail(new ZkError(zkCode, why));
  }

  #call<T>(op: string, path: string, invoke: (client: Zk.Client, cb: Callback<T>) => void): Promise<T> {
    if (this.#tlsError) return Promise.reject(this.#tlsError);
    if (!this.#client || this.#closing) return Promise.reject(new ZkError('closed', `${op} ${path}: client is closed`, path));
    return new Promise<T>((resolve, reject) => {
      let pending: Set<(error: ZkError | ZkTlsError) => void> | undefined;
      const waiter = { send: () => send(), fail: (error: ZkError | ZkTlsError) => fail(error) };
      const settle = (error: ZkError | ZkTlsError | undefined, result?: T) => {
        clearTimeout(timer);
        this.#waiting.delete(waiter);
        pending?.delete(fail);
        if (error) reject(error);
        else resolve(result as T);
      };
      const fail = (error: ZkError | ZkTlsError) =>
        settle(error instanceof ZkError ? new ZkError(error.zkCode, `${op} ${path}: ${error.message}`, path) : error);
      const send = () => {
        this.#waiting.delete(waiter);
        const client = this.#client;
        if (!client) return fail(new ZkError('closed', 'client is closed'));
        pending = this.#pending.get(client);
        if (!pending) this.#pending.set(client, (pending = new Set()));
        pending.add(fail);
        try {
          invoke(client, (error, result) => (error ? settle(toZkError(op, path, error)) : settle(undefined, result)));
        } catch (error) {
          settle(toZkError(op, path, error));
        }
      };
      const timer = setTimeout(() => {
        settle(new ZkError('timeout', `${op} ${path}: no answer from ZooKeeper within ${this.#opts.opTimeoutMs} ms`, path));
      }, this.#opts.opTimeoutMs);
      if (this.#state === 'connected') send();
      else this.#waiting.add(waiter);
    });
  }
}

function wrapWatcher(watcher: Watcher): (event: Zk.Event) => void {
  // The library dedupes watchers by function identity per path (WatcherManager); callers pass a
  // stable function, so cache one wrapper per watcher to keep that dedupe working.
  let wrapped = WRAPPERS.get(watcher);
  if (!wrapped) {
    wrapped = (event: Zk.Event) => {
      const type = EVENT_TYPES[event.getType()];
      if (type) watcher({ type, path: event.getPath() });
    };
    WRAPPERS.set(watcher, wrapped);
  }
  return wrapped;
}
const WRAPPERS = new WeakMap<Watcher, (event: Zk.Event) => void>();

function toZkError(op: string, path: string, error: unknown): ZkError {
  if (error instanceof ZkError) return error;
  const code = (error as { code?: unknown }).code;
  const name = typeof code === 'number' ? (CODE_NAMES[code] ?? `error_${Math.abs(code)}`) : 'client_error';
  const message = error instanceof Error ? error.message : String(error);
  return new ZkError(name, `${op} ${path}: ${message}`, path);
}

function fromAcl(acl: Zk.ACL): AclEntry {
  const { scheme, id } = acl.id as { scheme: AclEntry['scheme']; id: string };
  // The library's field is `permission` (lib/ACL.js); its typings call it `perms`.
  const bits = (acl as unknown as { permission?: number }).permission ?? acl.perms;
  const perms =
    bits === zookeeper.Permission.ALL
      ? (['all'] as AclEntry['perms'])
      : (Object.keys(PERMS) as Array<AclEntry['perms'][number]>).filter((p) => p !== 'all' && (bits & PERMS[p]) !== 0);
  return { scheme, id, perms };
}

function toAcls(acl: readonly AclEntry[] | undefined): Zk.ACL[] {
  if (!acl || acl.length === 0) return [new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('world', 'anyone'))];
  return acl.map(
    (e) =>
      new zookeeper.ACL(
        e.perms.reduce((m, p) => m | PERMS[p], 0),
        new zookeeper.Id(e.scheme, e.id),
      ),
  );
}
