/**
 * The pieces every benchmark script starts on loopback: a real ZooKeeper, echo backends
 * registered in it, the http-proxy baseline and puttu itself (`node bin/puttu.js proxy`).
 * Everything started here is stopped at cleanup, by PID.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { freePort } from '../../../dist/proxy/dev/local-zookeeper.js';
import { connect } from '../../../dist/proxy/index.js';
import { startZooKeeper } from '../../../dist/test/helpers/zookeeper.js';
import { ROOT } from './preflight.mjs';
import { onCleanup, spawnTracked } from './processes.mjs';
import { childPids } from './rss.mjs';
import { waitUntil } from './wait.mjs';

export { freePort };
export const BIN = path.join(ROOT, 'bin/puttu.js');
export const BASE_PATH = '/services';
const BENCH = path.join(ROOT, 'test/bench');

export async function startZk() {
  const zk = await startZooKeeper();
  onCleanup('zookeeper', () => zk.stop());
  return zk;
}

async function answers(url) {
  try {
    const res = await fetch(url);
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

/** An echo backend process (see echo-backend.mjs); resolves once it answers. */
export async function startBackend({ dir, name, delayMs = 0 }) {
  const port = await freePort();
  const proc = spawnTracked(
    `backend ${name}`,
    process.execPath,
    [path.join(BENCH, 'echo-backend.mjs'), '--port', String(port), '--delay-ms', String(delayMs)],
    {
      logFile: path.join(dir, `backend-${name}.log`),
    },
  );
  await waitUntil(
    async () => {
      if (!proc.alive()) throw new Error(`backend ${name} exited: ${proc.logTail()}`);
      return (await answers(`http://127.0.0.1:${port}/small`)) === 200;
    },
    { timeoutMs: 10_000, what: `backend ${name}` },
  );
  const served = async () => Number(await (await fetch(`http://127.0.0.1:${port}/__requests`)).text());
  return { name, port, delayMs, proc, served };
}

/** Registers each backend under its services through the library; deregistered at cleanup. */
export async function registerBackends(connectString, services) {
  const client = connect(connectString, BASE_PATH);
  onCleanup('registrations', () => client.close());
  for (const [service, backends] of Object.entries(services)) {
    for (const b of backends) await client.register(service, { host: '127.0.0.1', port: b.port, api: '' });
  }
  return client;
}

/** The http-proxy baseline (http-proxy-server.mjs), round-robin over static routes. */
export function startHttpProxy({ dir, routes }) {
  return startBaseline({ dir, routes, name: 'http-proxy', script: 'http-proxy-server.mjs' });
}

/** The undici-`dispatch` baseline (undici-proxy.mjs), round-robin over static routes. */
export function startUndiciProxy({ dir, routes }) {
  return startBaseline({ dir, routes, name: 'undici', script: 'undici-proxy.mjs' });
}

/** Any script that takes BENCH_ROUTES and `--port` the way the baselines do (ab.mjs `script:`). */
export function startBaselineScript({ dir, routes, name, script }) {
  return startBaseline({ dir, routes, name, script });
}

async function startBaseline({ dir, routes, name, script }) {
  const port = await freePort();
  const targets = Object.fromEntries(Object.entries(routes).map(([s, ports]) => [s, ports.map((p) => `http://127.0.0.1:${p}`)]));
  const proc = spawnTracked(name, process.execPath, [path.resolve(BENCH, script), '--port', String(port)], {
    logFile: path.join(dir, `${name}.log`),
    env: { BENCH_ROUTES: JSON.stringify(targets) },
  });
  const service = Object.keys(routes)[0];
  await waitUntil(
    async () => {
      if (!proc.alive()) throw new Error(`${name} exited: ${proc.logTail()}`);
      return (await answers(`http://127.0.0.1:${port}/${service}/small`)) === 200;
    },
    { timeoutMs: 10_000, what: `${name} baseline` },
  );
  return { name, proc, port, pids: () => (proc.alive() ? [proc.pid] : []) };
}

/**
 * `node [nodeArgs] bin/puttu.js proxy` with default settings (metrics on) but for `flags`;
 * resolves once its snapshot holds `expect` (service → instance count). `bin`: another tree's
 * bin/puttu.js (A/B runs of two builds).
 */
export async function startPuttu({ dir, zk, name = 'puttu', flags = [], nodeArgs = [], expect = {}, bin = BIN }) {
  const port = await freePort();
  const adminPort = await freePort();
  const args = [
    ...nodeArgs,
    bin,
    'proxy',
    '--zk',
    zk,
    '--port',
    String(port),
    '--admin-port',
    String(adminPort),
    '--host',
    '127.0.0.1',
    ...flags,
  ];
  const proc = spawnTracked(name, process.execPath, args, { logFile: path.join(dir, `${name.replace(/\W+/g, '-')}.log`) });
  await waitUntil(
    async () => {
      if (!proc.alive()) throw new Error(`${name} exited: ${proc.logTail()}`);
      const snapshot = await fetch(`http://127.0.0.1:${adminPort}/api/services`)
        .then((r) => r.json())
        .catch(() => undefined);
      if (!snapshot?.ready) return false;
      const counts = Object.fromEntries(snapshot.services.map((s) => [s.name, s.instances.length]));
      return Object.entries(expect).every(([service, n]) => counts[service] === n);
    },
    { timeoutMs: 30_000, what: `${name} to read the registry` },
  );
  // With --workers, the workers are its children: count them too.
  return { name, proc, port, adminPort, pids: () => (proc.alive() ? [proc.pid, ...childPids(proc.pid)] : []) };
}

/**
 * The strategies `puttu proxy --help` lists for --balancer ("load-balancing strategy (a, b)"),
 * and its default; BENCH_BALANCERS (comma-separated) overrides the list.
 */
export function balancers() {
  const help = spawnSync(process.execPath, [BIN, 'proxy', '--help'], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '';
  const line = help.split('\n').find((l) => /^\s*--balancer\b/.test(l)) ?? '';
  const defaultName = /\(default: ([^)]+)\)/.exec(line)?.[1]?.trim() ?? 'random';
  const listed = /strateg(?:y|ies)\s*\(([^)]*)\)/.exec(line)?.[1] ?? defaultName;
  const names = (process.env.BENCH_BALANCERS ?? listed)
    .split(/[,|/]|\s+or\s+/)
    .map((s) => s.trim())
    .filter((s) => /^[\w-]+$/.test(s));
  return { names: names.length > 0 ? names : [defaultName], defaultName };
}
