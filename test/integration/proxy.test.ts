/**
 * The proxy end to end: a real ZooKeeper, real backends registered through the library, real
 * HTTP clients. Each test uses its own base path so tests in this file run concurrently.
 */
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { connect, createLogger, type Puttu } from '../../proxy/index.js';
import { freePort } from '../../proxy/dev/local-zookeeper.js';
import { eventually } from '../helpers/eventually.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { echo, request, startUpstream, type Upstream } from '../helpers/upstreams.js';
import { rawClient } from '../helpers/zookeeper.js';
import { shareZooKeeper } from '../helpers/shared-zookeeper.js';

const shared = shareZooKeeper();
const { cleanups } = shared;

async function setup(overrides: Parameters<typeof startProxy>[1] = {}, random?: () => number) {
  const proxy = await startProxy(shared.zk.connectString, overrides, random ? { random } : {});
  cleanups.push(() => proxy.close());
  const lib = connect(shared.zk.connectString, proxy.basePath);
  cleanups.push(() => lib.close());
  return { proxy, lib };
}

async function upstream(name: string, handler = echo): Promise<Upstream> {
  const u = await startUpstream(name, handler);
  cleanups.push(() => u.close());
  return u;
}

async function registerAll(lib: Puttu, proxy: TestProxy, service: string, ups: Upstream[], api = '') {
  const regs = [];
  for (const u of ups) regs.push(await lib.register(service, { host: '127.0.0.1', port: u.port, api }));
  await eventually(() => proxy.app.registry!.get(service)?.instances.length === ups.length, {
    message: `${service} has ${ups.length} instances`,
  });
  return regs;
}

test('routes /<service>/<rest>?<query> to <api>/<rest>?<query> on the endpoint', async (t) => {
  const { proxy, lib } = await setup();
  const u = await upstream('a');
  await registerAll(lib, proxy, 'warehouse', [u], '/warehouse/v1');
  const cases: Array<[string, string]> = [
    ['/warehouse/items/42?x=1&y=%20z', '/warehouse/v1/items/42?x=1&y=%20z'],
    ['/warehouse', '/warehouse/v1'],
    ['/warehouse/', '/warehouse/v1/'],
    ['/warehouse?only=query', '/warehouse/v1?only=query'],
    ['/warehouse//double//slash', '/warehouse/v1/double/slash'],
    ['/warehouse/a/./b/../c', '/warehouse/v1/a/c'],
  ];
  for (const [path, expected] of cases) {
    const reply = await request(proxy.url + path);
    t.is(reply.status, 200, path);
    t.is(reply.json().url, expected, path);
  }
});

test('the app tells onBodyBytes of every body it moves in buffers it does not reuse: response chunks and request bodies, on both lanes', async (t) => {
  const large = randomBytes(256 * 1024);
  const u = await upstream('bytes', (req, res) => {
    req.resume();
    req.on('end', () => res.end(req.method === 'GET' ? large : 'ok'));
  });
  for (const fastLane of ['on', 'off'] as const) {
    let told = 0;
    const proxy = await startProxy(shared.zk.connectString, { fastLane }, { onBodyBytes: (n) => (told += n) });
    cleanups.push(() => proxy.close());
    const lib = connect(shared.zk.connectString, proxy.basePath);
    cleanups.push(() => lib.close());
    await registerAll(lib, proxy, 'bytes', [u]);
    const got = await request(`${proxy.url}/bytes/large`);
    t.true(got.body.equals(large), fastLane);
    // The chunks sent from reused read buffers are the ones not told (forward/read-buffers.ts).
    const metrics = (await request(`${proxy.adminUrl}/metrics`)).body.toString();
    const lent = Number(/^puttu_upstream_read_buffer_body_bytes_total (\d+)$/m.exec(metrics)?.[1]);
    t.true(lent > 0, `fast lane ${fastLane}: some of the response went out of reused buffers`);
    t.is(told + lent, large.length, `fast lane ${fastLane}: the response's chunks`);
    told = 0;
    const posted = await request(`${proxy.url}/bytes/upload`, { method: 'POST', body: randomBytes(64 * 1024) });
    t.is(posted.status, 200);
    // The fast lane reads a 64 KiB body whole (told), Node's path streams it (not told).
    t.is(told, (fastLane === 'on' ? 64 * 1024 : 0) + 2, `fast lane ${fastLane}: the upload and its answer`);
  }
});

