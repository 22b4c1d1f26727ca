/**
 * Runs real ZooKeeper servers from Debian's `zookeeper` package: the development ZooKeeper that
 * `puttu proxy` starts when none is configured, and the servers and ensembles the tests start.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from '../logger.js';

export const ZOOKEEPER_JAR = '/usr/share/java/zookeeper.jar';
const CLASSPATH = `${ZOOKEEPER_JAR}:/usr/share/java/*`;
export const INSTALL_COMMAND = 'apt-get update && apt-get install -y zookeeper';

export function zooKeeperInstalled(): boolean {
  return fs.existsSync(ZOOKEEPER_JAR) && spawnSync('java', ['-version'], { stdio: 'ignore' }).status === 0;
}

/**
 * Makes sure Debian's ZooKeeper is installed: installs it when running as root with apt-get, else
 * throws an error carrying the exact command to run.
 */
export function ensureZooKeeperInstalled(logger: Logger): void {
  if (zooKeeperInstalled()) return;
  const canInstall = process.getuid?.() === 0 && spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!canInstall) {
    throw new Error(
      `ZooKeeper is not installed. Install it with:\n  sudo sh -c '${INSTALL_COMMAND}'\nor point puttu at a running ZooKeeper with --zk host:port`,
    );
  }
  logger.info('ZooKeeper is not installed; installing Debian package "zookeeper"', { command: INSTALL_COMMAND });
  const result = spawnSync('sh', ['-c', `${INSTALL_COMMAND} >&2`], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (result.status !== 0 || !zooKeeperInstalled()) {
    throw new Error(`installing ZooKeeper failed (exit ${result.status}); run it yourself:\n  ${INSTALL_COMMAND}`);
  }
}

/** A TCP port that was free a moment ago on `host`. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** Sends a ZooKeeper four-letter command and returns the answer ('' when unreachable). */
export function fourLetter(port: number, command: string, host = '127.0.0.1', timeoutMs = 1_000): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect({ port, host });
    socket.setTimeout(timeoutMs, () => socket.destroy());
    socket.on('connect', () => socket.end(command));
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

export interface ZooKeeperServerOptions {
  /** Folder for config, data and log; created if missing. */
  dir: string;
  clientPort: number;
  host?: string;
  /** Ensemble membership: this server's id and every member's ports. */
  myid?: number;
  peers?: ReadonlyArray<{ id: number; quorumPort: number; electionPort: number }>;
  /** ZooKeeper's tick; session timeouts are clamped to [2, 20] ticks. */
  tickTimeMs?: number;
  startTimeoutMs?: number;
  /**
   * A TLS client port beside `clientPort` (which stays plain, for the four-letter commands): the
   * Netty connection factory, PEM stores (`keyStore`: the server's key and certificate in one
   * file; `trustStore`: the CAs of client certificates) and whether clients must present one.
   */
  tls?: { secureClientPort: number; keyStore: string; trustStore: string; clientAuth?: 'need' | 'want' | 'none' };
}

export class ZooKeeperServer {
  readonly options: Required<Omit<ZooKeeperServerOptions, 'myid' | 'peers' | 'tls'>> &
    Pick<ZooKeeperServerOptions, 'myid' | 'peers' | 'tls'>;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  /** How the JVM ended (`code 14`, `SIGKILL`), once it has. */
  #exitStatus: string | undefined;

  constructor(options: ZooKeeperServerOptions) {
    this.options = { host: '127.0.0.1', tickTimeMs: 500, startTimeoutMs: 30_000, ...options };
  }

  get connectString(): string {
    return `${this.options.host}:${this.options.clientPort}`;
  }

  /** host:secureClientPort, with `tls`. */
  get secureConnectString(): string {
    if (!this.options.tls) throw new Error('this ZooKeeper server has no TLS port (options.tls)');
    return `${this.options.host}:${this.options.tls.secureClientPort}`;
  }

  get pid(): number | undefined {
    // A child killed by a signal keeps exitCode null: check both.
    const child = this.#child;
    return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
  }

  get running(): boolean {
    return this.pid !== undefined;
  }

