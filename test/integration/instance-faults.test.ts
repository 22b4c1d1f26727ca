/**
 * Instance faults under load through the proxy: crashes (SIGKILL: the znode lingers until the
 * session times out), graceful rolling restarts, refused connections, resets, stalls, client aborts.
 * Backends are real `puttu echo` processes; load is bounded and loopback-only.
 */
import test, { type ExecutionContext } from 'ava';
import http from 'node:http';
import { connect } from '../../proxy/index.js';
import { freePort } from '../../proxy/dev/local-zookeeper.js';
import { eventually } from '../helpers/eventually.js';
import { startLoad } from '../helpers/load.js';
import { startEcho, type PuttuProcess } from '../helpers/processes.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request, startUpstream } from '../helpers/upstreams.js';
import { startZooKeeper, type TestZooKeeper } from '../helpers/zookeeper.js';

let zk: TestZooKeeper;
const procs: PuttuProcess[] = [];

test.before(async () => {
  zk = await startZooKeeper();
});
test.after.always(async () => {
  for (const p of procs) p.kill('SIGKILL');
  await zk?.stop();
});

/** Registers an instance of `service` at each of `ports`, and waits until `proxy` has them all. */
async function registerAll(t: ExecutionContext, proxy: TestProxy, service: string, ports: number[]): Promise<void> {
  const lib = connect(zk.connectString, proxy.basePath);
  t.teardown(() => lib.close());
  for (const port of ports) await lib.register(service, { host: '127.0.0.1', port });
  await eventually(() => proxy.app.registry!.get(service)?.instances.length === ports.length);
}

async function echoes(basePath: string, service: string, n: number, extra: string[] = []) {
  const started = await Promise.all(Array.from({ length: n }, () => startEcho(zk.connectString, basePath, service, extra)));
  procs.push(...started);
  return started;
}

test('SIGKILL of 1 of 3 instances under a GET load: zero failed requests', async (t) => {
  const proxy = await startProxy(zk.connectString);
  t.teardown(() => proxy.close());
  const [victim] = await echoes(proxy.basePath, 'crash', 3);
  await eventually(() => proxy.app.registry!.get('crash')?.instances.length === 3);

  const load = startLoad(proxy.url + '/crash/x', { concurrency: 8, maxMs: 60_000 });
  await eventually(() => load.sent > 500, { message: 'load running' });
  victim!.kill('SIGKILL');
  await victim!.exited;
  const killedAt = load.sent;
  // The dead instance stays registered until its session times out; keep the load going.
  await eventually(() => load.sent > killedAt + 2_000, { timeoutMs: 30_000, message: '2,000 requests after the kill' });
  const result = await load.stop();
  t.log(`sent ${result.sent}, failed ${result.failed}`);
  t.is(result.failed, 0, JSON.stringify(result.failures));
  const metrics = (await request(proxy.adminUrl + '/metrics')).body.toString();
  t.regex(metrics, /puttu_retries_total\{service="crash"\} [1-9]/, 'failures were retried on another instance');
  t.regex(metrics, /puttu_ejections_total\{service="crash"\} [1-9]/, 'the dead instance was ejected');
});

test('a rolling restart of 3 instances under load: zero failed requests', async (t) => {
  const proxy = await startProxy(zk.connectString);
  t.teardown(() => proxy.close());
  let current = await echoes(proxy.basePath, 'rolling', 3, ['--drain-ms', '300']);
  await eventually(() => proxy.app.registry!.get('rolling')?.instances.length === 3);
  const load = startLoad(proxy.url + '/rolling/x', { concurrency: 8, maxMs: 60_000 });
  await eventually(() => load.sent > 300);
  for (let i = 0; i < 3; i++) {
    const [replacement] = await echoes(proxy.basePath, 'rolling', 1, ['--drain-ms', '300']);
    const old = current[i]!;
    old.kill('SIGTERM');
    t.is(await old.exited, 0);
    current = [...current.slice(0, i), replacement!, ...current.slice(i + 1)];
    const at = load.sent;
    await eventually(() => load.sent > at + 300);
  }
  const result = await load.stop();
  t.log(`sent ${result.sent}, failed ${result.failed}`);
  t.is(result.failed, 0, JSON.stringify(result.failures));
  t.deepEqual(
    proxy.app
      .registry!.get('rolling')!
      .instances.map((i) => i.port)
      .sort(),
    current.map((p) => p.port).sort(),
  );
});

test('a refused connection is retried on another instance for any method, body intact', async (t) => {
  const proxy = await startProxy(zk.connectString);
  t.teardown(() => proxy.close());
  const live = await startUpstream('live', (req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => res.end(JSON.stringify({ bytes: n })));
  });
  t.teardown(() => live.close());
  await registerAll(t, proxy, 'mixed', [await freePort(), live.port]);
  const body = Buffer.alloc(50_000, 7);
  for (let i = 0; i < 20; i++) {
    const reply = await request(proxy.url + '/mixed/submit', { method: 'POST', body });
    t.is(reply.status, 200);
    t.is(reply.json().bytes, body.length);
  }
});

