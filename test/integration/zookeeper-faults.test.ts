/**
 * ZooKeeper faults seen by a running proxy: ZooKeeper absent at start, connection lost with the
 * session alive, forced session expiry, churn, and a 3-node ensemble losing its leader and then the
 * member the proxy is connected to, all under load. Requests never wait on ZooKeeper, so none fail.
 */
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect } from '../../proxy/index.js';
import { fourLetter, freePort, ZooKeeperServer } from '../../proxy/dev/local-zookeeper.js';
import { eventually } from '../helpers/eventually.js';
import { startLoad } from '../helpers/load.js';
import { startProxy, startProxyUnsynced } from '../helpers/proxy.js';
import { startRelay } from '../helpers/relay.js';
import { request, startUpstream } from '../helpers/upstreams.js';
import { expireSession, rawClient, startEnsemble, startZooKeeper, type TestZooKeeper } from '../helpers/zookeeper.js';

let zk: TestZooKeeper;

test.before(async () => {
  zk = await startZooKeeper();
});
test.after.always(async () => {
  await zk?.stop();
});

const metric = async (adminUrl: string, pattern: RegExp) => pattern.exec((await request(adminUrl + '/metrics')).body.toString());

test('ZooKeeper unreachable at start: not ready and 503 with the reason; once it appears the proxy syncs and serves', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'puttu-zk-late-'));
  const late = new ZooKeeperServer({ dir, clientPort: await freePort() });
  t.teardown(async () => {
    await late.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const proxy = await startProxyUnsynced(late.connectString);
  t.teardown(() => proxy.close());

  const notReady = await request(proxy.adminUrl + '/readyz');
  t.is(notReady.status, 503);
  t.false(notReady.json().ready);
  t.regex(notReady.json().reason, /not yet read from ZooKeeper/);
  const early = await request(proxy.url + '/anything/x');
  t.is(early.status, 503);
  t.is(early.json().error.code, 'PUTTU_NOT_READY');

  await late.start();
  const upAt = Date.now();
  const upstream = await startUpstream('late');
  t.teardown(() => upstream.close());
  const lib = connect(late.connectString, proxy.basePath);
  t.teardown(() => lib.close());
  await lib.register('late', { host: '127.0.0.1', port: upstream.port });
  await eventually(async () => (await request(proxy.adminUrl + '/readyz')).status === 200, { timeoutMs: 30_000, message: 'ready' });
  t.log(`ready ${Date.now() - upAt} ms after ZooKeeper came up`);
  await eventually(async () => (await request(proxy.url + '/late/x')).status === 200, { timeoutMs: 10_000, message: 'routed' });
});

test('connection lost, session alive: the last snapshot keeps serving, staleness shows, and changes made meanwhile arrive on reconnect', async (t) => {
  const relay = await startRelay(zk.server.options.clientPort);
  t.teardown(() => relay.close());
  const proxy = await startProxy(relay.address, { sessionTimeoutMs: 10_000 });
  t.teardown(() => proxy.close());
  const [a, b] = await Promise.all([startUpstream('a'), startUpstream('b')]);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const lib = connect(zk.connectString, proxy.basePath);
  t.teardown(() => lib.close());
  const regA = await lib.register('cut', { host: '127.0.0.1', port: a.port });
  await eventually(() => proxy.app.registry!.get('cut')?.instances.length === 1);

  relay.mode = 'refuse';
  await eventually(() => proxy.app.zk!.state !== 'connected', { message: 'proxy noticed the cut' });
  // Served from the snapshot while ZooKeeper is out of reach.
  for (let i = 0; i < 10; i++) t.is((await request(proxy.url + '/cut/x')).status, 200);
  t.truthy(await metric(proxy.adminUrl, /puttu_zookeeper_connection_state\{state="(disconnected|connecting)"\} 1/));
  await eventually(async () => Number((await metric(proxy.adminUrl, /puttu_registry_staleness_seconds ([\d.]+)/))?.[1]) > 0.2, {
    message: 'staleness grows',
  });

  // Changes during the outage: a leaves, b arrives, a new service appears.
  await regA.unregister();
  await lib.register('cut', { host: '127.0.0.1', port: b.port });
  await lib.register('born-in-outage', { host: '127.0.0.1', port: b.port });
  relay.mode = 'pass';
  const backAt = Date.now();
  await eventually(
    () =>
      proxy.app
        .registry!.get('cut')
        ?.instances.map((i) => i.port)
        .join() === String(b.port),
    { timeoutMs: 15_000, message: 'resynced cut' },
  );
  t.log(`outage changes visible ${Date.now() - backAt} ms after the connection came back`);
  await eventually(() => proxy.app.registry!.get('born-in-outage')?.instances.length === 1, { message: 'resynced new service' });
  t.is(proxy.app.zk!.generation, 1, 'the same session (reconnected, not expired)');
  await eventually(async () => Number((await metric(proxy.adminUrl, /puttu_registry_staleness_seconds ([\d.]+)/))?.[1]) === 0, {
    message: 'fresh again',
  });
});

