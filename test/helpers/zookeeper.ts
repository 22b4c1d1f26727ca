/** Real ZooKeeper servers and ensembles for tests, on free loopback ports, in temporary folders. */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { generateCertificates, type TestCertificates } from './certificates.js';
import { eventually } from './eventually.js';
import { freePort, ZooKeeperServer } from '../../proxy/dev/local-zookeeper.js';
import { silentLogger } from '../../proxy/logger.js';
import { ZkClient } from '../../proxy/registry/zk-client.js';
import { connectRequest, exchange, int } from './zk-wire.js';

export { ZooKeeperServer } from '../../proxy/dev/local-zookeeper.js';

// ava stops a test process that outlives its timeout with SIGTERM, whose default action skips the
// 'exit' event on which every JVM this process started is killed (local-zookeeper.ts): they were
// left running. Exiting on the signal runs that hook.
process.once('SIGTERM', () => process.exit(143));

function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * Starts the servers `make` builds on ports it picks free, and resolves once every one serves
 * (within `servingTimeoutMs`, default each server's own). If one exits while they start, all are
 * stopped and `make` builds them again on fresh ports, up to 3 times: a port picked free can be
 * taken by another test's socket in the second before the JVM binds it, and this Debian classpath
 * logs nothing, so the exit is the only sign.
 */
async function startOnFreshPorts<Servers extends ZooKeeperServer[]>(
  label: string,
  make: () => Promise<Servers>,
  servingTimeoutMs?: number,
  /** More to wait for once they serve; its failure (a port another process took first) retries too. */
  ready?: (servers: Servers) => Promise<void>,
): Promise<Servers> {
  for (let attempt = 1; ; attempt++) {
    const servers = await make();
    // A server that fails to start must not leave the others of its ensemble running.
    const started = await Promise.allSettled(servers.map((s) => s.start(false)));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) {
      await Promise.all(servers.map((s) => s.stop()));
      throw failed.reason;
    }
    let serving = false;
    try {
      await Promise.all(servers.map((s) => s.waitServing(servingTimeoutMs)));
      serving = true;
      await ready?.(servers);
      return servers;
    } catch (error) {
      // Fresh ports help a server that ended on its own (asked before they are all stopped here),
      // or one that serves but whose other port never listened.
      const portTaken = serving || servers.some((s) => !s.running);
      await Promise.all(servers.map((s) => s.stop()));
      if (!portTaken || attempt === 3) throw error;
      process.stderr.write(`${label}: ${(error as Error).message}; starting again on fresh ports (attempt ${attempt + 1} of 3)\n`);
    }
  }
}

export interface TestZooKeeper {
  server: ZooKeeperServer;
  connectString: string;
  stop(): Promise<void>;
}

/**
 * A standalone server; tickTime 500 ms (the default here) lets sessions time out in 1–10 s, a
 * longer one allows sessions up to 20 ticks.
 */
export async function startZooKeeper(options: { tickTimeMs?: number } = {}): Promise<TestZooKeeper> {
  const dir = tempDir('puttu-zk-');
  const [server] = await startOnFreshPorts(
    'startZooKeeper',
    async (): Promise<[ZooKeeperServer]> => [new ZooKeeperServer({ dir, clientPort: await freePort(), ...options })],
  );
  return {
    server,
    connectString: server.connectString,
    stop: async () => {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface TestTlsZooKeeper extends TestZooKeeper {
  /** host:secureClientPort: the TLS client port. `connectString` is the plain one beside it. */
  secureConnectString: string;
  certs: TestCertificates;
}

/**
 * A standalone server with a TLS client port (Netty, PEM stores) beside its plain one, and the
 * certificates generated for it: `clientAuth` 'need' (default) makes clients present a
 * certificate signed by `certs.ca`. Resolves once the TLS port accepts connections.
 */
export async function startTlsZooKeeper(
  options: { clientAuth?: 'need' | 'want' | 'none'; tickTimeMs?: number } = {},
): Promise<TestTlsZooKeeper> {
  const dir = tempDir('puttu-zk-tls-');
  const certs = generateCertificates(path.join(dir, 'certs'));
  const [server] = await startOnFreshPorts(
    'startTlsZooKeeper',
    async (): Promise<[ZooKeeperServer]> => [
      new ZooKeeperServer({
        dir,
        clientPort: await freePort(),
        ...(options.tickTimeMs !== undefined && { tickTimeMs: options.tickTimeMs }),
        tls: {
          secureClientPort: await freePort(),
          keyStore: certs.serverStore,
          trustStore: certs.ca,
          clientAuth: options.clientAuth ?? 'need',
        },
      }),
    ],
    undefined,
    // The plain port serving does not mean the TLS port was free to bind.
    ([s]) => waitListening(s.options.tls!.secureClientPort),
  );
  return {
    server,
    certs,
    connectString: server.connectString,
    secureConnectString: server.secureConnectString,
    stop: async () => {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves once a TCP connection to the port on loopback succeeds. */
export async function waitListening(port: number, timeoutMs = 15_000): Promise<void> {
  const tryOnce = () =>
    new Promise<boolean>((resolve) => {
      const socket = net.connect({ port, host: '127.0.0.1' });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
  await eventually(tryOnce, { timeoutMs, intervalMs: 50, message: `port ${port} accepting connections` });
}

export interface TestEnsemble {
  servers: ZooKeeperServer[];
  connectString: string;
  leader(): Promise<ZooKeeperServer | undefined>;
  stop(): Promise<void>;
}

/**
 * An ensemble of `size` servers on loopback; resolves once every member serves.
 *
 * Each member needs its peers' quorum and election ports before any of them starts, so they are
 * picked free and handed over, and another test may bind one in the second before the JVMs do.
 * A member that exits while the ensemble starts (this Debian classpath logs nothing, so the
 * reason is not on record) has the whole ensemble started again on fresh ports, up to 3 times.
 */
export async function startEnsemble(size = 3): Promise<TestEnsemble> {
  const dir = tempDir('puttu-zk-ensemble-');
  const servers = await startOnFreshPorts(
    'startEnsemble',
    async () => {
      // Each attempt in a folder of its own: a failed one's data stays out of the next.
      const attemptDir = fs.mkdtempSync(path.join(dir, 'attempt-'));
      const peers: Array<{ id: number; quorumPort: number; electionPort: number; clientPort: number }> = [];
      for (let id = 1; id <= size; id++)
        peers.push({ id, quorumPort: await freePort(), electionPort: await freePort(), clientPort: await freePort() });
      return peers.map(
        (p) => new ZooKeeperServer({ dir: path.join(attemptDir, `zk${p.id}`), clientPort: p.clientPort, myid: p.id, peers }),
      );
    },
    60_000,
  );
  return ensembleOf(servers, dir);
}

function ensembleOf(servers: ZooKeeperServer[], dir: string): TestEnsemble {
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
  // RequestHeader { xid: 1, type: closeSession (-11) }, after a ConnectRequest for the session.
  return exchange(
    server,
    [connectRequest(id, password), Buffer.concat([int(1), int(-11)])],
    (body, index) => {
      // ConnectResponse: protocolVersion, timeOut (<= 0: the session is already gone), ...
      if (index === 0) return body.readInt32BE(4) <= 0 ? true : undefined;
      // ReplyHeader { xid, zxid, err } of our CloseSession.
      return body.readInt32BE(0) === 1 ? body.readInt32BE(12) === 0 : undefined;
    },
    timeoutMs,
  ).catch(() => false);
}
