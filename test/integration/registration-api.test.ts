/**
 * The REST registration API (curator-x-discovery-server compatible) on a real proxy, a real
 * ZooKeeper and real HTTP clients (fetch, i.e. undici), checked against Apache Curator's own Java
 * x-discovery library reading and writing the same base path. Addresses the policy must refuse
 * are only ever registered, never requested: nothing dials them.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { createApp } from '../../proxy/app.js';
import { DEFAULTS, type Config } from '../../proxy/config/schema.js';
import { createLogger, silentLogger } from '../../proxy/logger.js';
import { systemClock } from '../../proxy/clock.js';
import { RestRegistrations } from '../../proxy/registration-api/store.js';
import { startCuratorProbe } from '../helpers/curator-probe.js';
import { eventually } from '../helpers/eventually.js';
import { puttu } from '../helpers/processes.js';
import { startRelay } from '../helpers/relay.js';
import { startUpstream } from '../helpers/upstreams.js';
import { expireSession, rawClient, startZooKeeper, type TestZooKeeper } from '../helpers/zookeeper.js';

const TOKEN = 'test-token-0123456789abcdef';

let zk: TestZooKeeper;
test.before(async () => {
  zk = await startZooKeeper();
});
test.after.always(async () => {
  await zk?.stop();
});

interface Started {
  url: string;
  proxyUrl: string;
  basePath: string;
  app: ReturnType<typeof createApp>;
}

async function start(t: { teardown(fn: () => Promise<void>): void }, overrides: Partial<Config> = {}): Promise<Started> {
  const config: Config = {
    ...DEFAULTS,
    zk: zk.connectString,
    basePath: `/t-${randomUUID().slice(0, 8)}`,
    host: '127.0.0.1',
    port: 0,
    adminPort: -1,
    logLevel: 'silent',
    sessionTimeoutMs: 4_000,
    shutdownGraceMs: 1_000,
    // Any free port, as the listener reports it: a port picked beforehand could be taken meanwhile.
    registrationPort: 0,
    registrationToken: TOKEN,
    ...overrides,
  };
  const app = createApp({ config, logger: silentLogger });
  t.teardown(() => app.close());
  const started = await app.start();
  await app.registry!.whenSynced();
  return { url: started.registrationUrl!, proxyUrl: started.proxyUrl, basePath: config.basePath, app };
}

/** A response's JSON body, untyped as a test reads it. */
async function jsonOf(res: Response | Promise<Response>): Promise<any> {
  return (await res).json();
}

const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

function instance(name: string, id: string, port: number, extra: Record<string, unknown> = {}) {
  return {
    name,
    id,
    address: '127.0.0.1',
    port,
    sslPort: null,
    payload: null,
    registrationTimeUTC: 1_700_000_000_000,
    serviceType: 'STATIC',
    ...extra,
  };
}

function put(base: string, body: unknown, headers: Record<string, string> = auth) {
  const b = body as { name: string; id: string };
  return fetch(`${base}/v1/service/${b.name}/${b.id}`, { method: 'PUT', headers, body: JSON.stringify(body) });
}

test('the registration listener is off by default', async (t) => {
  t.is(DEFAULTS.registrationPort, -1);
  t.is(DEFAULTS.registrationHost, '127.0.0.1');
  const lines: Array<{ msg: string }> = [];
  const app = createApp({
    config: { ...DEFAULTS, zk: zk.connectString, host: '127.0.0.1', port: 0, adminPort: -1 },
    logger: createLogger({ level: 'info', write: (line) => void lines.push(JSON.parse(line)) }),
  });
  t.teardown(() => app.close());
  await app.start();
  t.true(
    lines.some((l) => l.msg === 'puttu proxy listening'),
    'the app started and logged',
  );
  t.false(
    lines.some((l) => /REST registration/.test(l.msg)),
    'no registration listener',
  );
});

