/**
 * The production topology of docker-compose.prod.yml as processes on 127.0.0.1: a 3-member
 * ZooKeeper ensemble, two `puttu proxy` processes connected to all three members, upstream instances
 * registered through the library. Under load through both proxies, one proxy and then the ZooKeeper
 * member the surviving proxy is connected to are killed with SIGKILL: the surviving proxy fails no
 * request, keeps routing, and still follows the registry (an instance registered after the member's
 * death is routed to).
 */
import test from 'ava';
import fs from 'node:fs';
import http from 'node:http';
import { connect } from '../../proxy/index.js';
import { eventually } from '../helpers/eventually.js';
import { puttu, type PuttuProcess } from '../helpers/processes.js';
import { request, startUpstream } from '../helpers/upstreams.js';
import { startEnsemble, type ZooKeeperServer } from '../helpers/zookeeper.js';

interface PacedLoad {
  readonly sent: number;
  readonly ok: number;
  stop(): Promise<{ sent: number; ok: number; failed: number; failures: Record<string, number>; firstFailureAt?: number }>;
}

/**
 * A paced load (each of `concurrency` workers sends at most one request per `intervalMs`) that
 * records when its first failure happened. With `stopOnFailure`, a worker ends at its first
 * failure: the load on a killed proxy counts the requests the kill broke, then stops hammering a
 * closed port.
 */
function pacedLoad(
  url: string,
  options: { concurrency: number; intervalMs: number; maxRequests: number; stopOnFailure?: boolean },
): PacedLoad {
  const { concurrency, intervalMs, maxRequests, stopOnFailure = false } = options;
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const r = { sent: 0, ok: 0, failed: 0, failures: {} as Record<string, number>, firstFailureAt: undefined as number | undefined };
  let running = true;
  const one = () =>
    new Promise<boolean>((resolve) => {
      const fail = (key: string) => {
        r.failed++;
        r.failures[key] = (r.failures[key] ?? 0) + 1;
        r.firstFailureAt ??= Date.now();
        resolve(false);
      };
      const req = http.get(url, { agent }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode! >= 200 && res.statusCode! < 300) {
            r.ok++;
            resolve(true);
          } else fail(String(res.statusCode));
        });
        res.on('error', (e) => fail((e as NodeJS.ErrnoException).code ?? e.message));
      });
      req.setTimeout(5_000, () => req.destroy(new Error('client timeout')));
      req.on('error', (e) => fail((e as NodeJS.ErrnoException).code ?? e.message));
    });
  const workers = Array.from({ length: concurrency }, async () => {
    while (running && r.sent < maxRequests) {
      const next = Date.now() + intervalMs;
      r.sent++;
      if (!(await one()) && stopOnFailure) return;
      const wait = next - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
  });
  return {
    get sent() {
      return r.sent;
    },
    get ok() {
      return r.ok;
    },
    async stop() {
      running = false;
      await Promise.all(workers);
      agent.destroy();
      return { ...r };
    },
  };
}

/**
 * The ensemble member `pid` holds an established TCP connection to: its socket inodes
 * (/proc/<pid>/fd) matched against /proc/net/tcp by remote port. Linux only, as the suite.
 */
function memberConnectedTo(pid: number, members: ZooKeeperServer[]): ZooKeeperServer | undefined {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // The descriptor closed while listing.
    }
  }
  const ports = new Set<number>();
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
    if (f.length < 10 || f[3] !== '01' || !inodes.has(f[9]!)) continue;
    ports.add(Number.parseInt(f[2]!.split(':')[1]!, 16));
  }
  return members.find((s) => s.running && ports.has(s.options.clientPort));
}

async function startProxy(connectString: string, basePath: string) {
  // Port 0: the kernel picks the ports, and the start-up line names them.
  const p: PuttuProcess = puttu(
    [
      'proxy',
      ...['--zk', connectString, '--base-path', basePath, '--host', '127.0.0.1', '--port', '0'],
      ...['--admin-port', '0', '--session-timeout-ms', '6000'],
    ],
    { PUTTU_LOG_LEVEL: 'info' },
  );
  const listening = await p.waitFor('puttu proxy listening');
  return Object.assign(p, { url: String(listening.proxyUrl), admin: String(listening.adminUrl) });
}

/** Which upstream answered a request through `proxyUrl`. */
const answeredBy = async (proxyUrl: string) => (await request(`${proxyUrl}/topo/x`)).headers['x-upstream'];

