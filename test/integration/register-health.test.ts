/**
 * `puttu register --health-path`, end to end with real parts: a real ZooKeeper, a real HTTP
 * backend whose /ready is toggled, `puttu register` as a child process, and a real proxy routing
 * to what it registered. Every wait is on a condition with a deadline.
 */
import test from 'ava';
import type http from 'node:http';
import { freePort } from '../../proxy/dev/local-zookeeper.js';
import { probeHost } from '../../proxy/cli/health-gate.js';
import { servicePath } from '../../proxy/registry/paths.js';
import type { ZkClient } from '../../proxy/registry/zk-client.js';
import { eventually } from '../helpers/eventually.js';
import { puttu } from '../helpers/processes.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { echo, request, startUpstream, type Upstream } from '../helpers/upstreams.js';
import { rawClient, startZooKeeper, type TestZooKeeper } from '../helpers/zookeeper.js';

let zk: TestZooKeeper;
let raw: ZkClient;

test.before(async () => {
  zk = await startZooKeeper();
  raw = await rawClient(zk.connectString);
});
test.after.always(async () => {
  await raw?.close();
  await zk?.stop();
});

const FAST = ['--health-interval-ms', '100', '--health-timeout-ms', '500'];

/** A backend whose GET /ready answers 200 or 503 as `setReady()` says, echoing everything else. */
async function toggledBackend(name: string): Promise<Upstream & { setReady(ready: boolean): void; probes(): number; served(): number }> {
  let ready = false;
  const upstream = await startUpstream(name, (req: http.IncomingMessage, res: http.ServerResponse, u: Upstream) => {
    if (req.url === '/ready') res.writeHead(ready ? 200 : 503).end(ready ? 'ready' : 'not ready');
    else echo(req, res, u);
  });
  return Object.assign(upstream, {
    setReady: (value: boolean) => {
      ready = value;
    },
    probes: () => upstream.seen.filter((r) => r.url === '/ready').length,
    served: () => upstream.seen.filter((r) => r.url !== '/ready').length,
  });
}

/** The decoded data of every instance znode of the service (none when the service node is absent). */
async function znodes(basePath: string, service: string): Promise<Array<{ status: string; port: number }>> {
  const dir = servicePath(basePath, service);
  const children = await raw.getChildren(dir).catch(() => [] as string[]);
  return Promise.all(children.map(async (c) => JSON.parse((await raw.getData(`${dir}/${c}`)).toString('utf8'))));
}

async function statusOf(basePath: string, service: string): Promise<string | undefined> {
  const nodes = await znodes(basePath, service);
  return nodes.length === 1 ? nodes[0]!.status : undefined;
}

test('--health-path: registers only once /ready answers 2xx, DRAINING after the grace period, UP again on recovery', async (t) => {
  const proxy: TestProxy = await startProxy(zk.connectString);
  t.teardown(() => proxy.close());
  const backend = await toggledBackend('gated');
  t.teardown(() => backend.close());
  const service = 'gated';
  const graceMs = 600;
  const reg = puttu([
    'register',
    service,
    '--port',
    String(backend.port),
    '--host',
    '127.0.0.1',
    '--zk',
    zk.connectString,
    '--base-path',
    proxy.basePath,
    '--health-path',
    '/ready',
    ...FAST,
    '--health-grace-ms',
    String(graceMs),
  ]);
  t.teardown(() => reg.kill('SIGKILL'));
  const routed = () => request(`${proxy.url}/${service}/hello`);

  // 503: probed again and again, never registered.
  await reg.waitFor('waiting for the health check to answer 2xx before registering');
  await eventually(() => backend.probes() >= 5, { message: 'several probes answered 503' });
  t.deepEqual(await znodes(proxy.basePath, service), [], 'not registered while /ready answers 503');
  t.falsy(reg.lines().find((l) => typeof l.msg === 'string' && l.msg.startsWith('registered')));
  t.not((await routed()).status, 200);

  // 200: registered UP and routed by the proxy.
  backend.setReady(true);
  const registered = await reg.waitFor(/^registered; reach it through the proxy/);
  t.is(registered.health, `http://127.0.0.1:${backend.port}/ready`);
  t.is(await statusOf(proxy.basePath, service), 'UP');
  const reply = await eventually(
    async () => {
      const r = await routed();
      return r.status === 200 ? r : undefined;
    },
    { message: 'routed by the proxy' },
  );
  t.is(reply.json().name, 'gated');
  t.is(reply.json().url, '/hello');

  // /ready fails for the grace period: DRAINING in ZooKeeper, and the proxy stops routing.
  backend.setReady(false);
  await reg.waitFor(/^health check failed; the registration is marked DRAINING if it keeps failing/);
  const draining = await reg.waitFor('health check failing: registration marked DRAINING');
  t.true(draining.failingForMs >= graceMs, `DRAINING only after the grace period (${draining.failingForMs} ms)`);
  t.is(draining.status, 503);
  t.is(await statusOf(proxy.basePath, service), 'DRAINING', 'the znode data says DRAINING');
  t.is((await znodes(proxy.basePath, service)).length, 1, 'still registered: DRAINING, not deleted');
  await eventually(async () => (await routed()).status === 503, { message: 'the proxy stops routing to the DRAINING instance' });
  const servedBefore = backend.served();
  for (let i = 0; i < 5; i++) t.is((await routed()).status, 503);
  t.is(backend.served(), servedBefore, 'no request reached the DRAINING instance');

  // Recovery: UP again, routed again.
  backend.setReady(true);
  await reg.waitFor('health check recovered: registration marked UP');
  t.is(await statusOf(proxy.basePath, service), 'UP');
  await eventually(async () => (await routed()).status === 200, { message: 'routed again after recovery' });

  // Without a command, SIGTERM deregisters and exits 0, as before.
  reg.kill('SIGTERM');
  t.is(await reg.exited, 0);
  t.deepEqual(await znodes(proxy.basePath, service), [], 'deregistered');
  const transitions = reg.lines().filter((l) => /^health check (failing|recovered)/.test(l.msg));
  t.deepEqual(
    transitions.map((l) => [l.level, l.component, l.msg]),
    [
      ['warn', 'health', 'health check failing: registration marked DRAINING'],
      ['info', 'health', 'health check recovered: registration marked UP'],
    ],
    'each transition logged once',
  );
});