test('an endpoint without api gets the rest of the path from the root', async (t) => {
  const { proxy, lib } = await setup();
  const u = await upstream('root');
  await registerAll(lib, proxy, 'rooted', [u]);
  t.is((await request(proxy.url + '/rooted')).json().url, '/');
  t.is((await request(proxy.url + '/rooted/a/b?c')).json().url, '/a/b?c');
});

test('traffic spreads over three instances: each gets its share with a pinned random source', async (t) => {
  const picks = [0, 0.34, 0.67];
  let n = 0;
  const { proxy, lib } = await setup({}, () => picks[n++ % 3]!);
  const ups = await Promise.all(['a', 'b', 'c'].map((name) => upstream(name)));
  await registerAll(lib, proxy, 'spread', ups);
  for (let i = 0; i < 30; i++) t.is((await request(proxy.url + '/spread/x')).status, 200);
  t.deepEqual(
    ups.map((u) => u.seen.length),
    [10, 10, 10],
  );
});

test('traffic spreads over three instances with the real random source', async (t) => {
  const { proxy, lib } = await setup();
  const ups = await Promise.all(['a', 'b', 'c'].map((name) => upstream(name)));
  await registerAll(lib, proxy, 'spread2', ups);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  t.teardown(() => agent.destroy());
  await Promise.all(Array.from({ length: 600 }, () => get(proxy.url + '/spread2/', agent)));
  // Each count is Binomial(600, 1/3): mean 200, sd 11.5. Below 100 is > 8.6 sd away:
  // probability < 1e-17 per instance, so this cannot flake, yet a broken balancer fails it.
  for (const u of ups) t.true(u.seen.length >= 100, `${u.name} got ${u.seen.length}`);
  t.is(
    ups.reduce((s, u) => s + u.seen.length, 0),
    600,
  );
});

test('per-service p2c steers traffic away from a slow instance', async (t) => {
  const { proxy, lib } = await setup({ serviceBalancers: 'steer=p2c' });
  const fast = await Promise.all(['f1', 'f2'].map((n) => upstream(n)));
  const slow = await upstream('slow', (req, res, u) => void setTimeout(() => echo(req, res, u), 50));
  await registerAll(lib, proxy, 'steer', [...fast, slow]);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 12 });
  t.teardown(() => agent.destroy());
  await Promise.all(
    Array.from({ length: 12 }, async () => {
      for (let i = 0; i < 50; i++) await get(proxy.url + '/steer/x', agent);
    }),
  );
  const share = slow.seen.length / 600;
  t.log(`slow instance share under p2c: ${(share * 100).toFixed(1)} % (random would give 33 %)`);
  // Under p2c a request only reaches the slow instance when it is not busier than the other
  // choice; with 12 concurrent clients and a 50x slower instance that is rare.
  t.true(share < 0.2, `slow share ${share}`);
});