test('PUT, GET and DELETE round trip in Curator shapes; the znode is ephemeral Curator JSON', async (t) => {
  const api = await start(t);
  const body = instance('orders', 'i-1', 8081, { payload: { zone: 'b' }, uriSpec: '{scheme}://{address}:{port}/api' });
  const created = await put(api.url, body);
  t.is(created.status, 201);
  t.is(created.headers.get('x-puttu-ttl-ms'), String(DEFAULTS.registrationTtlMs));
  t.is(await created.text(), '');

  const one = await fetch(`${api.url}/v1/service/orders/i-1`);
  t.is(one.status, 200);
  t.is(one.headers.get('content-type'), 'application/json');
  const expected = {
    name: 'orders',
    id: 'i-1',
    address: '127.0.0.1',
    port: 8081,
    registrationTimeUTC: 1_700_000_000_000,
    serviceType: 'STATIC',
    payload: { zone: 'b' },
    uriSpec: {
      parts: [
        { value: 'scheme', variable: true },
        { value: '://', variable: false },
        { value: 'address', variable: true },
        { value: ':', variable: false },
        { value: 'port', variable: true },
        { value: '/api', variable: false },
      ],
    },
    enabled: true,
  };
  t.deepEqual(await jsonOf(one), expected);
  t.deepEqual(await jsonOf(fetch(`${api.url}/v1/service/orders`)), [expected]);
  t.deepEqual(await jsonOf(fetch(`${api.url}/v1/anyservice/orders`)), expected);
  t.deepEqual(await jsonOf(fetch(`${api.url}/v1/service`)), [{ name: 'orders' }]);
  t.deepEqual(await jsonOf(fetch(`${api.url}/v1/services`)), [{ name: 'orders' }]);

  const raw = await rawClient(zk.connectString);
  t.teardown(() => raw.close());
  const znode = JSON.parse((await raw.getData(`${api.basePath}/orders/i-1`)).toString());
  t.deepEqual(Object.keys(znode), ['name', 'id', 'address', 'port', 'sslPort', 'payload', 'registrationTimeUTC', 'serviceType', 'uriSpec']);
  t.is(znode.sslPort, null);
  // Ephemeral: ZooKeeper refuses children under it.
  const child = await t.throwsAsync(raw.create(`${api.basePath}/orders/i-1/child`, Buffer.alloc(0), 'persistent'));
  t.regex(String((child as { code?: string }).code), /NO_CHILDREN_FOR_EPHEMERALS/);

  const deleted = await fetch(`${api.url}/v1/service/orders/i-1`, { method: 'DELETE', headers: auth });
  t.is(deleted.status, 200);
  t.is((await fetch(`${api.url}/v1/service/orders/i-1`)).status, 404);
  const none = await fetch(`${api.url}/v1/anyservice/orders`);
  t.is(none.status, 404);
  t.is((await jsonOf(none)).error.code, 'PUTTU_NOT_FOUND');
  t.deepEqual(await jsonOf(fetch(`${api.url}/v1/service/orders`)), []);
  t.false(await raw.exists(`${api.basePath}/orders/i-1`));
  // Curator answers a DELETE of nothing with 200 too.
  t.is((await fetch(`${api.url}/v1/service/orders/i-1`, { method: 'DELETE', headers: auth })).status, 200);
});

test('the proxy routes to an instance registered over REST, and stops when it is deleted', async (t) => {
  const api = await start(t);
  const backend = await startUpstream('rest-backend');
  t.teardown(() => backend.close());
  t.is((await put(api.url, instance('billing', 'b-1', backend.port))).status, 201);
  await eventually(async () => (await fetch(`${api.proxyUrl}/billing/hello`)).status === 200, { message: 'routed to the REST instance' });
  const answer = await jsonOf(fetch(`${api.proxyUrl}/billing/hello`));
  t.is(answer.name, 'rest-backend');
  t.is(answer.url, '/hello');
  t.is(api.app.registry!.get('billing')!.instances[0]!.format, 'curator');

  t.is((await fetch(`${api.url}/v1/service/billing/b-1`, { method: 'DELETE', headers: auth })).status, 200);
  await eventually(() => api.app.registry!.get('billing')?.instances.length === 0, { message: 'instance gone from routing' });
  const seen = backend.seen.length;
  t.is((await fetch(`${api.proxyUrl}/billing/hello`)).status, 503);
  t.is(backend.seen.length, seen);
});

