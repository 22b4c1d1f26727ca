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
import { chromium } from 'playwright-core';
import { WebSocket, WebSocketServer } from 'ws';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect, type Puttu } from '../../proxy/index.js';
import type { ZkClient } from '../../proxy/registry/zk-client.js';
import { eventually } from '../helpers/eventually.js';
import { seeded } from '../helpers/fakes.js';
import { BIN, exitCode, portOf } from '../helpers/processes.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { countUpstreams, share } from '../helpers/traffic.js';
import { echo, request, startUpstream, type Handler, type Upstream } from '../helpers/upstreams.js';
import { expireSession, rawClient } from '../helpers/zookeeper.js';
import { shareZooKeeper } from '../helpers/shared-zookeeper.js';
import type { BalancerName } from '../../proxy/balancer/index.js';

const shared = shareZooKeeper();
const { cleanups } = shared;

let raw: ZkClient | undefined;
async function zkRaw(): Promise<ZkClient> {
  if (raw === undefined) {
    raw = await rawClient(shared.zk.connectString);
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
  const proxy = await startProxy(shared.zk.connectString, { policyPath, ...overrides }, { random: seeded(seed) });
  cleanups.push(() => proxy.close());
  const lib = connect(shared.zk.connectString, proxy.basePath);
  cleanups.push(() => lib.close());
  return { proxy, lib, policyPath: overrides.policyPath ?? policyPath };
}

async function upstreams(...names: string[]): Promise<Upstream[]> {
  return upstreamsWith(echo, ...names);
}

async function upstreamsWith(handler: Handler, ...names: string[]): Promise<Upstream[]> {
  const ups = [];
  for (const name of names) {
    const u = await startUpstream(name, handler);
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
  const counted = await countUpstreams(`${proxy.url}/mixed/`, 2000);
  t.is(counted.failed, 0);
  const s = share(counted, 'nerve', 2000);
  t.true(Math.abs(s - 0.25) <= 0.03, `nerve got ${(s * 100).toFixed(1)} %`);
});

// --- Policy documents ---------------------------------------------------------------------------

// Serial: ava runs it before this file's concurrent tests, whose thousands of requests through
// proxies in this same process would otherwise share its 1 s with it.
test.serial('policy: a valid document applies to new requests within 1 s, versioned, and shows in /api/services', async (t) => {
  const { proxy, lib, policyPath } = await setup();
  const [u] = await upstreams('only');
  await register(lib, 'orders', u!);
  await waitInstances(proxy, 'orders', 1);
  t.is((await request(`${proxy.url}/orders/a`)).json().url, '/a', 'default: the prefix is stripped');
  const v0 = await writePolicy(policyPath, 'orders', { stripPrefix: false });
  // From the moment the write is acknowledged (creating the path and the node took their own round trips).
  let written = Date.now();
  await eventually(async () => (await request(`${proxy.url}/orders/a`)).json().url === '/orders/a', {
    timeoutMs: 1000,
    intervalMs: 10,
    message: 'stripPrefix false in force within 1 s',
  });
  t.log(`applied after ${Date.now() - written} ms`);
  const one = await admin(proxy, '/api/services/orders');
  t.deepEqual(one.policy, { version: v0, inForce: { stripPrefix: false } });
  const v1 = await writePolicy(policyPath, 'orders', { stripPrefix: true, maxAttempts: 2 });
  written = Date.now();
  t.is(v1, v0 + 1);
  await eventually(async () => (await request(`${proxy.url}/orders/a`)).json().url === '/a', { timeoutMs: 1000, intervalMs: 10 });
  t.log(`a change applied ${Date.now() - written} ms after its write`);
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

function cli(args: string[], input?: string): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, PUTTU_LOG_LEVEL: 'silent' }, stdio: 'pipe' });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    void exitCode(child).then((code) => resolve({ code, out, err }));
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
  const flags = ['--zk', shared.zk.connectString, '--policy-path', policyPath];

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