test('a POST whose request was written is not retried; a GET is', async (t) => {
  const proxy = await startProxy(zk.connectString);
  t.teardown(() => proxy.close());
  // Both instances read the request, then drop the connection without answering.
  const hits: string[] = [];
  const drop = (name: string) =>
    startUpstream(name, (req) => {
      hits.push(`${name} ${req.method}`);
      req.resume();
      req.on('end', () => req.socket.destroy());
    });
  const [a, b] = await Promise.all([drop('a'), drop('b')]);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  await registerAll(t, proxy, 'dropper', [a.port, b.port]);

  const post = await request(proxy.url + '/dropper/x', { method: 'POST', body: 'once' });
  t.is(post.status, 502);
  t.is(post.json().error.code, 'PUTTU_UPSTREAM_RESET');
  t.is(hits.filter((h) => h.endsWith('POST')).length, 1, 'the POST reached one instance once');

  const get = await request(proxy.url + '/dropper/x');
  t.is(get.status, 502);
  t.deepEqual(hits.filter((h) => h.endsWith('GET')).sort(), ['a GET', 'b GET'], 'the GET was tried on both');
});

test('a stalled upstream gets a 504 after the per-try timeout, also while the client reads slowly', async (t) => {
  const proxy = await startProxy(zk.connectString, { upstreamTimeoutMs: 300, bodyTimeoutMs: 300, maxAttempts: 1 });
  t.teardown(() => proxy.close());
  const stalled = await startUpstream('stall', (req, res) => {
    if (req.url === '/mid') {
      res.writeHead(200, { 'content-length': '1000000' });
      res.write(Buffer.alloc(1000));
      return; // then silence
    }
  });
  t.teardown(() => stalled.close());
  await registerAll(t, proxy, 'stall', [stalled.port]);
  const started = Date.now();
  const r = await request(proxy.url + '/stall/head');
  t.is(r.status, 504);
  t.true(Date.now() - started < 3_000);
  // Mid-body stall: the head was sent, so the connection is cut (never a clean 200).
  await t.throwsAsync(request(proxy.url + '/stall/mid'));
});

test("a stalled upstream gets a 504 for a POST too: a whole body (puttu's deadlines) and a streamed one (undici's timers)", async (t) => {
  const proxy = await startProxy(zk.connectString, { upstreamTimeoutMs: 300, bodyTimeoutMs: 5_000, maxAttempts: 1 });
  t.teardown(() => proxy.close());
  const bodies: number[] = [];
  const stalled = await startUpstream('stallpost', (req) => {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => bodies.push(n)); // then never answers
  });
  t.teardown(() => stalled.close());
  await registerAll(t, proxy, 'stallpost', [stalled.port]);
  const whole = Date.now();
  const a = await request(proxy.url + '/stallpost/a', { method: 'POST', body: 'x'.repeat(100), headers: { 'content-length': '100' } });
  const wholeMs = Date.now() - whole;
  t.is(a.status, 504);
  t.is(a.json().error.code, 'PUTTU_UPSTREAM_TIMEOUT');
  t.true(wholeMs >= 300 && wholeMs < 3_000, `whole body: 504 after ${wholeMs} ms`);
  const streamed = Date.now();
  const b = await request(proxy.url + '/stallpost/b', {
    method: 'POST',
    body: 'y'.repeat(100),
    headers: { 'transfer-encoding': 'chunked' },
  });
  const streamedMs = Date.now() - streamed;
  t.is(b.status, 504);
  t.true(streamedMs >= 300 && streamedMs < 3_000, `streamed body: 504 after ${streamedMs} ms`);
  t.deepEqual(bodies, [100, 100], 'both bodies reached the upstream whole');
});

test('client aborts abort the upstream request; sockets return to baseline after 1,000 aborts', async (t) => {
  const proxy = await startProxy(zk.connectString);
  t.teardown(() => proxy.close());
  let upstreamClosed = 0;
  const slow = await startUpstream('slow', (_req, res) => {
    res.on('close', () => {
      if (!res.writableFinished) upstreamClosed++;
    });
    setTimeout(() => res.end('late'), 5_000).unref();
  });
  t.teardown(() => slow.close());
  await registerAll(t, proxy, 'slow', [slow.port]);

  const connections = () => new Promise<number>((resolve) => slow.server.getConnections((_e, n) => resolve(n)));
  const baselineHeap = process.memoryUsage().heapUsed;
  const rounds = 1_000;
  for (let batch = 0; batch < rounds / 50; batch++) {
    // 50 requests; once the upstream holds all of them, the clients hang up.
    const seenBefore = slow.seen.length;
    const reqs = Array.from({ length: 50 }, () => {
      const req = http.get(proxy.url + '/slow/x', { agent: false });
      req.on('error', () => undefined);
      return req;
    });
    await eventually(() => slow.seen.length === seenBefore + 50, { message: 'the upstream holds the batch' });
    for (const req of reqs) req.destroy();
  }
  await eventually(() => upstreamClosed === rounds, { timeoutMs: 20_000, message: 'every upstream request was aborted' });
  await eventually(async () => (await connections()) === 0, { timeoutMs: 20_000, message: 'upstream sockets back to zero' });
  const heapGrowth = process.memoryUsage().heapUsed - baselineHeap;
  t.log(`upstream aborts seen: ${upstreamClosed}/${rounds}; heap growth ${(heapGrowth / 1e6).toFixed(1)} MB`);
  t.is(upstreamClosed, rounds);
  t.true(heapGrowth < 64e6, `heap grew ${heapGrowth} bytes`);
});
