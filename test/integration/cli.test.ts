/**
 * `puttu` as a process: started with node directly (npm/npx run it through sh, which does not
 * pass SIGTERM on), routed through, and stopped by signal.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect } from '../../proxy/index.js';
import { fourLetter, freePort } from '../../proxy/dev/local-zookeeper.js';
import { eventually } from '../helpers/eventually.js';
import { BIN, exitCode, portOf } from '../helpers/processes.js';
import { request, startUpstream } from '../helpers/upstreams.js';
import { startZooKeeper, type TestZooKeeper } from '../helpers/zookeeper.js';

let zk: TestZooKeeper;

test.before(async () => {
  zk = await startZooKeeper();
});
test.after.always(async () => {
  await zk?.stop();
});

interface Running {
  child: ChildProcess;
  lines: () => any[];
  stderr: () => string;
  exited: Promise<number | null>;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Running {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (err += c));
  const exited = exitCode(child);
  return {
    child,
    stderr: () => err + out,
    lines: () =>
      (err + out)
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l)),
    exited,
  };
}

function killOnTeardown(t: { teardown(fn: () => void): void }, r: Running) {
  t.teardown(() => {
    if (r.child.exitCode === null) r.child.kill('SIGKILL');
  });
}

test('puttu proxy routes a request and exits 0 on SIGTERM', async (t) => {
  const basePath = '/cli-route';
  // Port 0 on both listeners: the kernel picks free ports and the start-up line names them.
  const proxy = run(['proxy', '--zk', zk.connectString, '--base-path', basePath, '--port', '0', '--host', '127.0.0.1'], {
    PUTTU_ADMIN_PORT: '0',
  });
  killOnTeardown(t, proxy);
  const listening = await eventually(() => proxy.lines().find((l) => l.msg === 'puttu proxy listening'), {
    timeoutMs: 20_000,
    message: 'proxy listening',
  });
  const port = portOf(listening.proxyUrl);
  const adminPort = portOf(listening.adminUrl);
  t.not(port, adminPort);

  const upstream = await startUpstream('cli');
  t.teardown(() => upstream.close());
  const lib = connect(zk.connectString, basePath);
  t.teardown(() => lib.close());
  await lib.register('hello', { host: '127.0.0.1', port: upstream.port, api: '/v1' });
  const reply = await eventually(
    async () => {
      const r = await request(`http://127.0.0.1:${port}/hello/world`);
      return r.status === 200 ? r : undefined;
    },
    { message: 'routed through the CLI proxy' },
  );
  t.is(reply.json().url, '/v1/world');
  t.is((await request(`http://127.0.0.1:${adminPort}/readyz`)).status, 200);

  proxy.child.kill('SIGTERM');
  t.is(await proxy.exited, 0);
  t.truthy(proxy.lines().find((l) => l.msg === 'stopped'));
});

test('in-flight requests finish during a SIGTERM shutdown', async (t) => {
  const basePath = '/cli-drain';
  const proxy = run([
    'proxy',
    '--zk',
    zk.connectString,
    '--base-path',
    basePath,
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--admin-port',
    '-1',
  ]);
  killOnTeardown(t, proxy);
  await eventually(() => proxy.lines().find((l) => l.msg === 'registry synced'), { timeoutMs: 20_000 });
  const port = portOf(proxy.lines().find((l) => l.msg === 'puttu proxy listening').proxyUrl);
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const upstream = await startUpstream('slow', (_req, res) => void gate.then(() => res.end('finished')));
  t.teardown(() => upstream.close());
  const lib = connect(zk.connectString, basePath);
  t.teardown(() => lib.close());
  await lib.register('slow', { host: '127.0.0.1', port: upstream.port });
  await eventually(() => proxy.lines().find((l) => l.msg === 'instance added'));

  const inFlight = request(`http://127.0.0.1:${port}/slow/x`);
  await eventually(() => upstream.seen.length === 1, { message: 'request reached the upstream' });
  proxy.child.kill('SIGTERM');
  await eventually(() => proxy.lines().find((l) => l.msg?.startsWith('shutting down')));
  release();
  const reply = await inFlight;
  t.is(reply.status, 200);
  t.is(reply.body.toString(), 'finished');
  t.is(await proxy.exited, 0);
});

test('invalid configuration exits 2 with a message naming the key', async (t) => {
  const bad = run(['proxy', '--port', '99999']);
  t.is(await bad.exited, 2);
  t.regex(bad.stderr(), /port \(from --port\) must be an integer/);

  const badEnv = run(['proxy'], { PUTTU_BALANCER: 'fastest' });
  t.is(await badEnv.exited, 2);
  t.regex(badEnv.stderr(), /balancer \(from environment PUTTU_BALANCER\)/);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'puttu-cfg-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'c.json'), JSON.stringify({ adminPort: 'nine' }));
  const badFile = run(['proxy', '--config', path.join(dir, 'c.json')]);
  t.is(await badFile.exited, 2);
  t.regex(badFile.stderr(), /adminPort \(from .*c\.json\)/);
});

test('--help and --version exit 0; an unknown command exits 2', async (t) => {
  const help = run(['proxy', '--help']);
  t.is(await help.exited, 0);
  t.regex(help.stderr(), /--zk/);
  t.regex(help.stderr(), /PUTTU_BASE_PATH/);
  const top = run(['--help']);
  t.is(await top.exited, 0);
  t.regex(top.stderr(), /Commands:/);
  const version = run(['--version']);
  t.is(await version.exited, 0);
  t.regex(version.stderr(), /^\d+\.\d+\.\d+/);
  const unknown = run(['frobnicate']);
  t.is(await unknown.exited, 2);
  t.regex(unknown.stderr(), /unknown command "frobnicate"/);
});

test('without --zk it starts a local development ZooKeeper, says so, and stops it on exit', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'puttu-devzk-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const zkPort = await freePort();
  const proxy = run(
    ['proxy', '--port', '0', '--host', '127.0.0.1', '--admin-port', '0', '--dev-zk-dir', dir, '--dev-zk-port', String(zkPort)],
    {
      PUTTU_ZK: '',
    },
  );
  killOnTeardown(t, proxy);
  const up = await eventually(() => proxy.lines().find((l) => l.msg === 'local development ZooKeeper is up'), { timeoutMs: 30_000 });
  t.is(up.connectString, `127.0.0.1:${zkPort}`);
  t.truthy(proxy.lines().find((l) => l.msg?.includes('starting a local development ZooKeeper')));
  await eventually(() => proxy.lines().find((l) => l.msg === 'registry synced'), { timeoutMs: 20_000 });
  t.is((await fourLetter(zkPort, 'ruok')).trim(), 'imok');
  t.true(fs.existsSync(path.join(dir, 'data')), 'data kept in the configured folder');

  proxy.child.kill('SIGTERM');
  t.is(await proxy.exited, 0);
  t.is(await fourLetter(zkPort, 'ruok'), '', 'the development ZooKeeper is stopped');
  t.truthy(proxy.lines().find((l) => l.msg === 'local development ZooKeeper stopped'));
});

test('puttu register wraps a program: registers once its port accepts, ls/get see it, SIGTERM deregisters and passes the code on', async (t) => {
  const basePath = '/cli-register';
  const port = await freePort();
  const server = `require('http').createServer((q, s) => s.end('wrapped ' + q.url)).listen(${port}, '127.0.0.1'); process.on('SIGTERM', () => process.exit(7))`;
  const reg = run([
    'register',
    'wrapped',
    '--port',
    String(port),
    '--host',
    '127.0.0.1',
    '--zk',
    zk.connectString,
    '--base-path',
    basePath,
    '--',
    process.execPath,
    '-e',
    server,
  ]);
  killOnTeardown(t, reg);
  await eventually(() => reg.lines().find((l) => typeof l.msg === 'string' && l.msg.startsWith('registered')), {
    timeoutMs: 20_000,
    message: 'registered',
  });

  const ls = run(['ls', '--json', '--zk', zk.connectString, '--base-path', basePath]);
  t.is(await ls.exited, 0);
  const listed = JSON.parse(ls.stderr().slice(ls.stderr().indexOf('[')));
  t.is(listed[0].name, 'wrapped');
  t.is(listed[0].instances[0].url, `http://127.0.0.1:${port}`);

  const get = run(['get', 'wrapped', '--zk', zk.connectString, '--base-path', basePath]);
  t.is(await get.exited, 0);
  t.regex(get.stderr(), new RegExp(`http://127\\.0\\.0\\.1:${port}`));
  const missing = run(['get', 'nothing-here', '--zk', zk.connectString, '--base-path', basePath]);
  t.is(await missing.exited, 3, 'no live endpoint: exit 3');

  reg.child.kill('SIGTERM');
  t.is(await reg.exited, 7, "the wrapped program's exit code");
  const after = run(['ls', 'wrapped', '--json', '--zk', zk.connectString, '--base-path', basePath]);
  t.is(await after.exited, 0);
  t.deepEqual(JSON.parse(after.stderr().slice(after.stderr().indexOf('[')))[0].instances, [], 'deregistered');
});

test('puttu register: bad usage exits 2 with one clear line', async (t) => {
  const noPort = run(['register', 'svc']);
  t.is(await noPort.exited, 2);
  t.regex(noPort.stderr(), /--port is required/);
  const badFlag = run(['register', 'svc', '--port', '80', '--nope', 'x']);
  t.is(await badFlag.exited, 2);
  t.regex(badFlag.stderr(), /unknown flag --nope/);
});

test('--workers 2: one ZooKeeper session in the primary, workers route from its snapshots, a dead worker is replaced, SIGTERM stops all', async (t) => {
  const basePath = '/cli-workers';
  const proxy = run([
    'proxy',
    '--zk',
    zk.connectString,
    '--base-path',
    basePath,
    '--port',
    '0',
    '--admin-port',
    '0',
    '--host',
    '127.0.0.1',
    '--workers',
    '2',
  ]);
  killOnTeardown(t, proxy);
  await eventually(() => proxy.lines().filter((l) => l.msg === 'puttu worker listening').length === 2, {
    timeoutMs: 20_000,
    message: 'two workers',
  });
  // Port 0: the primary binds the proxy port once for every worker, so all of them name the same one.
  const workerPorts = new Set(
    proxy
      .lines()
      .filter((l) => l.msg === 'puttu worker listening')
      .map((l) => portOf(l.proxyUrl)),
  );
  t.is(workerPorts.size, 1, 'the workers share one port');
  const port = [...workerPorts][0]!;
  t.is(portOf(proxy.lines().find((l) => l.msg === 'puttu proxy listening').proxyUrl), port, "the primary names the workers' port");
  const adminPort = portOf(proxy.lines().find((l) => l.msg?.startsWith('puttu cluster primary')).adminUrl);
  const upstream = await startUpstream('clustered');
  t.teardown(() => upstream.close());
  const lib = connect(zk.connectString, basePath);
  t.teardown(() => lib.close());
  await lib.register('clustered', { host: '127.0.0.1', port: upstream.port, api: '/v1' });
  await eventually(async () => (await request(`http://127.0.0.1:${port}/clustered/x`)).status === 200, { message: 'routed by a worker' });
  for (let i = 0; i < 40; i++) t.is((await request(`http://127.0.0.1:${port}/clustered/x`)).status, 200);
  t.is(proxy.lines().filter((l) => l.msg === 'zookeeper session established').length, 1, 'ZooKeeper watched once');
  const metrics = (await request(`http://127.0.0.1:${adminPort}/metrics`)).body.toString();
  const served = Number(
    /puttu_requests_total\{service="clustered",method="GET",status_class="2xx",protocol="http\/1\.1"\} (\d+)/.exec(metrics)?.[1],
  );
  t.true(served >= 41, `the primary's /metrics sums the workers (${served})`);
  t.regex(metrics, /puttu_endpoints\{service="clustered"\} 1\n/, 'registry gauges are not multiplied by the workers');

  const workerPid = proxy.lines().find((l) => l.msg === 'puttu worker listening').pid as number;
  process.kill(workerPid, 'SIGKILL');
  await eventually(() => proxy.lines().filter((l) => l.msg === 'puttu worker listening').length === 3, {
    timeoutMs: 20_000,
    message: 'a replacement worker',
  });
  t.truthy(proxy.lines().find((l) => l.msg === 'worker died; starting a replacement'));
  for (let i = 0; i < 10; i++) t.is((await request(`http://127.0.0.1:${port}/clustered/x`)).status, 200);

  const pids = proxy
    .lines()
    .filter((l) => l.msg === 'puttu worker listening')
    .map((l) => l.pid as number);
  proxy.child.kill('SIGTERM');
  t.is(await proxy.exited, 0);
  for (const pid of pids) t.throws(() => process.kill(pid, 0), undefined, `worker ${pid} is gone`);
});