// --- Sticky routing -------------------------------------------------------------------------------

const KEYS = 1000;
const byUser = (i: number) => ({ 'x-user': `user-${i}` });

function moved(before: string[], after: string[]): number {
  return before.filter((name, i) => after[i] !== name).length;
}

test('sticky: the same header value reaches the same instance; adding or removing one of N moves at most 1.5/N of 1,000 keys', async (t) => {
  const { proxy, lib, policyPath } = await setup();
  const ups = await upstreams('s0', 's1', 's2', 's3', 's4');
  const regs = [];
  for (const u of ups.slice(0, 4)) regs.push(await register(lib, 'profile', u));
  await waitInstances(proxy, 'profile', 4);
  const v = await writePolicy(policyPath, 'profile', { sticky: { header: 'x-user' } });
  await eventually(async () => (await admin(proxy, '/api/services/profile')).policy?.version === v);
  const url = `${proxy.url}/profile/`;
  const first = await countUpstreams(url, KEYS, { headersFor: byUser });
  const again = await countUpstreams(url, KEYS, { headersFor: byUser });
  t.is(first.failed + again.failed, 0);
  t.deepEqual(again.order, first.order, 'every key on the same instance');
  t.is(first.by.size, 4, 'the keys spread over every instance');

  await register(lib, 'profile', ups[4]!);
  await waitInstances(proxy, 'profile', 5);
  const added = await countUpstreams(url, KEYS, { headersFor: byUser });
  const onAdd = moved(first.order, added.order);
  t.true(
    first.order.every((name, i) => added.order[i] === name || added.order[i] === 's4'),
    'keys move only to the new instance',
  );
  t.true(onAdd > 0 && onAdd <= (1.5 / 5) * KEYS, `${onAdd} keys moved when a fifth instance came`);

  await regs[0]!.unregister();
  await waitInstances(proxy, 'profile', 4);
  const removed = await countUpstreams(url, KEYS, { headersFor: byUser });
  t.is(removed.failed, 0);
  const onRemove = moved(added.order, removed.order);
  t.true(
    added.order.every((name, i) => name === 's0' || removed.order[i] === name),
    'only the keys of the one gone move',
  );
  t.true(onRemove > 0 && onRemove <= (1.5 / 5) * KEYS, `${onRemove} keys moved when one of five left`);
  t.log(`moved: ${onAdd} on adding a fifth, ${onRemove} on removing one of five (1/N = ${KEYS / 5})`);

  const keyless = await countUpstreams(url, 400);
  t.is(keyless.failed, 0);
  t.is(keyless.by.size, 4, 'requests without the key use the balancer: every instance');
});

test('sticky: a cookie keeps a user on one instance; a draining or dead instance is replaced by the next in HRW order, never an error', async (t) => {
  const { proxy, lib, policyPath } = await setup({ ejectAfterFailures: 2 });
  const ups = await upstreams('c0', 'c1', 'c2', 'c3');
  const regs = [];
  for (const u of ups) regs.push(await register(lib, 'session', u));
  await waitInstances(proxy, 'session', 4);
  const v = await writePolicy(policyPath, 'session', { sticky: { cookie: 'sid' } });
  await eventually(async () => (await admin(proxy, '/api/services/session')).policy?.version === v);
  const url = `${proxy.url}/session/`;
  const bySid = (i: number) => ({ cookie: `theme=dark; sid=s-${i % 300}` });
  const base = await countUpstreams(url, 300, { headersFor: bySid });
  t.is(base.failed, 0);
  t.deepEqual((await countUpstreams(url, 300, { headersFor: bySid })).order, base.order);

  // Draining: the instance's keys go elsewhere, every other key stays.
  await regs[1]!.setStatus('DRAINING');
  await waitInstances(proxy, 'session', 3);
  const drained = await countUpstreams(url, 300, { headersFor: bySid });
  t.is(drained.failed, 0);
  t.false(drained.by.has('c1'));
  t.true(base.order.every((name, i) => name === 'c1' || drained.order[i] === name));

  // Dead (its process gone, its registration still there): refused attempts retry to the next in
  // HRW order, then it is ejected; no request fails and no other key moves.
  await ups[2]!.close();
  const dead = await countUpstreams(url, 300, { headersFor: bySid, concurrency: 4 });
  t.is(dead.failed, 0);
  t.false(dead.by.has('c2'));
  t.true(
    drained.order.every((name, i) => name === 'c2' || dead.order[i] === name),
    'only the dead instance’s keys moved',
  );
  // Where they went is where the key's order says: the same as with the instance deregistered.
  await regs[2]!.unregister();
  await waitInstances(proxy, 'session', 2);
  t.deepEqual((await countUpstreams(url, 300, { headersFor: bySid })).order, dead.order);
});

