/**
 * Traffic policy end to end: a real ZooKeeper, real backends registered through the library (or
 * written as znodes of other formats), the proxy in-process, real HTTP clients. Each test has its
 * own base path, so they run concurrently. Random choices use a seeded source: shares are measured,
 * never hoped for.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type Puttu } from '../../proxy/index.js';
import type { ZkClient } from '../../proxy/registry/zk-client.js';
import { eventually } from '../helpers/eventually.js';
import { seeded } from '../helpers/fakes.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { countUpstreams, share } from '../helpers/traffic.js';
import { request, startUpstream, type Upstream } from '../helpers/upstreams.js';
import { rawClient, startZooKeeper, type TestZooKeeper } from '../helpers/zookeeper.js';
import type { BalancerName } from '../../proxy/balancer/index.js';

let zk: TestZooKeeper;
const cleanups: Array<() => Promise<unknown>> = [];

test.before(async () => {
  zk = await startZooKeeper();
});

test.after.always(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await zk?.stop();
});

let raw: ZkClient | undefined;
async function zkRaw(): Promise<ZkClient> {
  if (raw === undefined) {
    raw = await rawClient(zk.connectString);
    const r = raw;
    cleanups.push(() => r.close());
  }
  return raw;
}

/** Writes (creates or replaces) a policy document; resolves with its new znode version. */
async function writePolicy(policyPath: string, service: string, doc: unknown): Promise<number> {
  const z = await zkRaw();
  const p = `${policyPath}/${service}`;
  const data = Buffer.from(typeof doc === 'string' ? doc : JSON.stringify(doc));
  if (await z.exists(p)) await z.setData(p, data);
  else {
    await z.mkdirp(policyPath);
    await z.create(p, data, 'persistent');
  }
  return (await z.getDataWithVersion(p)).version;
}

async function admin(proxy: TestProxy, p: string): Promise<any> {
  const reply = await request(proxy.adminUrl + p);
  return { status: reply.status, ...reply.json() };
}

async function setup(overrides: Parameters<typeof startProxy>[1] = {}, seed = 1) {
  const policyPath = `/pol-${randomUUID().slice(0, 8)}`;
  const proxy = await startProxy(zk.connectString, { policyPath, ...overrides }, { random: seeded(seed) });
  cleanups.push(() => proxy.close());
  const lib = connect(zk.connectString, proxy.basePath);
  cleanups.push(() => lib.close());
  return { proxy, lib, policyPath: overrides.policyPath ?? policyPath };
}

async function upstreams(...names: string[]): Promise<Upstream[]> {
  const ups = [];
  for (const name of names) {
    const u = await startUpstream(name);
    cleanups.push(() => u.close());
    ups.push(u);
  }
  return ups;
}

async function waitInstances(proxy: TestProxy, service: string, n: number) {
  await eventually(() => proxy.app.registry!.get(service)?.instances.length === n, { message: `${service} has ${n} instances` });
}

async function register(lib: Puttu, service: string, u: Upstream, extra: { weight?: number; metadata?: Record<string, string> } = {}) {
  return lib.register(service, { host: '127.0.0.1', port: u.port, ...extra });
}

for (const balancer of ['random', 'round-robin', 'p2c'] as BalancerName[]) {
  test(`weights: ${balancer} splits 4,000 requests to weights 1 and 3 within 3 points of 25/75`, async (t) => {
    const { proxy, lib } = await setup({ balancer });
    const [light, heavy] = await upstreams('light', 'heavy');
    await register(lib, 'weighted', light!, { weight: 1 });
    await register(lib, 'weighted', heavy!, { weight: 3 });
    await waitInstances(proxy, 'weighted', 2);
    const counted = await countUpstreams(`${proxy.url}/weighted/`, 4000, { concurrency: 8 });
    t.is(counted.failed, 0);
    const light25 = share(counted, 'light', 4000);
    t.log(`light ${(light25 * 100).toFixed(1)} %`);
    t.true(Math.abs(light25 - 0.25) <= 0.03, `light got ${(light25 * 100).toFixed(1)} %`);
  });
}