  /** Starts the JVM and resolves once the server answers `ruok` (and serves, in an ensemble). */
  async start(waitUntilServing = true): Promise<void> {
    if (this.running) return;
    const o = this.options;
    const dataDir = path.join(o.dir, 'data');
    fs.mkdirSync(dataDir, { recursive: true });
    const lines = [
      `tickTime=${o.tickTimeMs}`,
      'initLimit=10',
      'syncLimit=5',
      `dataDir=${dataDir}`,
      `clientPort=${o.clientPort}`,
      `clientPortAddress=${o.host}`,
      'admin.enableServer=false',
      '4lw.commands.whitelist=*',
      'maxClientCnxns=0',
    ];
    if (o.tls) {
      lines.push(
        'serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory',
        `secureClientPort=${o.tls.secureClientPort}`,
        `secureClientPortAddress=${o.host}`,
        'ssl.keyStore.type=PEM',
        `ssl.keyStore.location=${o.tls.keyStore}`,
        'ssl.trustStore.type=PEM',
        `ssl.trustStore.location=${o.tls.trustStore}`,
        `ssl.clientAuth=${o.tls.clientAuth ?? 'need'}`,
      );
    }
    if (o.peers && o.myid !== undefined) {
      fs.writeFileSync(path.join(dataDir, 'myid'), `${o.myid}\n`);
      for (const p of o.peers) lines.push(`server.${p.id}=${o.host}:${p.quorumPort}:${p.electionPort}`);
    }
    const cfg = path.join(o.dir, 'zoo.cfg');
    fs.writeFileSync(cfg, lines.join('\n') + '\n');
    const log = fs.openSync(path.join(o.dir, 'server.log'), 'a');
    const child = spawn(
      'java',
      [
        '-Xmx192m',
        '-XX:+UseSerialGC',
        '-XX:TieredStopAtLevel=1',
        '-Dzookeeper.admin.enableServer=false',
        '-cp',
        CLASSPATH,
        'org.apache.zookeeper.server.quorum.QuorumPeerMain',
        cfg,
      ],
      { stdio: ['ignore', log, log] },
    );
    fs.closeSync(log);
    this.#child = child;
    this.#exitStatus = undefined;
    this.#exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.#exitStatus = signal ?? `code ${code}`;
        resolve();
      }),
    );
    trackChild(child);
    if (waitUntilServing) await this.waitServing();
  }

  async waitServing(timeoutMs = this.options.startTimeoutMs): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running)
        throw new Error(
          `ZooKeeper on port ${this.options.clientPort} exited (${this.#exitStatus ?? 'unknown status'}); see ${path.join(this.options.dir, 'server.log')}`,
        );
      const answer = await fourLetter(this.options.clientPort, 'srvr', this.options.host);
      if (answer.includes('Mode:')) return;
      if (Date.now() > deadline) throw new Error(`ZooKeeper on port ${this.options.clientPort} did not start within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** 'leader' | 'follower' | 'standalone' | '' when not serving. */
  async mode(): Promise<string> {
    const answer = await fourLetter(this.options.clientPort, 'srvr', this.options.host);
    return /Mode: (\w+)/.exec(answer)?.[1] ?? '';
  }

  /** SIGTERM (or the given signal), then waits for the JVM to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await this.#exited;
    clearTimeout(timer);
  }

  /** Sends a signal without waiting (SIGSTOP freezes a server: a silent peer). */
  signal(signal: NodeJS.Signals): void {
    this.#child?.kill(signal);
  }
}

/** Every JVM this process started is killed when it exits, even on a crash. */
const children = new Set<ChildProcess>();
function trackChild(child: ChildProcess): void {
  if (children.size === 0) {
    process.once('exit', () => {
      for (const c of children) c.kill('SIGKILL');
    });
  }
  children.add(child);
  child.once('exit', () => children.delete(child));
}

export interface DevZooKeeper {
  server: ZooKeeperServer;
  connectString: string;
  stop(): Promise<void>;
}

/**
 * The development ZooKeeper for `puttu proxy` without `--zk`: data under `dir`, on `port`
 * (or 2181 when free, else any free port).
 */
export async function startDevZooKeeper(options: { dir: string; port?: number; logger: Logger }): Promise<DevZooKeeper> {
  ensureZooKeeperInstalled(options.logger);
  const port = options.port ?? ((await portIsFree(2181)) ? 2181 : await freePort());
  const server = new ZooKeeperServer({ dir: options.dir, clientPort: port, tickTimeMs: 2_000 });
  options.logger.info('no ZooKeeper configured: starting a local development ZooKeeper', { dir: options.dir, port });
  await server.start();
  options.logger.info('local development ZooKeeper is up', { connectString: server.connectString, pid: server.pid });
  return {
    server,
    connectString: server.connectString,
    stop: async () => {
      await server.stop();
      options.logger.info('local development ZooKeeper stopped');
    },
  };
}