test('--health-path with a command: a short failure within the grace period keeps it UP; the exit code is passed on', async (t) => {
  const basePath = '/register-health-cmd';
  const port = await freePort();
  // The wrapped program answers /ready 503 for its first probes, then 200; /flap makes the next
  // two /ready probes fail (well inside the grace period); SIGTERM exits 7.
  const server = `
    let probes = 0, failNext = 0;
    require('http').createServer((q, s) => {
      if (q.url === '/ready') {
        probes++;
        const ok = probes > 3 && failNext === 0;
        if (failNext > 0) failNext--;
        s.writeHead(ok ? 200 : 503).end();
      } else if (q.url === '/flap') { failNext = 2; s.end('flapping'); }
      else s.end('wrapped ' + q.url);
    }).listen(${port}, '127.0.0.1');
    process.on('SIGTERM', () => process.exit(7));`;
  const reg = puttu([
    'register',
    'wrapped-ready',
    '--port',
    String(port),
    '--host',
    '127.0.0.1',
    '--zk',
    zk.connectString,
    '--base-path',
    basePath,
    '--health-path',
    '/ready',
    ...FAST,
    '--health-grace-ms',
    '5000',
    '--',
    process.execPath,
    '-e',
    server,
  ]);
  t.teardown(() => reg.kill('SIGKILL'));
  await reg.waitFor(/^registered; reach it through the proxy/);
  t.is(await statusOf(basePath, 'wrapped-ready'), 'UP');

  t.is((await request(`http://127.0.0.1:${port}/flap`)).status, 200);
  await reg.waitFor(/^health check failed; the registration is marked DRAINING if it keeps failing for 5000 ms/);
  await reg.waitFor('health check passing again');
  t.is(await statusOf(basePath, 'wrapped-ready'), 'UP', 'a failure shorter than the grace period changes nothing');
  t.falsy(reg.lines().find((l) => l.msg === 'health check failing: registration marked DRAINING'));

  reg.kill('SIGTERM');
  t.is(await reg.exited, 7, "the wrapped program's exit code");
  t.deepEqual(await znodes(basePath, 'wrapped-ready'), [], 'deregistered');
});

test('--health-path that never answers 2xx within --wait-ms: exit 1, never registered, the command stopped', async (t) => {
  const basePath = '/register-health-timeout';
  const port = await freePort();
  const server = `require('http').createServer((q, s) => s.writeHead(503).end()).listen(${port}, '127.0.0.1');
    process.on('SIGTERM', () => { require('fs').writeSync(2, 'wrapped program got SIGTERM\\n'); process.exit(0); });`;
  const reg = puttu([
    'register',
    'never-ready',
    '--port',
    String(port),
    '--host',
    '127.0.0.1',
    '--zk',
    zk.connectString,
    '--base-path',
    basePath,
    '--health-path',
    '/ready',
    ...FAST,
    '--wait-ms',
    '1500',
    '--',
    process.execPath,
    '-e',
    server,
  ]);
  t.teardown(() => reg.kill('SIGKILL'));
  t.is(await reg.exited, 1);
  t.regex(reg.output(), new RegExp(`http://127\\.0\\.0\\.1:${port}/ready did not answer 2xx within 1500 ms`));
  t.deepEqual(await znodes(basePath, 'never-ready'), []);
  await eventually(() => reg.output().includes('wrapped program got SIGTERM'), { message: 'the command was stopped' });
});

test('--health-* flags: bad usage exits 2 with one clear line', async (t) => {
  const stray = puttu(['register', 'svc', '--port', '80', '--health-grace-ms', '10']);
  t.is(await stray.exited, 2);
  t.regex(stray.output(), /--health-grace-ms needs --health-path/);
  const relative = puttu(['register', 'svc', '--port', '80', '--health-path', 'ready']);
  t.is(await relative.exited, 2);
  t.regex(relative.output(), /--health-path must be a path starting with \//);
  const badInterval = puttu(['register', 'svc', '--port', '80', '--health-path', '/ready', '--health-interval-ms', 'soon']);
  t.is(await badInterval.exited, 2);
  t.regex(badInterval.output(), /--health-interval-ms must be an integer/);
  const help = puttu(['register', '--help']);
  t.is(await help.exited, 0);
  t.regex(help.output(), /--health-grace-ms/);
});

test('the probe goes to the registered host only when it is a loopback address, else to 127.0.0.1', (t) => {
  for (const loopback of ['127.0.0.1', '127.0.0.2', '::1', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1']) {
    t.is(probeHost(loopback), loopback, loopback);
  }
  t.is(probeHost('[::1]'), '::1', 'probed unbracketed');
  for (const other of [undefined, '10.0.0.7', '0.0.0.0', '::', 'fe80::1', 'api.example.com', '128.0.0.1']) {
    t.is(probeHost(other), '127.0.0.1', String(other));
  }
});
