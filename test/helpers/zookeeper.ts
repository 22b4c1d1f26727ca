/** Real ZooKeeper servers and ensembles for tests, on free loopback ports, in temporary folders. */
import fs from 'node:fs';
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
 * Expires `victim`'s session deterministically: a second client attaches to the same session id
 * and password, then closes it; the server ends the session, and the victim learns of the expiry
 * when it reconnects.
 */
export async function expireSession(connectString: string, victim: ZkClient): Promise<void> {
  const session = victim.sessionCredentials();
  const thief = new ZkClient({ connectString, logger: silentLogger, session, sessionTimeoutMs: 10_000 });
  thief.connect();
  await thief.whenConnected(15_000);
  await thief.close();
}