// --- Canary split ---------------------------------------------------------------------------------

test('canary split: 5 % over 20,000 requests within 1 point; with sticky, a key stays on its side', async (t) => {
  const { proxy, lib, policyPath } = await setup({}, 1234);
  const [canary, stableA, stableB] = await upstreams('canary', 'stable-a', 'stable-b');
  await register(lib, 'checkout', canary!, { metadata: { track: 'canary' } });
  await register(lib, 'checkout', stableA!, { metadata: { track: 'stable' } });
  await register(lib, 'checkout', stableB!);
  await waitInstances(proxy, 'checkout', 3);
  const split = [{ match: { metadata: { track: 'canary' } }, percent: 5 }];
  const v = await writePolicy(policyPath, 'checkout', { split });
  await eventually(async () => (await admin(proxy, '/api/services/checkout')).policy?.version === v);
  const url = `${proxy.url}/checkout/`;
  const counted = await countUpstreams(url, 20_000, { concurrency: 16 });
  t.is(counted.failed, 0);
  const canaryShare = share(counted, 'canary', 20_000);
  t.log(`canary got ${(canaryShare * 100).toFixed(2)} % of 20,000`);
  t.true(Math.abs(canaryShare - 0.05) <= 0.01);
  t.true((counted.by.get('stable-a') ?? 0) > 8000 && (counted.by.get('stable-b') ?? 0) > 8000, 'the rest share the others');

  const sticky = await writePolicy(policyPath, 'checkout', { split, sticky: { header: 'x-user' } });
  await eventually(async () => (await admin(proxy, '/api/services/checkout')).policy?.version === sticky);
  const first = await countUpstreams(url, KEYS, { headersFor: byUser });
  const second = await countUpstreams(url, KEYS, { headersFor: byUser });
  t.is(first.failed + second.failed, 0);
  t.deepEqual(second.order, first.order, 'every key on its side (and instance)');
  const onCanary = first.by.get('canary') ?? 0;
  t.true(onCanary >= 25 && onCanary <= 80, `${onCanary} of ${KEYS} keys on the canary side`);
});

// --- Zone preference ------------------------------------------------------------------------------