test('a registration lives while re-PUTs renew it and lapses after the TTL without them', async (t) => {
  const ttlMs = 1_500;
  const api = await start(t, { registrationTtlMs: ttlMs });
  const body = instance('lease', 'l-1', 8082);
  const raw = await rawClient(zk.connectString);
  t.teardown(() => raw.close());
  const path = `${api.basePath}/lease/l-1`;
  t.is((await put(api.url, body)).status, 201);
  // Renewed every 300 ms for twice the TTL: it must stay throughout.
  const renewUntil = Date.now() + 2 * ttlMs;
  while (Date.now() < renewUntil) {
    await new Promise((r) => setTimeout(r, 300));
    t.true(await raw.exists(path), 'still registered while renewed');
    t.is((await put(api.url, body)).status, 201);
  }
  // A heartbeat that only sends a new registrationTimeUTC writes nothing: the node keeps the first
  // time and the registry keeps the same instance object (its health state with it).
  const routed = await eventually(() => api.app.registry!.get('lease')?.instances[0], { message: 'instance read by the registry' });
  t.is((await put(api.url, { ...body, registrationTimeUTC: Date.now() })).status, 201);
  t.is(JSON.parse((await raw.getData(path)).toString()).registrationTimeUTC, body.registrationTimeUTC);
  t.is(api.app.registry!.get('lease')?.instances[0], routed);
  // Deleted behind the API's back: the next renewal creates it again.
  await raw.remove(path);
  t.is((await put(api.url, body)).status, 201);
  t.true(await raw.exists(path), 'written again by the renewal');
  // A renewal with changed data rewrites the node in place. Timed from before it was sent: the
  // lease starts when the server receives it, so the node must outlive this by the whole TTL.
  const lastSent = Date.now();
  t.is((await put(api.url, { ...body, payload: 'v2' })).status, 201);
  t.is(JSON.parse((await raw.getData(path)).toString()).payload, 'v2');
  await eventually(async () => !(await raw.exists(path)), { timeoutMs: ttlMs + 5_000, intervalMs: 50, message: 'lapsed node deleted' });
  t.true(Date.now() - lastSent >= ttlMs, `not removed before the TTL (after ${Date.now() - lastSent} ms)`);
  t.is((await fetch(`${api.url}/v1/service/lease/l-1`)).status, 404);
  await eventually(() => (api.app.registry!.get('lease')?.instances.length ?? 0) === 0, { message: 'gone from routing' });
});

test('writes need the bearer token; reads do not', async (t) => {
  const api = await start(t);
  const body = instance('secure', 's-1', 8083);
  const missing = await put(api.url, body, { 'content-type': 'application/json' });
  t.is(missing.status, 401);
  t.is(missing.headers.get('www-authenticate'), 'Bearer realm="puttu-registration"');
  t.is((await jsonOf(missing)).error.code, 'PUTTU_UNAUTHORIZED');
  const wrong = await put(api.url, body, { authorization: `Bearer ${TOKEN}x`, 'content-type': 'application/json' });
  t.is(wrong.status, 401);
  t.regex(wrong.headers.get('www-authenticate')!, /error="invalid_token"/);
  const basic = await put(api.url, body, { authorization: `Basic ${Buffer.from(`a:${TOKEN}`).toString('base64')}` });
  t.is(basic.status, 401);
  t.is((await fetch(`${api.url}/v1/service/secure/s-1`)).status, 404, 'nothing was written');

  t.is((await put(api.url, body)).status, 201);
  const del = await fetch(`${api.url}/v1/service/secure/s-1`, { method: 'DELETE' });
  t.is(del.status, 401);
  t.is((await fetch(`${api.url}/v1/service/secure/s-1`)).status, 200, 'still there after the refused DELETE');
});

