/**
 * node-zookeeper-client (pinned to an exact version in package.json) and every change puttu makes
 * to it, in one place. The library is used through its public API except for the patches below,
 * which reach into its private ConnectionManager (`client.connectionManager`) to fix what the
 * library gets wrong in production: no read timeout (guardReads), quadratic framing (frameReads),
 * a heavy per-watch structure (leanWatchers), a close() that can hang or reconnect forever
 * (closeClient), and no TLS (tlsSockets). Each sees the manager only as the few fields named in MANAGER_FIELDS and does
 * nothing if they are missing; test/unit/dependency-contract.test.ts fails, naming the field, when
 * an upgrade moves one.
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import tls from 'node:tls';
import type Zk from 'node-zookeeper-client';

// Required, not imported: an ES import of a CommonJS package runs Node's export lexer over it,
// whose hot loops V8 then optimizes during start-up, leaving compiler memory in the idle proxy.
// The types come from the type-only import above.
export const zookeeper = createRequire(import.meta.url)('node-zookeeper-client') as typeof Zk;

/** The library's own factory of the Event its watchers receive (lib/Event.js; not in its typings). */
export const LibraryEvent = zookeeper.Event as unknown as { create(event: { type: number; path: string }): Zk.Event };

/** The private ConnectionManager members the patches below read, call or replace. */
export const MANAGER_FIELDS = [
  'socket',
  'state',
  'sessionTimeout',
  'connectTimeout',
  'connect',
  'connectTimeoutHandler',
  'onSocketData',
  'watcherManager',
] as const;

/** The WatcherManager methods the library calls; leanWatchers' replacement implements each. */
export const WATCHER_MANAGER_METHODS = [
  'registerDataWatcher',
  'registerChildWatcher',
  'registerExistenceWatcher',
  'getDataWatcherPaths',
  'getChildWatcherPaths',
  'getExistenceWatcherPaths',
  'isEmpty',
  'emit',
] as const;

/** The ConnectionManager fields used here. */
interface Manager {
  socket?: Socket;
  /** 1 CONNECTING, 2 CONNECTED, 3 CONNECTED_READ_ONLY, ... */
  state: number;
  /** Negotiated session timeout. */
  sessionTimeout: number;
  /** Per-server TCP connect timeout: sessionTimeout / number of servers. */
  connectTimeout: number;
  connect(): void;
  connectTimeoutHandler?: NodeJS.Timeout;
}

function managerOf(client: unknown): Manager | undefined {
  const cm = (client as { connectionManager?: Partial<Manager> } | undefined)?.connectionManager;
  return cm && typeof cm.connect === 'function' && typeof cm.state === 'number' ? (cm as Manager) : undefined;
}

/**
 * Drops a connection that stopped answering, so the library moves on to the next server. The
 * library has no read timeout: its TCP connect timeout ends when the socket connects, and after
 * that it waits forever for the handshake (a server still starting up, or one that swallows
 * requests) and never notices a frozen server, whose pings go unanswered. Once connected the limit
 * follows the Java client (ClientCnxn): two thirds of the session timeout (a ping goes out after a
 * third of it without traffic). A connect or handshake gets a third of the library's connect
 * timeout (session timeout / servers), at least a second: a healthy server answers in
 * milliseconds, and a single-server client that waited the whole connect timeout on a server
 * still starting would lose its session before trying again.
 * Returns a function that stops the guard.
 */