test('zone: instances of the proxy’s --zone get the traffic while enough of them are healthy, then every zone', async (t) => {
  const { proxy, lib, policyPath } = await setup({ zone: 'eu-1a', ejectAfterFailures: 1 });
  const [a1, a2, b1, b2] = await upstreams('a1', 'a2', 'b1', 'b2');
  await register(lib, 'search', a1!, { metadata: { zone: 'eu-1a' } });
  await register(lib, 'search', a2!, { metadata: { zone: 'eu-1a' } });
  await register(lib, 'search', b1!, { metadata: { zone: 'eu-1b' } });
  await register(lib, 'search', b2!, { metadata: { zone: 'eu-1b' } });
  await waitInstances(proxy, 'search', 4);
  const url = `${proxy.url}/search/`;
  const before = await countUpstreams(url, 400);
  t.is(before.by.size, 4, 'no policy: every zone');
  const v = await writePolicy(policyPath, 'search', { zone: { prefer: 'local', minHealthyPercent: 60 } });
  await eventually(async () => (await admin(proxy, '/api/services/search')).policy?.version === v);
  const local = await countUpstreams(url, 400);
  t.is(local.failed, 0);
  t.deepEqual([...local.by.keys()].sort(), ['a1', 'a2'], 'only the local zone');
  // One of two local instances dies: 50 % healthy, under 60: traffic goes to every zone.
  await a2!.close();
  const degraded = await countUpstreams(url, 400, { concurrency: 4 });
  t.is(degraded.failed, 0, 'the failed attempts were retried');
  t.true((degraded.by.get('b1') ?? 0) > 50 && (degraded.by.get('b2') ?? 0) > 50, JSON.stringify([...degraded.by]));
  const explained = await admin(proxy, '/debug/route?path=/search/');
  t.like(explained.zone, { zone: 'eu-1a', local: false, healthyPercent: 50 });
});

// --- Per-service timeouts, attempts, prefix -------------------------------------------------------

test('per-service upstreamTimeoutMs and maxAttempts override the flags for that service only', async (t) => {
  const { proxy, lib, policyPath } = await setup({ fastLane: 'on' });
  // One that never answers: only a deadline ends its requests, and the flag's is 30 s.
  const [hanging] = await upstreamsWith(() => undefined, 'hanging');
  const [slow] = await upstreamsWith((req, res, u) => setTimeout(() => echo(req, res, u), 700), 'slow');
  await register(lib, 'hangs', hanging!);
  await register(lib, 'slow', slow!);
  await waitInstances(proxy, 'hangs', 1);
  await waitInstances(proxy, 'slow', 1);
  const v = await writePolicy(policyPath, 'hangs', { upstreamTimeoutMs: 200 });
  await eventually(async () => (await admin(proxy, '/api/services/hangs')).policy?.version === v);
  let start = Date.now();
  const timedOut = await request(`${proxy.url}/hangs/`);
  t.is(timedOut.status, 504);
  t.is(timedOut.json().error.code, 'PUTTU_UPSTREAM_TIMEOUT');
  t.log(`504 after ${Date.now() - start} ms (limit 200 ms)`);
  t.true(Date.now() - start < 10_000, 'the policy’s limit, not the flag’s 30 s');
  // A streamed body goes by undici's own timer: the policy's limit reaches it too.
  start = Date.now();
  const streamed = await request(`${proxy.url}/hangs/`, { method: 'PUT', headers: { 'transfer-encoding': 'chunked' }, body: 'x' });
  t.is(streamed.status, 504);
  t.true(Date.now() - start < 10_000);
  // Another service keeps the flag: a 700 ms answer arrives.
  t.is((await request(`${proxy.url}/slow/`)).status, 200);

  // maxAttempts 1: a refused attempt is not retried for this service; the flags' 3 elsewhere.
  const [live] = await upstreams('live');
  const deadPort = (await upstreams('gone'))[0]!;
  await deadPort.close();
  for (const svc of ['once', 'thrice']) {
    await register(lib, svc, live!);
    await register(lib, svc, deadPort);
    await waitInstances(proxy, svc, 2);
  }
  const once = await writePolicy(policyPath, 'once', { maxAttempts: 1, balancer: 'round-robin' });
  await eventually(async () => (await admin(proxy, '/api/services/once')).policy?.version === once);
  const single = await countUpstreams(`${proxy.url}/once/`, 6, { concurrency: 1 });
  t.true(single.failed >= 1, 'some requests reached the dead instance and were not retried');
  const retried = await countUpstreams(`${proxy.url}/thrice/`, 6, { concurrency: 1 });
  t.is(retried.failed, 0);
});

// --- Explain --------------------------------------------------------------------------------------