test('weights: a Curator instance with metadata weight "3" and a Nerve one of weight 1 split 25/75', async (t) => {
  const { proxy } = await setup();
  const [nerve, curator] = await upstreams('nerve', 'curator');
  const raw = await zkRaw();
  const base = `${proxy.basePath}/mixed`;
  await raw.mkdirp(base);
  await raw.create(
    `${base}/n1`,
    Buffer.from(JSON.stringify({ host: '127.0.0.1', port: nerve!.port, name: 'mixed', weight: 1 })),
    'persistent',
  );
  await raw.create(
    `${base}/c1`,
    Buffer.from(
      JSON.stringify({
        name: 'mixed',
        id: 'c1',
        address: '127.0.0.1',
        port: curator!.port,
        sslPort: null,
        payload: { '@class': 'org.springframework.cloud.zookeeper.discovery.ZookeeperInstance', metadata: { weight: '3' } },
        registrationTimeUTC: 1,
        serviceType: 'DYNAMIC',
        uriSpec: null,
      }),
    ),
    'persistent',
  );
  await waitInstances(proxy, 'mixed', 2);
  const counted = await countUpstreams(`${proxy.url}/mixed/`, 4000);
  t.is(counted.failed, 0);
  const s = share(counted, 'nerve', 4000);
  t.true(Math.abs(s - 0.25) <= 0.03, `nerve got ${(s * 100).toFixed(1)} %`);
});

// --- Policy documents ---------------------------------------------------------------------------

test('policy: a valid document applies to new requests within 1 s, versioned, and shows in /api/services', async (t) => {
  const { proxy, lib, policyPath } = await setup();
  const [u] = await upstreams('only');
  await register(lib, 'orders', u!);
  await waitInstances(proxy, 'orders', 1);
  t.is((await request(`${proxy.url}/orders/a`)).json().url, '/a', 'default: the prefix is stripped');
  let written = Date.now();
  const v0 = await writePolicy(policyPath, 'orders', { stripPrefix: false });
  await eventually(async () => (await request(`${proxy.url}/orders/a`)).json().url === '/orders/a', {
    timeoutMs: 1000,
    intervalMs: 10,
    message: 'stripPrefix false in force within 1 s',
  });
  t.log(`applied after ${Date.now() - written} ms`);
  const one = await admin(proxy, '/api/services/orders');
  t.deepEqual(one.policy, { version: v0, inForce: { stripPrefix: false } });
  written = Date.now();
  const v1 = await writePolicy(policyPath, 'orders', { stripPrefix: true, maxAttempts: 2 });
  t.is(v1, v0 + 1);
  await eventually(async () => (await request(`${proxy.url}/orders/a`)).json().url === '/a', { timeoutMs: 1000, intervalMs: 10 });
  const all = await admin(proxy, '/api/services');
  t.deepEqual(all.services.find((s: { name: string }) => s.name === 'orders').policy, {
    version: v1,
    inForce: { stripPrefix: true, maxAttempts: 2 },
  });
  // Deleted: the flags apply again.
  await (await zkRaw()).remove(`${policyPath}/orders`);
  await eventually(async () => (await admin(proxy, '/api/services/orders')).policy === null, { timeoutMs: 1000, intervalMs: 10 });
});

test('policy: an invalid document is refused with its reason (log, metric, /api/services); the last valid one stays', async (t) => {
  const { proxy, lib, policyPath } = await setup();
  const [u] = await upstreams('only');
  await register(lib, 'billing', u!);
  await waitInstances(proxy, 'billing', 1);
  const good = await writePolicy(policyPath, 'billing', { stripPrefix: false });
  await eventually(async () => (await admin(proxy, '/api/services/billing')).policy?.version === good);
  const cases: Array<[unknown, RegExp]> = [
    [{ balancer: 'fastest' }, /balancer must be one of random, round-robin, p2c, got "fastest"/],
    ['{"stripPrefix": fals', /not valid JSON/],
    [{ timeoutMs: 5 }, /unknown key "timeoutMs"/],
    [{ split: [{ match: { metadata: { track: 'canary' } }, percent: 120 }] }, /split\[0\]\.percent must be a number from 0 to 100/],
    [{ sticky: { header: 'x-user', cookie: 'u' } }, /sticky must have exactly one of "header" or "cookie"/],
  ];
  for (const [doc, reason] of cases) {
    const version = await writePolicy(policyPath, 'billing', doc);
    const shown = await eventually(async () => {
      const p = (await admin(proxy, '/api/services/billing')).policy;
      return p?.refused?.version === version && p;
    });
    t.regex(shown.refused.reason, reason);
    t.is(shown.version, good, 'the last valid version stays in force');
    t.is((await request(`${proxy.url}/billing/x`)).json().url, '/billing/x', 'and so does its behaviour');
    const metrics = (await request(`${proxy.adminUrl}/metrics`)).body.toString();
    t.regex(metrics, /puttu_policy_invalid\{service="billing"\} 1/);
  }
  const fixed = await writePolicy(policyPath, 'billing', { stripPrefix: true });
  await eventually(async () => (await admin(proxy, '/api/services/billing')).policy?.version === fixed);
  t.is((await admin(proxy, '/api/services/billing')).policy.refused, undefined);
  t.regex((await request(`${proxy.adminUrl}/metrics`)).body.toString(), /puttu_policy_invalid\{service="billing"\} 0/);
});

