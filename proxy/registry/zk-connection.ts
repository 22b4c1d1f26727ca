/**
 * Workarounds that reach into node-zookeeper-client's ConnectionManager (v1.1.3), kept apart from
 * the adapter proper. They import nothing from the library (STYLE.md §2): they see its client
 * only as the few fields below, and do nothing if those are missing.
 */
import type { Socket } from 'node:net';

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
 * requests) and never notices a frozen server, whose pings go unanswered. The limits follow the
 * Java client (ClientCnxn): the connect timeout for the handshake, two thirds of the session
 * timeout once connected (a ping goes out after a third of it without traffic).
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
      if (!socket || socket.destroyed || socket.connecting) return; // the library's connect timeout covers this
      if (!seen.has(socket)) {
        seen.add(socket);
        lastRead = now();
        socket.on('data', () => (lastRead = now()));
        return;
      }
      const connected = cm.state === 2 || cm.state === 3;
      const limit = connected ? (cm.sessionTimeout * 2) / 3 : cm.connectTimeout;
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