test('explain: /debug/route tells the policy version, instances, rules and the instance a key reaches', async (t) => {
  const { proxy, lib, policyPath } = await setup();
  const [e0, e1, e2] = await upstreams('e0', 'e1', 'e2');
  await register(lib, 'inventory', e0!, { weight: 2, metadata: { track: 'canary' } });
  await register(lib, 'inventory', e1!, { weight: 1 });
  await register(lib, 'inventory', e2!, { weight: 1 });
  await waitInstances(proxy, 'inventory', 3);
  const plain = await admin(proxy, '/debug/route?path=/inventory/items/7?q=1');
  t.is(plain.status, 200);
  t.like(plain, { service: 'inventory', policy: { version: null, inForce: null, balancer: 'random' }, chosen: null });
  t.is(plain.instances.length, 3);
  t.true(plain.instances.every((i: { url: string; state: string }) => i.url.endsWith('/items/7?q=1') && i.state === 'healthy'));
  t.deepEqual(plain.instances.map((i: { weight: number }) => i.weight).sort(), [1, 1, 2]);
  t.deepEqual(plain.instances.map((i: { sharePercent: number }) => i.sharePercent).sort(), [25, 25, 50]);

  const v = await writePolicy(policyPath, 'inventory', {
    sticky: { header: 'x-user' },
    split: [{ match: { metadata: { track: 'canary' } }, percent: 10 }],
  });
  await eventually(async () => (await admin(proxy, '/api/services/inventory')).policy?.version === v);
  for (const user of ['alice', 'bob', 'carol', 'dave']) {
    const e = await admin(proxy, `/debug/route?path=/inventory/items/7&header=${encodeURIComponent(`X-User: ${user}`)}`);
    t.is(e.policy.version, v);
    t.deepEqual(e.rules, ['split', 'sticky']);
    t.like(e.sticky, { key: user });
    t.true(e.split.byKey);
    const actual = await request(`${proxy.url}/inventory/items/7`, { headers: { 'x-user': user } });
    const chosenId = e.chosen.id;
    const instance = proxy.app.registry!.get('inventory')!.instances.find((i) => i.id === chosenId)!;
    t.is(actual.headers['x-upstream'], [e0, e1, e2].find((u) => u!.port === instance.port)!.name, user);
    t.true(e.chosen.url.endsWith('/items/7'));
    t.is(e.stickyOrder[0], chosenId);
  }
  const bad = await request(`${proxy.adminUrl}/debug/route`);
  t.is(bad.status, 400);
  t.regex(bad.json().error.message, /path=/);
  t.is((await request(`${proxy.adminUrl}/debug/route?path=/nope/`)).status, 404);
});

for (const fastLane of ['on', 'off'] as const) {
  test(`explain: Server-Timing and X-Puttu-Attempts only where asked (fast lane ${fastLane})`, async (t) => {
    const { proxy, lib, policyPath } = await setup({ fastLane });
    const [u] = await upstreams('x1');
    const reg = await register(lib, 'quiet', u!);
    await register(lib, 'loud', u!);
    await waitInstances(proxy, 'quiet', 1);
    await waitInstances(proxy, 'loud', 1);
    const quiet = await request(`${proxy.url}/quiet/`);
    t.is(quiet.headers['server-timing'], undefined, 'off by default: no instance id leaks');
    t.is(quiet.headers['x-puttu-attempts'], undefined);
    const v = await writePolicy(policyPath, 'loud', { explain: true });
    await eventually(async () => (await admin(proxy, '/api/services/loud')).policy?.version === v);
    const loud = await request(`${proxy.url}/loud/`);
    t.is(loud.status, 200);
    const id = proxy.app.registry!.get('loud')!.instances[0]!.id;
    t.regex(String(loud.headers['server-timing']), new RegExp(`^puttu;desc="${id}";dur=\\d+(\\.\\d)?$`));
    t.is(loud.headers['x-puttu-attempts'], '1');
    t.is((await request(`${proxy.url}/quiet/`)).headers['server-timing'], undefined, 'other services stay quiet');
    t.truthy(reg);
  });
}