export function guardReads(client: unknown, sessionTimeoutMs: number, now: () => number = () => performance.now()): () => void {
  const cm = managerOf(client);
  if (!cm) return () => {};
  const seen = new WeakSet<Socket>();
  let lastRead = now();
  const timer = setInterval(
    () => {
      const socket = cm.socket;
      if (!socket || socket.destroyed) return;
      if (!seen.has(socket)) {
        seen.add(socket);
        lastRead = now();
        socket.on('data', () => (lastRead = now()));
        return;
      }
      const connected = !socket.connecting && (cm.state === 2 || cm.state === 3);
      const limit = connected ? (cm.sessionTimeout * 2) / 3 : Math.max(1_000, cm.connectTimeout / 3);
      if (now() - lastRead > limit) socket.destroy(); // the library then reconnects, to the next server
    },
    Math.min(500, Math.max(25, Math.floor(sessionTimeoutMs / 10))),
  );
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * Hands the library one complete frame at a time. Its socket handler deals with a single frame per
 * call and then recurses on the rest through `Buffer.concat([rest, empty])`, copying everything
 * still unread once per frame: quadratic in the frames per chunk. A burst of answers (the initial
 * read of a 10,000-instance tree) then copies gigabytes and leaves a high heap behind. Here the
 * frames are cut on their length prefixes, and the library sees exactly one per call, so its own
 * buffering never starts.
 */
export function frameReads(client: unknown): void {
  const cm = (client as { connectionManager?: { onSocketData?: (chunk: Buffer) => void; socket?: Socket } } | undefined)?.connectionManager;
  const original = cm?.onSocketData;
  if (!cm || typeof original !== 'function') return;
  const partial = new WeakMap<object, Buffer>();
  // An own property: the library binds `this.onSocketData` each time it opens a socket.
  cm.onSocketData = function (this: typeof cm, chunk: Buffer): void {
    const key = (this.socket ?? this) as object;
    const held = partial.get(key);
    const buffer = held === undefined ? chunk : Buffer.concat([held, chunk]);
    let offset = 0;
    while (buffer.length - offset >= 4) {
      const end = offset + 4 + buffer.readInt32BE(offset);
      if (end > buffer.length) break;
      original.call(this, buffer.subarray(offset, end));
      offset = end;
    }
    if (offset < buffer.length) partial.set(key, Buffer.from(buffer.subarray(offset)));
    else partial.delete(key);
  };
}

/** The library's watch notification as read off the wire (jute WatcherEvent). */
interface WireWatcherEvent {
  type: number;
  path: string;
}

/** Event types of ZooKeeper's protocol (Watcher.Event.EventType). */
const NODE_CREATED = 1;
const NODE_DELETED = 2;
const NODE_DATA_CHANGED = 3;
const NODE_CHILDREN_CHANGED = 4;

type WatcherFn = (event: unknown) => void;
/** One watcher, or several (distinct by identity) on one path. */
type Armed = WatcherFn | WatcherFn[];

/**
 * Replaces the library's WatcherManager with one that holds a watch in a Map entry: a path and
 * the watcher function itself. The library's keeps, per watched path, an EventEmitter in a plain
 * object used as a dictionary, with its listeners object and a bound `once` wrapper and its state:
 * about half a kilobyte per watched znode, 5 MB for a 10,000-instance tree. Same contract: a
 * watcher is one-shot, registered at most once per path (identity), removed before it is called;
 * the paths with watchers are listed for SetWatches on reconnect; notifications go to the same
 * sets of watchers as the library's (data and existence watchers on created or changed data; data
 * and child watchers on deletion; child watchers on a children change), in order of arming.
 * `makeEvent` builds what a watcher receives (the library's Event) from a wire notification.
 */
export function leanWatchers(client: unknown, makeEvent: (event: WireWatcherEvent) => unknown): void {
  const cm = (client as { connectionManager?: { watcherManager?: object } } | undefined)?.connectionManager;
  if (!cm || typeof cm.watcherManager !== 'object') return;
  const data = new Map<string, Armed>();
  const child = new Map<string, Armed>();
  const existence = new Map<string, Armed>();
  const register = (map: Map<string, Armed>, path: string, watcher: WatcherFn): void => {
    if (typeof watcher !== 'function') throw new Error('watcher must be a valid function.');
    const armed = map.get(path);
    if (armed === undefined) map.set(path, watcher);
    else if (typeof armed === 'function') {
      if (armed !== watcher) map.set(path, [armed, watcher]);
    } else if (!armed.includes(watcher)) armed.push(watcher);
  };
  const take = (map: Map<string, Armed>, path: string, into: WatcherFn[]): void => {
    const armed = map.get(path);
    if (armed === undefined) return;
    map.delete(path);
    if (typeof armed === 'function') into.push(armed);
    else into.push(...armed);
  };
  cm.watcherManager = {
    registerDataWatcher: (path: string, watcher: WatcherFn) => register(data, path, watcher),
    registerChildWatcher: (path: string, watcher: WatcherFn) => register(child, path, watcher),
    registerExistenceWatcher: (path: string, watcher: WatcherFn) => register(existence, path, watcher),
    getDataWatcherPaths: () => [...data.keys()],
    getChildWatcherPaths: () => [...child.keys()],
    getExistenceWatcherPaths: () => [...existence.keys()],
    isEmpty: () => data.size === 0 && child.size === 0 && existence.size === 0,
    emit(event: WireWatcherEvent): void {
      if (!event) throw new Error('watcherEvent must be a valid object.');
      const due: WatcherFn[] = [];
      switch (event.type) {
        case NODE_DATA_CHANGED:
        case NODE_CREATED:
          take(data, event.path, due);
          take(existence, event.path, due);
          break;
        case NODE_CHILDREN_CHANGED:
          take(child, event.path, due);
          break;
        case NODE_DELETED:
          take(data, event.path, due);
          take(child, event.path, due);
          break;
        default:
          throw new Error('Unknown event type: ' + event.type);
      }
      if (due.length === 0) return;
      const delivered = makeEvent(event);
      for (const watcher of due) watcher(delivered);
    },
  };
}

/**
 * Closes a library client and resolves once it is closed, or after `graceMs` at the latest. Then
 * its connection manager is disarmed: the library otherwise keeps reconnecting forever when no
 * server answers (CLOSE_SESSION still queued), and a reconnect already scheduled would open a
 * socket after we gave up; any socket it opens from now on is destroyed at once.
 */
export function closeClient(client: { close(): void }, graceMs: number): Promise<void> {
  const cm = managerOf(client);
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const force = () => {
      clearTimeout(timer);
      if (cm) disarm(cm);
      resolve();
    };
    // Not unref()'d: with nothing else left in the event loop an unref()'d timer never fires, so
    // close() never settled and code awaiting it never ran (an ESM top-level await exits with 13).
    if (graceMs <= 0) {
      // Not connected (or given up on): no CLOSE_SESSION. Sent before the handshake completes,
      // the library reads the server's connect reply as its answer and throws "Unknown code"
      // out of a socket callback, killing the process; just drop the connection.
      force();
      return;
    }
    timer = setTimeout(force, graceMs);
    cm?.socket?.once('close', force);
    try {
      client.close();
    } catch {
      force();
    }
  });

  function disarm(cm: Manager): void {
    cm.connect = () => {};
    let current = cm.socket;
    const kill = (socket: Manager['socket']) => {
      socket?.destroy();
      // The library arms a connect timeout right after assigning a socket; drop it too.
      setImmediate(() => clearTimeout(cm.connectTimeoutHandler));
    };
    Object.defineProperty(cm, 'socket', {
      configurable: true,
      get: () => current,
      set: (socket: Manager['socket']) => {
        current = socket;
        kill(socket);
      },
    });
    kill(current);
  }
}

