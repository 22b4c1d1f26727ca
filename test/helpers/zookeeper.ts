/** Real ZooKeeper servers and ensembles for tests, on free loopback ports, in temporary folders. */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, ZooKeeperServer } from '../../proxy/dev/local-zookeeper.js';
import { silentLogger } from '../../proxy/logger.js';
import { ZkClient } from '../../proxy/registry/zk-client.js';

export { ZooKeeperServer } from '../../proxy/dev/local-zookeeper.js';

function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface TestZooKeeper {
  server: ZooKeeperServer;
  connectString: string;
  stop(): Promise<void>;
}

/** A standalone server; tickTime 500 ms lets sessions time out in 1–10 s. */
export async function startZooKeeper(): Promise<TestZooKeeper> {
  const dir = tempDir('puttu-zk-');
  const server = new ZooKeeperServer({ dir, clientPort: await freePort() });
  await server.start();
  return {
    server,
    connectString: server.connectString,
    stop: async () => {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface TestEnsemble {
  servers: ZooKeeperServer[];
  connectString: string;
  leader(): Promise<ZooKeeperServer | undefined>;
  stop(): Promise<void>;
}

/** An ensemble of `size` servers on loopback; resolves once every member serves. */
export async function startEnsemble(size = 3): Promise<TestEnsemble> {
  const dir = tempDir('puttu-zk-ensemble-');
  const peers: Array<{ id: number; quorumPort: number; electionPort: number; clientPort: number }> = [];
  for (let id = 1; id <= size; id++) peers.push({ id, quorumPort: await freePort(), electionPort: await freePort(), clientPort: await freePort() });
  const servers = peers.map(
    (p) => new ZooKeeperServer({ dir: path.join(dir, `zk${p.id}`), clientPort: p.clientPort, myid: p.id, peers }),
  );
  await Promise.all(servers.map((s) => s.start(false)));
  await Promise.all(servers.map((s) => s.waitServing(60_000)));
  return {
    servers,
    connectString: servers.map((s) => s.connectString).join(','),
    leader: async () => {
      for (const s of servers) if (s.running && (await s.mode()) === 'leader') return s;
      return undefined;
    },
    stop: async () => {
      await Promise.all(servers.map((s) => s.stop()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A raw client for arranging the tree in tests (creating odd znodes, deleting nodes). */
export async function rawClient(connectString: string): Promise<ZkClient> {
  const zk = new ZkClient({ connectString, logger: silentLogger, sessionTimeoutMs: 10_000 });
  zk.connect();
  await zk.whenConnected(15_000);
  return zk;
}

/**
 * Expires `victim`'s session deterministically: a second connection attaches to the same session
 * id and password and closes the session; the server ends it, and the victim learns of the expiry
 * when it reconnects (the recipe of the ZooKeeper FAQ, "Is there an easy way to expire a session
 * for testing?").
 *
 * Attaching moves the session to the thief's connection and drops the victim's, and the victim
 * reconnects at once; if its reattach lands before the thief's CLOSE_SESSION, the session moves
 * back and the close is lost. So the thief speaks the wire protocol itself: it pipelines
 * ConnectRequest and CloseSession on one socket, knows for certain whether the server answered the
 * close, and tries again when it did not. Resolves once the server has ended the session.
 */
export async function expireSession(connectString: string, victim: ZkClient, timeoutMs = 15_000): Promise<void> {
  const { id, password } = victim.sessionCredentials();
  const servers = connectString.split(',').map((s) => s.trim());
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    const server = servers[attempt % servers.length]!;
    if (await closeSession(server, id, password, Math.max(1, deadline - Date.now()))) return;
  }
  throw new Error(`could not expire session ${id.toString('hex')} within ${timeoutMs} ms`);
}

/** One attempt: true once the server confirmed the close (or said the session is already gone). */
function closeSession(server: string, id: Buffer, password: Buffer, timeoutMs: number): Promise<boolean> {
  const colon = server.lastIndexOf(':');
  const host = server.slice(0, colon);
  const port = Number(server.slice(colon + 1).split('/')[0]);
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let input = Buffer.alloc(0);
    let connected = false;
    const done = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(closed);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
    socket.on('connect', () => {
      // ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId, passwd (jute encoding).
      const connect = Buffer.alloc(4 + 8 + 4 + 8 + 4 + password.length);
      connect.writeInt32BE(0, 0);
      connect.writeBigInt64BE(0n, 4);
      connect.writeInt32BE(10_000, 12);
      id.copy(connect, 16);
      connect.writeInt32BE(password.length, 24);
      password.copy(connect, 28);
      // RequestHeader { xid: 1, type: closeSession (-11) }.
      const close = Buffer.alloc(8);
      close.writeInt32BE(1, 0);
      close.writeInt32BE(-11, 4);
      socket.write(Buffer.concat([frame(connect), frame(close)]));
    });
    socket.on('data', (chunk: Buffer) => {
      input = Buffer.concat([input, chunk]);
      while (input.length >= 4 && input.length >= 4 + input.readInt32BE(0)) {
        const body = input.subarray(4, 4 + input.readInt32BE(0));
        input = input.subarray(4 + body.length);
        if (!connected) {
          // ConnectResponse: protocolVersion, timeOut (<= 0: the session is already gone), ...
          if (body.readInt32BE(4) <= 0) return done(true);
          connected = true;
        } else if (body.readInt32BE(0) === 1) {
          // ReplyHeader { xid, zxid, err } of our CloseSession.
          return done(body.readInt32BE(12) === 0);
        }
      }
    });
  });
}

function frame(body: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeInt32BE(body.length, 0);
  return Buffer.concat([length, body]);
}