test('X-Request-Id is kept or generated, sent upstream and returned; one access-log line per request', async (t) => {
  const lines: any[] = [];
  const logger = createLogger({ level: 'info', write: (line) => void lines.push(JSON.parse(line)) });
  const proxy = await startProxy(shared.zk.connectString, { accessLog: 'on' }, { logger });
  cleanups.push(() => proxy.close());
  const lib = connect(shared.zk.connectString, proxy.basePath);
  cleanups.push(() => lib.close());
  const u = await upstream('rid');
  await registerAll(lib, proxy, 'rid', [u]);

  const kept = await request(proxy.url + '/rid/a?secret=1', {
    headers: { 'x-request-id': 'client-42', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
  });
  t.is(kept.headers['x-request-id'], 'client-42');
  t.is(kept.json().headers['x-request-id'], 'client-42');
  t.is(kept.json().headers.traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');

  const fresh = await request(proxy.url + '/rid/b');
  const id = fresh.headers['x-request-id'] as string;
  t.regex(id, /^[0-9a-f-]{36}$/);
  t.is(fresh.json().headers['x-request-id'], id);

  const missing = await request(proxy.url + '/nope/x');
  t.regex(missing.headers['x-request-id'] as string, /^[0-9a-f-]{36}$/, 'error responses carry it too');

  const access = await eventually(() => {
    const found = lines.filter((l) => l.component === 'access');
    return found.length >= 3 ? found : undefined;
  });
  const first = access.find((l) => l.requestId === 'client-42');
  t.like(first, {
    msg: 'request',
    method: 'GET',
    path: '/rid/a',
    service: 'rid',
    status: 200,
    attempts: 1,
    instance: proxy.app.registry!.get('rid')!.instances[0]!.id,
  });
  t.is(typeof first.durationMs, 'number');
  t.false(JSON.stringify(access).includes('secret=1'), 'queries stay out of the log');
  t.like(
    access.find((l) => l.path === '/nope/x'),
    { status: 404, error: 'PUTTU_UNKNOWN_SERVICE' },
  );
});

test('a 1 MiB POST body and a 32 MiB response stream through intact', async (t) => {
  const { proxy, lib } = await setup();
  const big = randomBytes(32 * 1024 * 1024);
  const u = await upstream('stream', (req, res) => {
    if (req.method === 'POST') {
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (c: Buffer) => {
        hash.update(c);
        bytes += c.length;
      });
      req.on('end', () => res.end(JSON.stringify({ bytes, sha256: hash.digest('hex'), te: req.headers['transfer-encoding'] ?? null })));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    // Written in chunks so the response is streamed, not one buffer.
    let offset = 0;
    const pump = () => {
      while (offset < big.length) {
        const chunk = big.subarray(offset, offset + 64 * 1024);
        offset += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  });
  await registerAll(lib, proxy, 'files', [u]);

  const body = randomBytes(1024 * 1024);
  const posted = await request(proxy.url + '/files/upload', {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/octet-stream' },
  });
  t.is(posted.status, 200);
  t.deepEqual(posted.json(), { bytes: body.length, sha256: sha256(body), te: null });

  // Chunked upload (no Content-Length) streams too.
  const chunked = await new Promise<any>((resolve, reject) => {
    const req = http.request(proxy.url + '/files/upload', { method: 'POST', agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString())));
    });
    req.on('error', reject);
    req.write(body.subarray(0, 1000));
    req.end(body.subarray(1000));
  });
  t.is(chunked.bytes, body.length);
  t.is(chunked.sha256, sha256(body));

  const down = await request(proxy.url + '/files/download', { timeoutMs: 30_000 });
  t.is(down.status, 200);
  t.is(down.body.length, big.length);
  t.is(sha256(down.body), sha256(big));
});

test('hop-by-hop headers are removed and X-Forwarded-* set, both ways', async (t) => {
  const { proxy, lib } = await setup();
  const u = await upstream('hop', (req, res) => {
    res.writeHead(200, [
      'content-type',
      'application/json',
      'connection',
      'x-secret-hop',
      'x-secret-hop',
      'drop me',
      'keep-alive',
      'timeout=99',
      'x-kept',
      'yes',
    ]);
    res.end(JSON.stringify(req.headers));
  });
  await registerAll(lib, proxy, 'hop', [u]);
  const reply = await request(proxy.url + '/hop/', {
    headers: [
      'Host',
      'gateway.example',
      'Connection',
      'keep-alive, X-Custom-Hop',
      'X-Custom-Hop',
      'secret',
      'Keep-Alive',
      'timeout=5',
      'TE',
      'trailers',
      'Proxy-Connection',
      'keep-alive',
      'X-Forwarded-For',
      '203.0.113.9',
      'X-Forwarded-Proto',
      'gopher',
      'X-End-To-End',
      'kept',
    ],
  });
  t.is(reply.status, 200);
  const seen = reply.json();
  for (const h of ['x-custom-hop', 'keep-alive', 'te', 'proxy-connection']) t.is(seen[h], undefined, `${h} removed`);
  t.not(seen.connection, 'keep-alive, X-Custom-Hop');
  t.is(seen['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
  t.is(seen['x-forwarded-proto'], 'http');
  t.is(seen['x-forwarded-host'], 'gateway.example');
  t.is(seen['x-end-to-end'], 'kept');
  t.is(seen.host, `127.0.0.1:${u.port}`);
  t.regex(seen.via, /1\.1 puttu/);
  t.is(reply.headers['x-secret-hop'], undefined);
  t.not(reply.headers['keep-alive'], 'timeout=99');
  t.is(reply.headers['x-kept'], 'yes');
});

test('Connection: X-Forwarded-For cannot strip the X-Forwarded-For the proxy adds', async (t) => {
  const { proxy, lib } = await setup();
  const u = await upstream('xff');
  await registerAll(lib, proxy, 'xff', [u]);
  const seen = (
    await request(proxy.url + '/xff/', { headers: { connection: 'X-Forwarded-For', 'x-forwarded-for': '198.51.100.1' } })
  ).json();
  t.is(seen.headers['x-forwarded-for'], '127.0.0.1');
});

test('errors are JSON with a stable code: 404 unknown, 503 no instance, 502 refused, 504 too slow', async (t) => {
  const { proxy, lib } = await setup({ upstreamTimeoutMs: 300 });
  // 404: no such service.
  const unknown = await request(proxy.url + '/nosuchservice/x');
  t.is(unknown.status, 404);
  t.is(unknown.json().error.code, 'PUTTU_UNKNOWN_SERVICE');

  // 503: the service exists in ZooKeeper but has no live instance.
  const raw = await rawClient(shared.zk.connectString);
  t.teardown(() => raw.close());
  await raw.mkdirp(`${proxy.basePath}/empty`);
  await eventually(() => proxy.app.registry!.get('empty') !== undefined);
  const empty = await request(proxy.url + '/empty/x');
  t.is(empty.status, 503);
  t.is(empty.json().error.code, 'PUTTU_NO_INSTANCES');

  // 502: the registered port refuses connections.
  const deadPort = await freePort();
  await lib.register('dead', { host: '127.0.0.1', port: deadPort });
  await eventually(() => proxy.app.registry!.get('dead')?.instances.length === 1);
  const refused = await request(proxy.url + '/dead/x');
  t.is(refused.status, 502);
  t.is(refused.json().error.code, 'PUTTU_UPSTREAM_REFUSED');
  t.false(refused.body.toString().includes(String(deadPort)), 'no internal address in the body');
  t.false(refused.body.toString().includes('127.0.0.1'), 'no internal address in the body');

  // 504: the upstream accepts but never answers.
  const stuck = await upstream('stuck', () => undefined);
  await registerAll(lib, proxy, 'stuck', [stuck]);
  const started = Date.now();
  const slow = await request(proxy.url + '/stuck/x');
  t.is(slow.status, 504);
  t.is(slow.json().error.code, 'PUTTU_UPSTREAM_TIMEOUT');
  t.true(Date.now() - started < 5_000);

  // 400: a path that climbs out of its service.
  const bad = await request(proxy.url + '/stuck/%2e%2e/dead/x');
  t.is(bad.status, 400);
  t.is(bad.json().error.code, 'PUTTU_BAD_PATH');
});

test('a mid-body upstream failure cuts the client connection instead of ending cleanly', async (t) => {
  const { proxy, lib } = await setup();
  const u = await upstream('cut', (_req, res) => {
    res.writeHead(200, { 'content-length': '100000' });
    res.write(Buffer.alloc(1000));
    setImmediate(() => res.socket?.destroy());
  });
  await registerAll(lib, proxy, 'cut', [u]);
  await t.throwsAsync(request(proxy.url + '/cut/x'));
});

test('instances added and removed while traffic flows: the new one gets traffic, the removed one none', async (t) => {
  const { proxy, lib } = await setup();
  const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((name) => upstream(name)));
  const [regA] = await registerAll(lib, proxy, 'live', [a!, b!]);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  t.teardown(() => agent.destroy());
  let running = true;
  let failures = 0;
  let sent = 0;
  const load = Promise.all(
    Array.from({ length: 4 }, async () => {
      while (running) {
        const status = await get(proxy.url + '/live/x', agent);
        sent++;
        if (status !== 200) failures++;
      }
    }),
  );
  try {
    await eventually(() => a!.seen.length > 20 && b!.seen.length > 20, { message: 'both instances serve' });

    const addedAt = Date.now();
    await lib.register('live', { host: '127.0.0.1', port: c!.port });
    await eventually(() => c!.seen.length > 0, { timeoutMs: 5_000, message: 'the new instance gets traffic' });
    const toFirstRequest = Date.now() - addedAt;
    t.true(toFirstRequest < 1_000, `new instance got its first request after ${toFirstRequest} ms`);

    await regA!.unregister();
    const removedAt = Date.now();
    await eventually(() => proxy.app.registry!.get('live')!.instances.every((i) => i.port !== a!.port), { timeoutMs: 5_000 });
    const toRemoval = Date.now() - removedAt;
    t.true(toRemoval < 1_000, `removal reached routing after ${toRemoval} ms`);
    // Requests already forwarded may still land; none may be sent after the view changed.
    const countAfterRemoval = a!.seen.length;
    const sentAtRemoval = sent;
    await eventually(() => sent > sentAtRemoval + 200, { message: '200 more requests' });
    t.is(a!.seen.length, countAfterRemoval, 'no request reached the removed instance');
    // Its keep-alive pool was closed with it: the removed upstream's sockets go away at once
    // (well before the 4 s idle timeout that would otherwise close them).
    const closedAt = Date.now();
    await eventually(() => new Promise<boolean>((resolve) => a!.server.getConnections((_e, n) => resolve(n === 0))), {
      timeoutMs: 3_000,
      message: 'pool of the removed instance closed',
    });
    t.true(Date.now() - closedAt < 3_000);
  } finally {
    running = false;
    await load;
  }
  t.is(failures, 0);
});

test('HEAD, 204 and 304 responses are framed correctly', async (t) => {
  const { proxy, lib } = await setup();
  const u = await upstream('framing', (req, res) => {
    if (req.url === '/204') return void res.writeHead(204).end();
    if (req.url === '/304') return void res.writeHead(304, { etag: '"x"' }).end();
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5' });
    res.end(req.method === 'HEAD' ? undefined : 'hello');
  });
  await registerAll(lib, proxy, 'framing', [u]);
  const head = await request(proxy.url + '/framing/x', { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(head.headers['content-length'], '5');
  t.is(head.body.length, 0);
  const noContent = await request(proxy.url + '/framing/204');
  t.is(noContent.status, 204);
  t.is(noContent.body.length, 0);
  const notModified = await request(proxy.url + '/framing/304');
  t.is(notModified.status, 304);
  t.is(notModified.headers.etag, '"x"');
  // The connection survives all three (keep-alive framing intact): a sequence on one socket.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  for (const p of ['/204', '/304', '/x', '/204']) t.true([200, 204, 304].includes(await get(proxy.url + '/framing' + p, agent)));
});

test('metrics: counters move after traffic and labels stay bounded', async (t) => {
  const { proxy, lib } = await setup();
  const u = await upstream('m');
  await registerAll(lib, proxy, 'metered', [u]);
  for (let i = 0; i < 5; i++) await request(proxy.url + '/metered/x');
  await request(proxy.url + '/metered/x', { method: 'BREW' as string }).catch(() => undefined);
  for (let i = 0; i < 20; i++) await request(proxy.url + `/random-${i}/x`);
  const text = (await request(proxy.adminUrl + '/metrics')).body.toString();
  t.regex(text, /puttu_requests_total\{service="metered",method="GET",status_class="2xx",protocol="http\/1\.1"\} 5/);
  t.regex(text, /puttu_requests_total\{service="_unknown",method="GET",status_class="4xx",protocol="http\/1\.1"\} 20/);
  t.regex(text, /puttu_request_duration_seconds_count\{service="metered"\} [1-9]/);
  t.regex(text, /puttu_endpoints\{service="metered"\} 1/);
  t.regex(text, /puttu_zookeeper_connection_state\{state="connected"\} 1/);
  t.regex(text, /puttu_registry_synced 1/);
  t.regex(text, /puttu_process_resident_memory_bytes/);
  t.false(text.includes('random-'), 'unknown service names never become labels');
});

test('admin: /healthz, /readyz and /api/services', async (t) => {
  const { proxy, lib } = await setup();
  const u = await upstream('adm');
  await registerAll(lib, proxy, 'adm', [u]);
  t.is((await request(proxy.adminUrl + '/healthz')).status, 200);
  const ready = await request(proxy.adminUrl + '/readyz');
  t.is(ready.status, 200);
  t.is(ready.json().zookeeper, 'connected');
  const services = (await request(proxy.adminUrl + '/api/services')).json();
  const adm = services.services.find((s: any) => s.name === 'adm');
  t.is(adm.instances.length, 1);
  t.is(adm.instances[0].url, `http://127.0.0.1:${u.port}`);
  t.is((await request(proxy.adminUrl + '/nothing')).status, 404);
  // The admin listener is not the proxy listener.
  t.not(new URL(proxy.adminUrl).port, new URL(proxy.url).port);
});

function get(url: string, agent: http.Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
      .on('error', reject);
  });
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}