/**
 * The private ConnectionManager members tlsSockets' connect() uses: it is the library's connect()
 * (lib/ConnectionManager.js) with tls.connect in place of net.connect, so it calls the same steps.
 */
export const TLS_MANAGER_FIELDS = [
  'connect',
  'setState',
  'findNextServer',
  'connectTimeout',
  'connectTimeoutHandler',
  'onSocketConnectTimeout',
  'onSocketConnected',
  'onSocketData',
  'onSocketDrain',
  'onSocketClosed',
  'onSocketError',
] as const;

/** What tls.connect gets besides the server's address. */
export interface TlsSocketOptions {
  ca?: string | Buffer | Array<string | Buffer>;
  cert?: string | Buffer;
  key?: string | Buffer;
  servername?: string;
}

// biome-ignore lint/suspicious/noExplicitAny: the library's handlers take what each socket event carries.
type SocketHandler = (...args: any[]) => void;
interface TlsManager {
  socket?: Socket;
  connectTimeout: number;
  connectTimeoutHandler?: NodeJS.Timeout;
  connect(): void;
  setState(state: number): void;
  findNextServer(callback: (server: { host: string; port: number | string }) => void): void;
  onSocketConnectTimeout: SocketHandler;
  onSocketConnected: SocketHandler;
  onSocketData: SocketHandler;
  onSocketDrain: SocketHandler;
  onSocketClosed: SocketHandler;
  onSocketError: SocketHandler;
}

/**
 * Makes the library speak TLS: its connect() opens a plain socket with net.connect, so this one,
 * otherwise the same steps, opens tls.connect (the server is verified: rejectUnauthorized) and
 * hands the library `secureConnect` as its `connect`, so the ConnectRequest goes out only over a
 * verified channel and the connect timeout covers the handshake. Every socket error is passed to
 * `onError` with the server first (the library's own handler then sees it, and reconnects on the
 * close that follows). Returns false, changing nothing, when the manager lacks a member it needs.
 */
export function tlsSockets(
  client: unknown,
  options: TlsSocketOptions,
  onError: (error: Error & { code?: string }, server: string) => void,
): boolean {
  const cm = (client as { connectionManager?: Partial<TlsManager> } | undefined)?.connectionManager;
  if (!cm || TLS_MANAGER_FIELDS.some((f) => f !== 'connectTimeout' && f !== 'connectTimeoutHandler' && typeof cm[f] !== 'function')) {
    return false;
  }
  const manager = cm as TlsManager;
  // An own property, as closeClient's disarm() expects: it replaces it with a no-op.
  manager.connect = function (this: TlsManager): void {
    this.setState(1); // CONNECTING
    this.findNextServer((server) => {
      const address = `${server.host}:${server.port}`;
      const socket = tls.connect({
        host: server.host,
        port: Number(server.port),
        ...options,
        rejectUnauthorized: true,
      });
      this.socket = socket;
      this.connectTimeoutHandler = setTimeout(this.onSocketConnectTimeout.bind(this), this.connectTimeout);
      socket.setNoDelay();
      socket.on('error', (error) => onError(error, address));
      socket.on('secureConnect', this.onSocketConnected.bind(this));
      socket.on('data', this.onSocketData.bind(this));
      socket.on('drain', this.onSocketDrain.bind(this));
      socket.on('close', this.onSocketClosed.bind(this));
      socket.on('error', this.onSocketError.bind(this));
    });
  };
  return true;
}
