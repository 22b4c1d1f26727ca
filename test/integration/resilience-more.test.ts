/**
 * More resilience: a library's graceful stop (deregister, drain, then end the session); a ZooKeeper
 * member that goes silent (or resets) under a proxy in a 3-node ensemble; a client that reads a
 * large body slowly through a proxy with a short body timeout; a service node that vanishes and
 * comes back.
 */
import test, { type ExecutionContext } from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { Config } from '../../proxy/config/schema.js';
import { connect } from '../../proxy/index.js';
import { fourLetter } from '../../proxy/dev/local-zookeeper.js';
import { lastSegment } from '../../proxy/registry/paths.js';
import { kZkClient, type ConnectionState, type ZkClient } from '../../proxy/registry/zk-client.js';
import { eventually } from '../helpers/eventually.js';
import { startLoad } from '../helpers/load.js';
import { startProxy } from '../helpers/proxy.js';
import { startRelay } from '../helpers/relay.js';
import { request, startUpstream } from '../helpers/upstreams.js';
import { rawClient, startEnsemble, startZooKeeper, type TestEnsemble, type TestZooKeeper } from '../helpers/zookeeper.js';

// Started on first use and shared: an ensemble is three JVMs.
let standalone: Promise<TestZooKeeper> | undefined;
let ensemble: Promise<TestEnsemble> | undefined;
const zooKeeper = () => (standalone ??= startZooKeeper());
const zooKeeperEnsemble = () => (ensemble ??= startEnsemble(3));

test.after.always(async () => {
  await Promise.all([standalone?.then((z) => z.stop()), ensemble?.then((e) => e.stop())]);
});

/** The session id as ZooKeeper's `cons` prints it (`sid=0x...`, no leading zeros). */
const sidOf = (zk: ZkClient) => `sid=0x${BigInt('0x' + zk.sessionCredentials().id.toString('hex')).toString(16)}`;

test('library close() with drainMs: the proxy stops routing first (DRAINING), the node goes after the drain, then the session', async (t) => {
  const zk = await zooKeeper();
  const upstream = await startUpstream('draining');
  t.teardown(() => upstream.close());
  const proxy = await startProxy(zk.connectString);
  t.teardown(() => proxy.close());
  const raw = await rawClient(zk.connectString);
  t.teardown(() => raw.close());
  const drainMs = 500;
  const lib = connect(zk.connectString, proxy.basePath, { drainMs });
  t.teardown(() => lib.close());
  const reg = await lib.register('drain', { host: '127.0.0.1', port: upstream.port });
  await eventually(() => proxy.app.registry!.get('drain')?.instances.length === 1, { message: 'proxy sees the instance' });
  const sid = sidOf((lib as unknown as Record<typeof kZkClient, ZkClient>)[kZkClient]);
  t.true((await fourLetter(zk.server.options.clientPort, 'cons')).includes(sid), 'the session is listed before close');

  const started = performance.now();
  let closedAfter: number | undefined;
  const closing = lib.close().then(() => (closedAfter = performance.now() - started));
  const dir = `${proxy.basePath}/drain`;
  // The drain is what DRAINING buys: the proxy stops routing while the node and the session live.
  await eventually(() => proxy.app.registry!.get('drain')?.instances.length === 0, {
    timeoutMs: 5_000,
    message: 'proxy dropped the instance',
  });
  const droppedAfter = performance.now() - started;
  t.is(closedAfter, undefined, 'close() has not resolved when the proxy stops routing');
  t.true((await raw.getChildren(dir)).includes(lastSegment(reg.path)), 'the node still exists during the drain');
  t.regex(proxy.app.registry!.get('drain')!.rejected[0]!.reason, /DRAINING/);
  t.true((await fourLetter(zk.server.options.clientPort, 'cons')).includes(sid), 'the server still has the session during the drain');

  await closing;
  t.log(`proxy stopped routing after ${droppedAfter.toFixed(0)} ms, close() resolved after ${closedAfter!.toFixed(0)} ms`);
  t.true(closedAfter! >= drainMs - 5, `close() took at least the drain (${closedAfter} ms)`);
  t.true(droppedAfter + 250 < closedAfter!, 'routing stopped well before close() resolved');
  t.false((await raw.getChildren(dir)).includes(lastSegment(reg.path)), 'the node is deleted by the time close() resolves');
  t.is(lib.state, 'closed');
  await eventually(async () => !(await fourLetter(zk.server.options.clientPort, 'cons')).includes(sid), {
    timeoutMs: 5_000,
    message: 'session closed on the server',
  });
});