test('forced session expiry of the proxy: a new session, a full relist, and re-armed watches', async (t) => {
  const proxy = await startProxy(zk.connectString, { sessionTimeoutMs: 4_000 });
  t.teardown(() => proxy.close());
  const [a, b] = await Promise.all([startUpstream('a'), startUpstream('b')]);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const lib = connect(zk.connectString, proxy.basePath);
  t.teardown(() => lib.close());
  await lib.register('exp', { host: '127.0.0.1', port: a.port });
  await eventually(() => proxy.app.registry!.get('exp')?.instances.length === 1);

  const expiredAt = Date.now();
  await expireSession(zk.connectString, proxy.app.zk!);
  await eventually(() => proxy.app.zk!.generation === 2 && proxy.app.zk!.state === 'connected', {
    timeoutMs: 20_000,
    message: 'new session',
  });
  t.log(`new session ${Date.now() - expiredAt} ms after the expiry was forced`);
  t.is((await request(proxy.url + '/exp/x')).status, 200);
  // Watches were re-armed on the new session: a change after the expiry is seen.
  await lib.register('exp', { host: '127.0.0.1', port: b.port });
  await eventually(() => proxy.app.registry!.get('exp')?.instances.length === 2, { message: 'change after expiry seen' });
});

test('churn: after hundreds of rapid creates and deletes the view equals getChildren and watchers stay bounded', async (t) => {
  const proxy = await startProxy(zk.connectString);
  t.teardown(() => proxy.close());
  const raw = await rawClient(zk.connectString);
  t.teardown(() => raw.close());
  const services = ['c0', 'c1', 'c2', 'c3', 'c4'];
  for (const s of services) await raw.mkdirp(`${proxy.basePath}/${s}`);
  const created: string[] = [];
  const ops: Array<Promise<unknown>> = [];
  for (let i = 0; i < 400; i++) {
    const s = services[i % services.length]!;
    const data = Buffer.from(JSON.stringify({ protocol: 'http', host: '127.0.0.1', port: 10_000 + i, api: '' }));
    ops.push(raw.create(`${proxy.basePath}/${s}/${s}`, data, 'ephemeral_sequential').then((p) => created.push(p)));
    if (i % 3 === 2) ops.push(Promise.all(ops.slice(-3)).then(() => raw.remove(created.shift()!)));
  }
  await Promise.all(ops);
  for (const s of services) {
    const truth = (await raw.getChildren(`${proxy.basePath}/${s}`)).sort();
    await eventually(
      () =>
        proxy.app
          .registry!.get(s)!
          .instances.map((i) => i.id)
          .join() === truth.join(),
      { message: `view of ${s} settled` },
    );
  }
  // Watch count on the server: one child watch per service path plus one data watch per live node.
  const wchc = await fourLetter(zk.server.options.clientPort, 'wchc');
  const live = (await Promise.all(services.map((s) => raw.getChildren(`${proxy.basePath}/${s}`)))).flat().length;
  const ours = wchc.split('\n').filter((l) => l.includes(proxy.basePath)).length;
  t.log(`live nodes ${live}, watched paths under this base ${ours}`);
  t.true(ours <= live + services.length + 1, `watched paths ${ours} bounded by live nodes ${live} + services`);
});

test('3-node ensemble under load: kill the leader, then the member the proxy uses: zero failed requests', async (t) => {
  const ensemble = await startEnsemble(3);
  t.teardown(() => ensemble.stop());
  const proxy = await startProxy(ensemble.connectString, { sessionTimeoutMs: 6_000 });
  t.teardown(() => proxy.close());
  const ups = await Promise.all(['a', 'b'].map((n) => startUpstream(n)));
  t.teardown(() => Promise.all(ups.map((u) => u.close())));
  const lib = connect(ensemble.connectString, proxy.basePath, { sessionTimeoutMs: 6_000 });
  t.teardown(() => lib.close());
  for (const u of ups) await lib.register('ens', { host: '127.0.0.1', port: u.port });
  await eventually(() => proxy.app.registry!.get('ens')?.instances.length === 2);

  const load = startLoad(proxy.url + '/ens/x', { concurrency: 6, maxMs: 90_000 });
  await eventually(() => load.sent > 300);
  const leader = await eventually(() => ensemble.leader(), { message: 'a leader' });
  const killedAt = Date.now();
  await leader.stop('SIGKILL');
  await eventually(() => ensemble.leader(), { timeoutMs: 30_000, message: 'a new leader' });
  await eventually(() => proxy.app.zk!.state === 'connected', { timeoutMs: 30_000 });
  t.log(`leader killed: new leader and proxy connected after ${Date.now() - killedAt} ms`);
  // The old leader rejoins, so killing one more member leaves a quorum (2 of 3) to fail over to.
  await leader.start();
  // The member the proxy is connected to: the one whose `cons` lists the proxy's session id.
  const sid = '0x' + proxy.app.zk!.sessionCredentials().id.toString('hex').replace(/^0+/, '');
  const members = ensemble.servers.filter((s) => s.running);
  const connectedTo = await eventually(
    async () => {
      for (const s of members) if ((await fourLetter(s.options.clientPort, 'cons')).includes(`sid=${sid},`)) return s;
      return undefined;
    },
    { message: `the member holding session ${sid}` },
  );
  const transitions: Array<[number, string]> = [];
  proxy.app.zk!.on('state', (s) => void transitions.push([Date.now(), s]));
  const memberKilledAt = Date.now();
  await connectedTo.stop('SIGKILL');
  const at = load.sent;
  await eventually(() => load.sent > at + 1_000, { timeoutMs: 30_000 });
  const back = await eventually(() => transitions.find(([when, s]) => when > memberKilledAt && s === 'connected'), {
    timeoutMs: 20_000,
    message: `the proxy reconnected to another member (states: ${JSON.stringify(transitions)})`,
  });
  const result = await load.stop();
  t.is(proxy.app.zk!.generation, 1, 'the same session');
  t.log(`member in use killed: reconnected after ${back![0] - memberKilledAt} ms, same session`);
  t.log(`sent ${result.sent}, failed ${result.failed}`);
  t.is(result.failed, 0, JSON.stringify(result.failures));
});