test('bad bodies get 400 naming what is wrong, and nothing is written', async (t) => {
  const api = await start(t);
  const good = instance('bad', 'x-1', 8084);
  const cases: Array<[string, string | Record<string, unknown>, RegExp]> = [
    ['invalid JSON', '{"name":', /body is not valid JSON/],
    ['not an object', '[1,2]', /body must be a JSON object.*an array/],
    ['name differs from the path', { ...good, name: 'other' }, /^name must be the path's service "bad", got "other"$/],
    ['id differs from the path', { ...good, id: 'x-2' }, /^id must be the path's instance id "x-1", got "x-2"$/],
    ['no address', { ...good, address: undefined }, /^address must be an IP address or a DNS name, got nothing$/],
    ['bad address', { ...good, address: 'not a host' }, /^address must be an IP address or a DNS name/],
    ['port out of range', { ...good, port: 70_000 }, /^port must be an integer from 1 to 65535 or null, got 70000$/],
    ['no port at all', { ...good, port: null }, /^port or sslPort must be set/],
    ['sslPort a string', { ...good, sslPort: '443' }, /^sslPort must be an integer/],
    ['array payload', { ...good, payload: [1] }, /^payload must be .*Curator cannot read an array$/],
    ['PERMANENT type', { ...good, serviceType: 'PERMANENT' }, /^serviceType must be STATIC or DYNAMIC.*got "PERMANENT"$/],
    ['bad time', { ...good, registrationTimeUTC: 'yesterday' }, /^registrationTimeUTC must be milliseconds/],
    ['bad uriSpec', { ...good, uriSpec: { parts: [{ value: 1 }] } }, /^uriSpec.parts\[0\] must be/],
    [
      'uriSpec puttu cannot route',
      { ...good, uriSpec: '{scheme}://{address}:{port}/v/{version}' },
      /variable puttu cannot fill: \{version\}/,
    ],
    ['enabled not boolean', { ...good, enabled: 'yes' }, /^enabled must be true or false, got "yes"$/],
  ];
  for (const [what, body, reason] of cases) {
    const res = await fetch(`${api.url}/v1/service/bad/x-1`, {
      method: 'PUT',
      headers: auth,
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    t.is(res.status, 400, what);
    const error = (await jsonOf(res)).error;
    t.is(error.code, 'PUTTU_INVALID_REGISTRATION', what);
    t.regex(error.message, reason, what);
  }
  const text = await fetch(`${api.url}/v1/service/bad/x-1`, {
    method: 'PUT',
    headers: { ...auth, 'content-type': 'text/plain' },
    body: '{}',
  });
  t.is(text.status, 415);
  const big = await fetch(`${api.url}/v1/service/bad/x-1`, {
    method: 'PUT',
    headers: auth,
    body: JSON.stringify({ ...good, payload: { blob: 'x'.repeat(20_000) } }),
  });
  t.is(big.status, 413);
  t.is((await fetch(`${api.url}/v1/service/bad%2Fx/x-1`)).status, 400);
  t.deepEqual(await jsonOf(fetch(`${api.url}/v1/service`)), [], 'no service node was created');
});

test('an address the upstream policy refuses is refused with its reason (403), and never written', async (t) => {
  const api = await start(t, { allowPorts: '1024-65535' });
  const ownPort = Number(new URL(api.proxyUrl).port);
  const registrationPort = Number(new URL(api.url).port);
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [instance('p', 'meta', 80, { address: '169.254.169.254' }), /169\.254\.169\.254:80.*port 80 is not allowed/],
    [instance('p', 'meta2', 8080, { address: '169.254.169.254' }), /address 169\.254\.169\.254 is in a denied network/],
    [instance('p', 'linklocal', 8080, { address: 'fe80::1' }), /address fe80::1 is in a denied network/],
    [instance('p', 'loop', ownPort), /proxy's own listener/],
    [instance('p', 'loop2', registrationPort), /proxy's own listener/],
    [instance('p', 'named', ownPort, { address: 'localhost' }), /localhost:\d+ is the proxy's own listener/],
    [instance('p', 'tls', 8080, { sslPort: 443 }), /127\.0\.0\.1:443: port 443 is not allowed/],
  ];
  for (const [body, reason] of cases) {
    const res = await put(api.url, body);
    t.is(res.status, 403, String(body.id));
    const error = (await jsonOf(res)).error;
    t.is(error.code, 'PUTTU_REGISTRATION_REFUSED');
    t.regex(error.message, reason, String(body.id));
  }
  t.deepEqual(await jsonOf(fetch(`${api.url}/v1/service`)), []);
});

test('unknown paths get 404, wrong methods 405 with Allow', async (t) => {
  const api = await start(t);
  for (const path of ['/', '/v2/service', '/v1/other/x', '/v1/service/a/b/c', '/v1/anyservice/a/b']) {
    const res = await fetch(api.url + path);
    t.is(res.status, 404, path);
    t.is((await jsonOf(res)).error.code, 'PUTTU_NOT_FOUND');
  }
  const post = await fetch(`${api.url}/v1/service/a/b`, { method: 'POST', headers: auth, body: '{}' });
  t.is(post.status, 405);
  t.is(post.headers.get('allow'), 'GET, HEAD, PUT, DELETE');
  const putList = await fetch(`${api.url}/v1/service/a`, { method: 'PUT', headers: auth, body: '{}' });
  t.is(putList.status, 405);
  t.is(putList.headers.get('allow'), 'GET, HEAD');
});

test('after a session expiry the leased registrations are written again on the new session', async (t) => {
  const api = await start(t);
  const raw = await rawClient(zk.connectString);
  t.teardown(() => raw.close());
  t.is((await put(api.url, instance('survivor', 'v-1', 8085))).status, 201);
  const path = `${api.basePath}/survivor/v-1`;
  const before = api.app.zk!.generation;
  await expireSession(zk.connectString, api.app.zk!);
  await eventually(() => api.app.zk!.generation > before && api.app.zk!.state === 'connected', {
    timeoutMs: 15_000,
    message: 'new session',
  });
  await eventually(() => raw.exists(path), { timeoutMs: 10_000, message: 'node written again' });
  t.is(JSON.parse((await raw.getData(path)).toString()).id, 'v-1');
});

test("Java's curator-x-discovery reads what the REST API wrote, and the API lists what Java registered", async (t) => {
  const api = await start(t);
  const java = await startCuratorProbe(zk.connectString, api.basePath);
  t.teardown(() => java.stop());
  t.is(
    (await put(api.url, instance('mixed', 'rest-map', 8086, { payload: { zone: 'a' }, uriSpec: '{scheme}://{address}:{port}/api' })))
      .status,
    201,
  );
  t.is((await put(api.url, instance('mixed', 'rest-str', 8087, { payload: 'plain', serviceType: 'DYNAMIC', enabled: false }))).status, 201);
  t.is((await put(api.url, instance('other', 'rest-tls', 8088, { port: null, sslPort: 8443, payload: 7 }))).status, 201);

  t.deepEqual((await java.send('names')).names.sort(), ['mixed', 'other']);
  const seen = (await java.send('instances mixed')).instances.sort((a: any, b: any) => a.id.localeCompare(b.id));
  t.deepEqual(
    seen.map((i: any) => [
      i.id,
      i.address,
      i.port,
      i.sslPort,
      i.serviceType,
      i.registrationTimeUTC,
      i.enabled,
      i.payload,
      i.payloadClass,
      i.uri,
    ]),
    [
      [
        'rest-map',
        '127.0.0.1',
        8086,
        null,
        'STATIC',
        1_700_000_000_000,
        true,
        { zone: 'a' },
        'java.util.LinkedHashMap',
        'http://127.0.0.1:8086/api',
      ],
      ['rest-str', '127.0.0.1', 8087, null, 'DYNAMIC', 1_700_000_000_000, false, 'plain', 'java.lang.String', null],
    ],
  );
  const tls = (await java.send('instances other')).instances;
  t.deepEqual(
    tls.map((i: any) => [i.id, i.port, i.sslPort, i.payload]),
    [['rest-tls', null, 8443, 7]],
  );

  // The other way: an instance Java registers (DYNAMIC, its own session) is listed by the API.
  await java.send('register mixed java-1 127.0.0.1 8089');
  const listed = (await jsonOf(fetch(`${api.url}/v1/service/mixed`))) as any[];
  t.deepEqual(
    listed.map((i) => i.id),
    ['java-1', 'rest-map', 'rest-str'],
  );
  const fromJava = listed.find((i) => i.id === 'java-1');
  t.like(fromJava, { name: 'mixed', address: '127.0.0.1', port: 8089, serviceType: 'DYNAMIC', payload: { from: 'java' }, enabled: true });
  t.false('sslPort' in fromJava, 'unset ports are left out, as curator-x-discovery-server does');

  // A REST DELETE is what Java sees next.
  t.is((await fetch(`${api.url}/v1/service/mixed/rest-map`, { method: 'DELETE', headers: auth })).status, 200);
  const after = (await java.send('instances mixed')).instances.map((i: any) => i.id).sort();
  t.deepEqual(after, ['java-1', 'rest-str']);
  await java.send('unregister mixed java-1');
  t.deepEqual(
    ((await jsonOf(fetch(`${api.url}/v1/service/mixed`))) as any[]).map((i) => i.id),
    ['rest-str'],
  );
});

test('the puttu command: --registration-port with a token file, driven with curl', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'puttu-reg-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const tokenFile = path.join(dir, 'token');
  fs.writeFileSync(tokenFile, `${TOKEN}\n`);
  const basePath = `/t-${randomUUID().slice(0, 8)}`;
  const common = ['proxy', '--zk', zk.connectString, '--base-path', basePath, '--host', '127.0.0.1', '--port', '0', '--admin-port', '-1'];

  const refused = puttu([...common, '--registration-port', '0']);
  t.is(await refused.exited, 2, 'a registration port without a token does not start');
  t.regex(refused.output(), /registrationToken .*or registrationTokenFile is required with registrationPort/);

  const proxy = puttu([...common, '--registration-port', '0', '--registration-token-file', tokenFile], {
    PUTTU_REGISTRATION_TTL_MS: '60000',
  });
  t.teardown(async () => {
    proxy.kill();
    await proxy.exited;
  });
  const line = await proxy.waitFor(/^REST registration API listening/);
  t.is(line.ttlMs, 60_000);
  const curl = (...args: string[]) => promisify(execFile)('curl', ['-sS', '-w', '\n%{http_code}', ...args], { timeout: 10_000 });
  const body = JSON.stringify(instance('curled', 'c-1', 8090));
  const created = await curl(
    '-X',
    'PUT',
    '-H',
    `Authorization: Bearer ${TOKEN}`,
    '-H',
    'Content-Type: application/json',
    '-d',
    body,
    `${line.url}/v1/service/curled/c-1`,
  );
  t.is(created.stdout.trim(), '201');
  const unauthorized = await curl('-X', 'DELETE', `${line.url}/v1/service/curled/c-1`);
  t.regex(unauthorized.stdout, /PUTTU_UNAUTHORIZED[\s\S]*\n401$/);
  const listed = await curl(`${line.url}/v1/service/curled`);
  const [json, status] = listed.stdout.split('\n');
  t.is(status, '200');
  t.like(JSON.parse(json!)[0], { name: 'curled', id: 'c-1', port: 8090 });
});

test('a node of another format at the path is left alone: 409, and its data is unchanged', async (t) => {
  const api = await start(t);
  const raw = await rawClient(zk.connectString);
  t.teardown(() => raw.close());
  const theirs = Buffer.from(JSON.stringify({ protocol: 'http', host: '127.0.0.1', port: 9001, api: '' }));
  await raw.mkdirp(`${api.basePath}/shared`);
  await raw.create(`${api.basePath}/shared/n-1`, theirs, 'ephemeral');
  const res = await put(api.url, instance('shared', 'n-1', 9002));
  t.is(res.status, 409);
  t.regex((await jsonOf(res)).error.message, /not a Curator instance; it is left alone/);
  t.deepEqual(await raw.getData(`${api.basePath}/shared/n-1`), theirs);
  t.is((await fetch(`${api.url}/v1/service/shared/n-1`, { method: 'DELETE', headers: auth })).status, 200);
  t.deepEqual(await raw.getData(`${api.basePath}/shared/n-1`), theirs, 'DELETE leaves it too');
  // A Curator instance at the path (left by someone else) is replaced, as Curator does.
  const stale = Buffer.from(JSON.stringify(instance('shared', 'c-1', 9003)));
  await raw.create(`${api.basePath}/shared/c-1`, stale, 'ephemeral');
  t.is((await put(api.url, instance('shared', 'c-1', 9004))).status, 201);
  t.is(JSON.parse((await raw.getData(`${api.basePath}/shared/c-1`)).toString()).port, 9004);
});

test('ZooKeeper out of reach: a renewal still succeeds, a new registration gets 503, and the node is there once it is back', async (t) => {
  const relay = await startRelay(zk.server.options.clientPort);
  t.teardown(() => relay.close());
  const api = await start(t, { zk: relay.address, sessionTimeoutMs: 10_000 });
  const raw = await rawClient(zk.connectString);
  t.teardown(() => raw.close());
  const body = instance('cut', 'k-1', 8091);
  t.is((await put(api.url, body)).status, 201);

  relay.mode = 'refuse';
  relay.reset();
  await eventually(() => api.app.zk!.state !== 'connected', { message: 'the proxy noticed the cut' });
  t.is((await put(api.url, body)).status, 201, 'a renewal needs no write');
  const fresh = await put(api.url, instance('cut', 'k-2', 8092));
  t.is(fresh.status, 503);
  t.regex((await jsonOf(fresh)).error.code, /^PUTTU_ZK_/);

  relay.mode = 'pass';
  await eventually(() => api.app.zk!.state === 'connected', { timeoutMs: 15_000, message: 'reconnected' });
  // Same session or a new one, the leased registration is in the tree; the refused one is not.
  await eventually(() => raw.exists(`${api.basePath}/cut/k-1`), { timeoutMs: 10_000, message: 'k-1 in the tree' });
  t.false(await raw.exists(`${api.basePath}/cut/k-2`));
});

test('the store holds at most maxRegistrations: one more gets PUTTU_REGISTRATION_LIMIT until one goes', async (t) => {
  const zkc = await rawClient(zk.connectString);
  t.teardown(() => zkc.close());
  const basePath = `/t-${randomUUID().slice(0, 8)}`;
  const store = new RestRegistrations({ zk: zkc, basePath, ttlMs: 60_000, clock: systemClock, logger: silentLogger, maxRegistrations: 2 });
  t.teardown(() => store.close());
  const record = (id: string) => ({ ...instance('capped', id, 8093), port: 8093, sslPort: null, uriSpec: null });
  t.is(await store.put(record('a')), 'created');
  t.is(await store.put(record('b')), 'created');
  t.is(await store.put(record('a')), 'renewed', 'renewals are not new registrations');
  const over = await t.throwsAsync(store.put(record('c')));
  t.is((over as { code?: string }).code, 'PUTTU_REGISTRATION_LIMIT');
  t.false(await zkc.exists(`${basePath}/capped/c`));
  t.true(await store.delete('capped', 'a'));
  t.is(await store.put(record('c')), 'created');
  t.deepEqual(
    (await store.instances('capped')).map((i) => i.id),
    ['b', 'c'],
  );
});