/** Records every state change of `zk` with its time. */
function recordStates(zk: ZkClient) {
  const changes: Array<{ at: number; state: ConnectionState }> = [];
  const onState = (state: ConnectionState) => changes.push({ at: performance.now(), state });
  zk.on('state', onState);
  return { changes, stop: () => zk.off('state', onState) };
}

for (const fault of ['pause', 'reset'] as const) {
  test(`3-node ensemble behind relays: the member in use ${fault === 'pause' ? 'goes silent (socket open)' : 'resets the connection'}: the same session moves to another member in time, zero failed requests`, async (t) => {
    const ens = await zooKeeperEnsemble();
    const relays = await Promise.all(ens.servers.map((s) => startRelay(s.options.clientPort)));
    t.teardown(() => Promise.all(relays.map((r) => r.close())));
    const sessionTimeoutMs = 6_000;
    const proxy = await startProxy(relays.map((r) => r.address).join(','), { sessionTimeoutMs });
    t.teardown(() => proxy.close());
    const upstream = await startUpstream(`failover-${fault}`);
    t.teardown(() => upstream.close());
    const lib = connect(ens.connectString, proxy.basePath);
    t.teardown(() => lib.close());
    await lib.register('failover', { host: '127.0.0.1', port: upstream.port });
    await eventually(() => proxy.app.registry!.get('failover')?.instances.length === 1, {
      timeoutMs: 15_000,
      message: 'proxy sees the instance',
    });

    const zk = proxy.app.zk!;
    const generation = zk.generation;
    const load = startLoad(proxy.url + '/failover/x', { concurrency: 4, maxMs: 60_000 });
    t.teardown(() => load.stop());
    await eventually(() => load.sent > 200, { message: 'load running' });
    const active = relays.filter((r) => r.connections > 0);
    t.is(active.length, 1, 'the proxy uses exactly one member');
    const victim = active[0]!;

    const states = recordStates(zk);
    t.teardown(states.stop);
    const faultAt = performance.now();
    if (fault === 'pause') victim.mode = 'pause';
    else victim.reset();
    const left = await eventually(() => states.changes.find((c) => c.state !== 'connected'), {
      timeoutMs: sessionTimeoutMs * 2,
      message: 'left connected',
    });
    const back = await eventually(() => states.changes.find((c) => c.at >= left.at && c.state === 'connected'), {
      timeoutMs: sessionTimeoutMs * 2,
      message: 'connected again',
    });
    const detectMs = left.at - faultAt;
    const recoverMs = back.at - faultAt;
    t.log(
      `${fault}: left 'connected' after ${detectMs.toFixed(0)} ms, connected again after ${recoverMs.toFixed(0)} ms (session timeout ${zk.sessionTimeoutMs} ms); states: ${states.changes.map((c) => c.state).join(' → ')}`,
    );
    // A silent server is dropped once nothing was read for 2/3 of the session timeout (the read
    // guard in deps/zookeeper-client.ts, checked every 500 ms, as the Java client's ClientCnxn); the next
    // member answers at once. That leaves the last third of the session for the move, so the
    // server has not expired it (1 s of slack for a loaded machine).
    const boundMs = (zk.sessionTimeoutMs * 2) / 3 + 500 + 1_000;
    t.true(recoverMs < boundMs, `connected again within ${boundMs} ms (${recoverMs.toFixed(0)} ms), under the session timeout`);
    t.is(zk.generation, generation, 'the same session: no expiry, no new session');
    t.false(
      states.changes.some((c) => c.state === 'expired'),
      'never expired',
    );
    if (fault === 'pause') {
      t.is(victim.connections, 0, 'nothing left on the silent member');
      t.is(relays.filter((r) => r !== victim && r.connections > 0).length, 1, 'connected through another member');
    }

    // Watches survived the move: a change made now reaches the proxy.
    const second = await startUpstream(`failover-${fault}-2`);
    t.teardown(() => second.close());
    await lib.register('failover', { host: '127.0.0.1', port: second.port });
    await eventually(() => proxy.app.registry!.get('failover')?.instances.length === 2, {
      timeoutMs: 10_000,
      message: 'change after the move seen',
    });

    const at = load.sent;
    await eventually(() => load.sent > at + 300, { message: 'load continued' });
    const result = await load.stop();
    t.log(`sent ${result.sent}, failed ${result.failed}`);
    t.is(result.failed, 0, JSON.stringify(result.failures));
  });
}