test('explain: --explain on adds the headers to every service; a retried request counts its attempts', async (t) => {
  const { proxy, lib } = await setup({ explain: 'on', balancer: 'round-robin' });
  const [live] = await upstreams('live');
  const gone = (await upstreams('gone'))[0]!;
  await gone.close();
  await register(lib, 'any', live!);
  await register(lib, 'any', gone);
  await waitInstances(proxy, 'any', 2);
  const attempts = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const reply = await request(`${proxy.url}/any/`);
    t.is(reply.status, 200);
    t.regex(String(reply.headers['server-timing']), /^puttu;desc="[^"]+";dur=/);
    attempts.add(String(reply.headers['x-puttu-attempts']));
  }
  t.true(attempts.has('2'), `attempts seen: ${[...attempts]}`);
});

test('--workers 2: the primary watches the policies and every worker applies them, a restarted one too', async (t) => {
  const basePath = `/t-${randomUUID().slice(0, 8)}`;
  const policyPath = `/pol-${randomUUID().slice(0, 8)}`;
  await writePolicy(policyPath, 'clustered', { stripPrefix: false });
  const args = ['proxy', '--zk', shared.zk.connectString, '--base-path', basePath, '--policy-path', policyPath, '--host', '127.0.0.1'];
  // Port 0: the primary binds one port for all workers, and their start-up lines name it.
  const child = spawn(process.execPath, [BIN, ...args, '--port', '0', '--admin-port', '0', '--workers', '2'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (c) => (log += c));
  child.stderr.on('data', (c) => (log += c));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const workerPids = () => [...log.matchAll(/"pid":(\d+)[^\n]*"msg":"puttu worker listening"/g)].map((m) => Number(m[1]));
  await eventually(() => workerPids().length === 2, { timeoutMs: 20_000, message: 'two workers' });
  const port = portOf(/"proxyUrl":"([^"]+)"[^\n]*"msg":"puttu worker listening"/.exec(log)?.[1]);
  const lib = connect(shared.zk.connectString, basePath);
  t.teardown(() => lib.close());
  const [u] = await upstreams('clustered');
  await register(lib, 'clustered', u!);
  const url = `http://127.0.0.1:${port}/clustered/a`;
  await eventually(async () => (await request(url)).status === 200, { message: 'routed by a worker' });
  // Many connections: the kernel spreads them over both workers.
  for (let i = 0; i < 20; i++) t.is((await request(url)).json().url, '/clustered/a', 'the policy read before start');
  await writePolicy(policyPath, 'clustered', { stripPrefix: true });
  await eventually(
    async () => {
      for (let i = 0; i < 10; i++) if ((await request(url)).json().url !== '/a') return false;
      return true;
    },
    { timeoutMs: 2000, intervalMs: 10, message: 'the change reached every worker' },
  );
  process.kill(workerPids()[0]!, 'SIGKILL');
  await eventually(() => workerPids().length === 3, { timeoutMs: 20_000, message: 'a replacement worker' });
  for (let i = 0; i < 20; i++) t.is((await request(url)).json().url, '/a', 'the replacement got the policy too');
  child.kill('SIGTERM');
  t.is(await exited, 0);
});

test('the status page shows the policy version in force and a refused document with its reason', async (t) => {
  const { proxy, lib, policyPath } = await setup();
  const [u] = await upstreams('paged');
  await register(lib, 'paged', u!);
  await waitInstances(proxy, 'paged', 1);
  const good = await writePolicy(policyPath, 'paged', { maxAttempts: 2 });
  // A watch delivers the state it reads, not every version: a second write before the first was
  // read would leave the first never in force.
  await eventually(async () => (await admin(proxy, '/api/services/paged')).policy?.version === good);
  const refused = await writePolicy(policyPath, 'paged', { maxAttempts: 'two' });
  await eventually(async () => (await admin(proxy, '/api/services/paged')).policy?.refused?.version === refused);
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  t.teardown(() => browser.close());
  const page = await browser.newPage();
  await page.goto(proxy.adminUrl + '/');
  await page.waitForSelector('section[data-service="paged"] .policy', { timeout: 10_000 });
  const text = await page.textContent('section[data-service="paged"] .policy');
  t.is(text, `policy v${good} v${refused} refused: maxAttempts must be an integer from 1 to 10, got "two"`);
});