test('production topology: kill one proxy and a ZooKeeper member under load: the surviving proxy fails nothing and follows the registry', async (t) => {
  const testStart = Date.now();
  const ensemble = await startEnsemble(3);
  t.teardown(() => ensemble.stop());
  const basePath = `/topology-${process.pid}`;
  const ups = await Promise.all(['a', 'b', 'c'].map((n) => startUpstream(n)));
  t.teardown(() => Promise.all(ups.map((u) => u.close())));
  const [a, b, c] = ups as [(typeof ups)[0], (typeof ups)[0], (typeof ups)[0]];
  const lib = connect(ensemble.connectString, basePath, { sessionTimeoutMs: 6_000 });
  t.teardown(() => lib.close());
  await lib.register('topo', { host: '127.0.0.1', port: a.port });
  await lib.register('topo', { host: '127.0.0.1', port: b.port });

  const proxies = await Promise.all([startProxy(ensemble.connectString, basePath), startProxy(ensemble.connectString, basePath)]);
  for (const p of proxies) t.teardown(() => p.kill('SIGKILL'));
  const [survivor, victim] = proxies as [(typeof proxies)[0], (typeof proxies)[0]];
  for (const p of proxies) {
    await eventually(async () => (await request(`${p.admin}/readyz`)).status === 200, { timeoutMs: 20_000, message: 'proxy ready' });
    const seen = new Set<unknown>();
    await eventually(
      async () => {
        seen.add(await answeredBy(p.url));
        return seen.has('a') && seen.has('b');
      },
      { message: 'both instances routed' },
    );
  }
  const readyAt = Date.now();

  // At most ~1,000 req/s into each proxy: 5 workers, one request per 5 ms each.
  const pace = { concurrency: 5, intervalMs: 5, maxRequests: 8_000 };
  const survivorLoad = pacedLoad(`${survivor.url}/topo/x`, pace);
  const victimLoad = pacedLoad(`${victim.url}/topo/x`, { ...pace, stopOnFailure: true });
  const loadStart = Date.now();
  await eventually(() => survivorLoad.ok > 500 && victimLoad.ok > 500, { message: 'load through both proxies' });

  // 1. One proxy dies.
  const proxyKilledAt = Date.now();
  process.kill(victim.child.pid!, 'SIGKILL');
  await victim.exited;
  const atProxyKill = survivorLoad.ok;
  await eventually(() => survivorLoad.ok > atProxyKill + 500, { message: 'the survivor keeps routing after the proxy kill' });

  // 2. The ZooKeeper member the surviving proxy is connected to dies (2 of 3 keep quorum).
  const member = await eventually(() => memberConnectedTo(survivor.child.pid!, ensemble.servers), {
    message: "the survivor's ZooKeeper member",
  });
  const memberMode = await member.mode();
  const memberKilledAt = Date.now();
  await member.stop('SIGKILL');
  const atMemberKill = survivorLoad.ok;
  const moved = await eventually(() => memberConnectedTo(survivor.child.pid!, ensemble.servers), {
    timeoutMs: 20_000,
    message: 'the survivor reconnected to another member',
  });
  const reconnectMs = Date.now() - memberKilledAt;
  await eventually(async () => (await request(`${survivor.admin}/api/status`)).json().zookeeper === 'connected', {
    timeoutMs: 20_000,
    message: 'the survivor connected',
  });

  // 3. The registry still reaches the survivor: a new instance, registered after the member died.
  const registeredAt = Date.now();
  await lib.register('topo', { host: '127.0.0.1', port: c.port });
  await eventually(() => c.seen.length > 0, { timeoutMs: 15_000, message: 'the new instance routed by the survivor' });
  const newRoutedMs = Date.now() - registeredAt;
  await eventually(() => survivorLoad.ok > atMemberKill + 1_000, { message: 'the survivor keeps routing after the member kill' });

  const s = await survivorLoad.stop();
  const v = await victimLoad.stop();
  const loadMs = Date.now() - loadStart;
  t.log(
    `ensemble + proxies ready in ${readyAt - testStart} ms; load ${loadMs} ms; ` +
      `survivor: sent ${s.sent}, ok ${s.ok}, failed ${s.failed}; killed proxy: sent ${v.sent}, ok ${v.ok}, failed ${v.failed} ` +
      `(first failure ${v.firstFailureAt === undefined ? '-' : v.firstFailureAt - proxyKilledAt} ms after the kill, ${JSON.stringify(v.failures)})`,
  );
  t.log(
    `killed ZooKeeper ${memberMode} on port ${member.options.clientPort}: survivor on port ${moved.options.clientPort} after ` +
      `${reconnectMs} ms; instance registered after it routed in ${newRoutedMs} ms (${c.seen.length} requests)`,
  );

  t.is(s.failed, 0, `survivor failures: ${JSON.stringify(s.failures)}`);
  t.true(s.ok > atMemberKill, 'the survivor routed after the member kill');
  t.not(moved, member);
  t.true(v.ok > 0);
  t.true(v.failed > 0 && v.failed <= pace.concurrency, `killed proxy: each worker stops at its first failure (${v.failed})`);
  t.true(v.firstFailureAt! >= proxyKilledAt, "the killed proxy's failures started only after the kill");
  t.true(c.seen.length > 0);
});