/**
 * Reads a response through `url` as a slow client: paused, `perTick` bytes released every 100 ms;
 * after `stallAfter` bytes it stops reading for `stallMs`, then reads without limit.
 */
function slowRead(url: string, options: { perTick: number; stallAfter?: number; stallMs?: number }) {
  const started = performance.now();
  return new Promise<{ status: number; bytes: number; digest: string; ms: number }>((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      let budget = 0;
      let stalled = false;
      let timer: NodeJS.Timeout | undefined;
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
        budget -= chunk.length;
        if (budget <= 0) res.pause();
      });
      res.pause();
      const tick = () => {
        if (options.stallAfter !== undefined && !stalled && bytes >= options.stallAfter) {
          stalled = true;
          timer = setTimeout(() => {
            budget = Infinity;
            res.resume();
          }, options.stallMs);
          return;
        }
        budget = options.perTick;
        res.resume();
        timer = setTimeout(tick, 100);
      };
      timer = setTimeout(tick, 100);
      res.on('end', () => resolve({ status: res.statusCode!, bytes, digest: hash.digest('hex'), ms: performance.now() - started }));
      res.on('error', reject);
      res.on('close', () => clearTimeout(timer));
    });
    req.setTimeout(60_000, () => req.destroy(new Error('client gave up')));
    req.on('error', reject);
  });
}

/**
 * An upstream that sends `payload` in 64 KiB writes as fast as it is allowed, and measures how long
 * it was held back (waiting for 'drain'): backpressure that reached it means the proxy stopped
 * reading its response, i.e. undici was paused by the slow client.
 */
async function bulkUpstream(payload: Buffer) {
  const stats = { longestBlockedMs: 0, doneAt: 0 };
  const upstream = await startUpstream('bulk', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': payload.length });
    let offset = 0;
    const pump = () => {
      while (offset < payload.length) {
        const chunk = payload.subarray(offset, offset + 65_536);
        offset += chunk.length;
        if (!res.write(chunk)) {
          const blockedAt = performance.now();
          res.once('drain', () => {
            stats.longestBlockedMs = Math.max(stats.longestBlockedMs, performance.now() - blockedAt);
            pump();
          });
          return;
        }
      }
      res.end(() => (stats.doneAt = performance.now()));
    };
    pump();
  });
  return { upstream, stats };
}

async function proxyTo(zk: TestZooKeeper, t: ExecutionContext, port: number, config: Partial<Config>) {
  const proxy = await startProxy(zk.connectString, config);
  t.teardown(() => proxy.close());
  const lib = connect(zk.connectString, proxy.basePath);
  t.teardown(() => lib.close());
  await lib.register('bulk', { host: '127.0.0.1', port });
  await eventually(() => proxy.app.registry!.get('bulk')?.instances.length === 1);
  return proxy;
}

test('a client reading a 4 MiB body slowly (paused, 100 KB every 100 ms) through a proxy with bodyTimeoutMs 300 gets it whole', async (t) => {
  const zk = await zooKeeper();
  const payload = randomBytes(4 * 1024 * 1024);
  const { upstream, stats } = await bulkUpstream(payload);
  t.teardown(() => upstream.close());
  const proxy = await proxyTo(zk, t, upstream.port, { bodyTimeoutMs: 300 });

  const started = performance.now();
  const read = await slowRead(proxy.url + '/bulk/blob', { perTick: 100_000 });
  t.log(
    `read ${read.bytes} bytes in ${read.ms.toFixed(0)} ms; the upstream finished after ${(stats.doneAt - started).toFixed(0)} ms, held back ${stats.longestBlockedMs.toFixed(0)} ms at most`,
  );
  t.is(read.status, 200);
  t.is(read.bytes, payload.length);
  t.is(read.digest, createHash('sha256').update(payload).digest('hex'));
  t.true(read.ms > 2_000, 'the read really was slow (far longer than the body timeout)');
});