test('WebSocket upgrades follow the policy: a sticky key reaches its instance, stripPrefix false keeps the prefix', async (t) => {
  const { proxy, lib, policyPath } = await setup();
  const servers: Array<{ name: string; port: number; paths: string[] }> = [];
  for (const name of ['w0', 'w1', 'w2']) {
    const server = http.createServer((_req, res) => res.end('plain'));
    const wss = new WebSocketServer({ server });
    const entry = { name, port: 0, paths: [] as string[] };
    wss.on('connection', (socket, req) => {
      entry.paths.push(req.url ?? '');
      socket.send(name);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    entry.port = (server.address() as AddressInfo).port;
    cleanups.push(async () => {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      server.close();
    });
    servers.push(entry);
    await lib.register('live', { host: '127.0.0.1', port: entry.port });
  }
  await waitInstances(proxy, 'live', 3);
  const v = await writePolicy(policyPath, 'live', { sticky: { header: 'x-user' }, stripPrefix: false });
  await eventually(async () => (await admin(proxy, '/api/services/live')).policy?.version === v);
  const reached = (user: string) =>
    new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(`${proxy.url.replace('http://', 'ws://')}/live/feed`, { headers: { 'x-user': user } });
      ws.once('message', (data) => {
        resolve(String(data));
        ws.close();
      });
      ws.once('error', reject);
    });
  for (const user of ['alice', 'bob', 'carol', 'dave', 'erin']) {
    const explained = await admin(proxy, `/debug/route?path=/live/feed&header=x-user:${user}`);
    const expected = servers.find((s) => explained.chosen.url.includes(`:${s.port}/`))!.name;
    t.is(await reached(user), expected, user);
    t.is(await reached(user), expected, `${user} again`);
  }
  t.true(
    servers.every((s) => s.paths.every((p) => p === '/live/feed')),
    'the prefix kept',
  );
});

test('policy: after a session expiry the watches are re-armed; a change made meanwhile and one made after both apply', async (t) => {
  const { proxy, lib, policyPath } = await setup();
  const [u] = await upstreams('only');
  await register(lib, 'expiring', u!);
  await waitInstances(proxy, 'expiring', 1);
  const v0 = await writePolicy(policyPath, 'expiring', { stripPrefix: false });
  await eventually(async () => (await admin(proxy, '/api/services/expiring')).policy?.version === v0);
  const generation = proxy.app.zk!.generation;
  await expireSession(shared.zk.connectString, proxy.app.zk!);
  const v1 = await writePolicy(policyPath, 'expiring', { stripPrefix: true });
  await eventually(() => proxy.app.zk!.generation > generation && proxy.app.zk!.state === 'connected', { message: 'a new session' });
  await eventually(async () => (await admin(proxy, '/api/services/expiring')).policy?.version === v1, {
    message: 'the change made meanwhile',
  });
  t.is((await request(`${proxy.url}/expiring/a`)).json().url, '/a');
  const v2 = await writePolicy(policyPath, 'expiring', { stripPrefix: false });
  await eventually(async () => (await request(`${proxy.url}/expiring/a`)).json().url === '/expiring/a', {
    timeoutMs: 1000,
    intervalMs: 10,
    message: 'a change after the new session, within 1 s',
  });
  t.is((await admin(proxy, '/api/services/expiring')).policy.version, v2);
});