test('policy: a policy written before the proxy starts is in force from its first request', async (t) => {
  const policyPath = `/pol-${randomUUID().slice(0, 8)}`;
  await writePolicy(policyPath, 'early', { stripPrefix: false });
  const { proxy, lib } = await setup({ policyPath });
  const [u] = await upstreams('only');
  await register(lib, 'early', u!);
  await waitInstances(proxy, 'early', 1);
  await proxy.app.traffic!.whenSynced();
  t.is((await request(`${proxy.url}/early/z`)).json().url, '/early/z');
});

const BIN = fileURLToPath(new URL('../../../bin/puttu.js', import.meta.url));

function cli(args: string[], input?: string): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, PUTTU_LOG_LEVEL: 'silent' }, stdio: 'pipe' });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    child.on('exit', (code) => resolve({ code, out, err }));
    child.stdin.end(input ?? '');
  });
}

test('puttu policy validate | set | get | delete: a refused file writes nothing; a set one is in force', async (t) => {
  const { proxy, lib, policyPath } = await setup();
  const [u] = await upstreams('only');
  await register(lib, 'cart', u!);
  await waitInstances(proxy, 'cart', 1);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'puttu-policy-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const bad = path.join(dir, 'bad.json');
  const good = path.join(dir, 'good.json');
  fs.writeFileSync(bad, JSON.stringify({ maxAttempts: 0 }));
  fs.writeFileSync(good, JSON.stringify({ stripPrefix: false, explain: true }));
  const flags = ['--zk', zk.connectString, '--policy-path', policyPath];

  const invalid = await cli(['policy', 'validate', 'cart', bad]);
  t.is(invalid.code, 2);
  t.regex(invalid.err, /maxAttempts must be an integer from 1 to 10, got 0/);
  t.is((await cli(['policy', 'validate', 'cart', good])).code, 0);
  const refused = await cli(['policy', 'set', 'cart', bad, ...flags]);
  t.is(refused.code, 2);
  t.false(await (await zkRaw()).exists(`${policyPath}/cart`), 'nothing written');
  t.is((await cli(['policy', 'get', 'cart', ...flags])).code, 3);

  const set = await cli(['policy', 'set', 'cart', good, ...flags]);
  t.is(set.code, 0, set.err);
  t.regex(set.out, /version 0/);
  await eventually(async () => (await request(`${proxy.url}/cart/q`)).json().url === '/cart/q', { timeoutMs: 1000, intervalMs: 10 });
  const got = await cli(['policy', 'get', 'cart', ...flags]);
  t.deepEqual(JSON.parse(got.out), { stripPrefix: false, explain: true });
  t.regex(got.err, /version 0/);
  const fromStdin = await cli(['policy', 'set', 'cart', '-', ...flags], '{"stripPrefix": true}');
  t.regex(fromStdin.out, /version 1/);
  t.is((await cli(['policy', 'validate', 'cart', ...flags])).code, 0, 'the stored document');
  await eventually(async () => (await request(`${proxy.url}/cart/q`)).json().url === '/q', { timeoutMs: 1000, intervalMs: 10 });
  t.is((await cli(['policy', 'delete', 'cart', ...flags])).code, 0);
  t.is((await cli(['policy', 'delete', 'cart', ...flags])).code, 3);
  const usage = await cli(['policy', 'frobnicate', 'cart']);
  t.is(usage.code, 2);
  t.regex(usage.err, /get, set, validate or delete/);
});