test('a client that stops reading for 1.5 s holds the proxy back (backpressure reaches the upstream for longer than bodyTimeoutMs 300), and still gets the body whole', async (t) => {
  // 4 MiB fits in the kernel's loopback buffers, so the proxy is never held back by it; a large
  // body and a stall make sure the proxy stops reading the upstream for longer than the timeout.
  const zk = await zooKeeper();
  const payload = randomBytes(32 * 1024 * 1024);
  const { upstream, stats } = await bulkUpstream(payload);
  t.teardown(() => upstream.close());
  const proxy = await proxyTo(zk, t, upstream.port, { bodyTimeoutMs: 300 });

  const read = await slowRead(proxy.url + '/bulk/blob', { perTick: 100_000, stallAfter: 1_000_000, stallMs: 1_500 });
  t.log(`read ${read.bytes} bytes in ${read.ms.toFixed(0)} ms; the upstream was held back ${stats.longestBlockedMs.toFixed(0)} ms at most`);
  t.is(read.status, 200);
  t.is(read.bytes, payload.length);
  t.is(read.digest, createHash('sha256').update(payload).digest('hex'));
  t.true(
    stats.longestBlockedMs > 900,
    `the proxy held the upstream back for more than 3 body timeouts (${stats.longestBlockedMs.toFixed(0)} ms)`,
  );
});

test('a service node that vanishes and comes back, three times: unknown or unavailable while gone, routed to the new instance once back', async (t) => {
  const zk = await zooKeeper();
  const [a, b] = await Promise.all([startUpstream('a'), startUpstream('b')]);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const proxy = await startProxy(zk.connectString);
  t.teardown(() => proxy.close());
  const raw = await rawClient(zk.connectString);
  t.teardown(() => raw.close());
  const dir = `${proxy.basePath}/phoenix`;
  const data = (port: number) => Buffer.from(JSON.stringify({ protocol: 'http', host: '127.0.0.1', port, api: '' }));
  const routedTo = async (name: string) => {
    const reply = await request(proxy.url + '/phoenix/x');
    return reply.status === 200 && reply.headers['x-upstream'] === name;
  };

  await raw.mkdirp(dir);
  let instance = await raw.create(`${dir}/phoenix`, data(a.port), 'ephemeral_sequential');
  await eventually(() => routedTo('a'), { message: 'routed at first' });
  for (let round = 1; round <= 3; round++) {
    await raw.remove(instance);
    await raw.remove(dir);
    const gone = await eventually(
      async () => {
        const reply = await request(proxy.url + '/phoenix/x');
        return reply.status === 404 || reply.status === 503 ? reply : undefined;
      },
      { message: `round ${round}: unavailable while gone` },
    );
    t.true(['PUTTU_UNKNOWN_SERVICE', 'PUTTU_NO_INSTANCES'].includes(gone.json().error.code), `round ${round}: ${gone.json().error.code}`);
    // Back, each time on the other upstream: the proxy must follow the new instance, not remember the old.
    const next = round % 2 === 1 ? b : a;
    await raw.mkdirp(dir);
    instance = await raw.create(`${dir}/phoenix`, data(next.port), 'ephemeral_sequential');
    await eventually(() => routedTo(next.name), { message: `round ${round}: routed again to ${next.name}` });
  }
  t.deepEqual(
    proxy.app.registry!.get('phoenix')!.instances.map((i) => i.id),
    [lastSegment(instance)],
    'exactly the last instance',
  );
});

test('a service node deleted and re-created at once (no pause between), three times: the proxy ends on the new instance', async (t) => {
  const zk = await zooKeeper();
  const [a, b] = await Promise.all([startUpstream('a'), startUpstream('b')]);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const proxy = await startProxy(zk.connectString);
  t.teardown(() => proxy.close());
  const raw = await rawClient(zk.connectString);
  t.teardown(() => raw.close());
  const dir = `${proxy.basePath}/flicker`;
  const data = (port: number) => Buffer.from(JSON.stringify({ protocol: 'http', host: '127.0.0.1', port, api: '' }));

  await raw.mkdirp(dir);
  let instance = await raw.create(`${dir}/flicker`, data(a.port), 'ephemeral_sequential');
  await eventually(() => proxy.app.registry!.get('flicker')?.instances[0]?.port === a.port, { message: 'first instance seen' });
  for (let round = 1; round <= 3; round++) {
    const next = round % 2 === 1 ? b : a;
    await raw.remove(instance);
    await raw.remove(dir);
    await raw.mkdirp(dir);
    instance = await raw.create(`${dir}/flicker`, data(next.port), 'ephemeral_sequential');
    await eventually(
      () =>
        proxy.app
          .registry!.get('flicker')
          ?.instances.map((i) => i.id)
          .join() === lastSegment(instance),
      {
        message: `round ${round}: the view holds exactly the new instance`,
      },
    );
    const reply = await request(proxy.url + '/flicker/x');
    t.is(reply.status, 200);
    t.is(reply.headers['x-upstream'], next.name);
  }
});
