import test, { type ExecutionContext } from 'ava';
import { randomUUID } from 'node:crypto';
import { systemClock } from '../../proxy/clock.js';
import { fourLetter } from '../../proxy/dev/local-zookeeper.js';
import { connect, NoEndpointError, type ConnectOptions, type Endpoint, type Puttu } from '../../proxy/index.js';
import { createLogger, type Logger } from '../../proxy/logger.js';
import { lastSegment } from '../../proxy/registry/paths.js';
import { Registrar, type Registration } from '../../proxy/registry/registrar.js';
import { Registry } from '../../proxy/registry/registry.js';
import { kZkClient, ZkClient, type ConnectionState } from '../../proxy/registry/zk-client.js';
import { eventually, within } from '../helpers/eventually.js';
import { expireSession, rawClient, startZooKeeper, type TestZooKeeper } from '../helpers/zookeeper.js';

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

const newBase = () => `/t-${randomUUID()}`;

/** A library client closed when the test ends. */
function open(t: ExecutionContext, base: string, options: ConnectOptions = {}, connectString = zk.connectString): Puttu {
  const puttu = connect(connectString, base, options);
  t.teardown(() => puttu.close());
  return puttu;
}

/** A logger that keeps its records, so tests can count what happened. */
function recordingLogger(): Logger & { records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const logger = createLogger({ level: 'debug', write: (line) => records.push(JSON.parse(line) as Record<string, unknown>) });
  return Object.assign(logger, { records });
}

const ids = (endpoints: readonly Endpoint[]) => endpoints.map((e) => e.id);

test('register → another client gets and lists it; the znode is EPHEMERAL_SEQUENTIAL with our JSON; close → gone', async (t) => {
  const base = `${newBase()}/deep/er`; // none of it exists yet
  const a = open(t, base);
  const b = open(t, base);
  const reg = await a.register('warehouse', { host: '10.0.0.5', port: 10001, api: '/warehouse/v1' });

  t.regex(reg.path, new RegExp(`^${base}/warehouse/warehouse\\d{10}$`));
  t.true(await raw.exists(`${base}/warehouse`), 'missing parents were created');
  // The server lists every session's ephemeral nodes: ours is one of them.
  t.true((await fourLetter(zk.server.options.clientPort, 'dump')).includes(reg.path), 'the node is ephemeral');
  const data = JSON.parse((await raw.getData(reg.path)).toString('utf8')) as Record<string, unknown>;
  t.like(data, { protocol: 'http', host: '10.0.0.5', port: 10001, api: '/warehouse/v1', id: reg.id });

  const expected: Endpoint = {
    id: lastSegment(reg.path),
    service: 'warehouse',
    protocol: 'http',
    host: '10.0.0.5',
    port: 10001,
    api: '/warehouse/v1',
    url: 'http://10.0.0.5:10001/warehouse/v1',
  };
  t.deepEqual(await b.get('warehouse'), expected);
  t.deepEqual(await b.list('warehouse'), [expected]);
  t.is(b.state, 'connected');

  await a.close();
  t.false(await raw.exists(reg.path));
  await eventually(async () => (await b.list('warehouse')).length === 0, { message: 'instance gone for the other client' });
  await t.throwsAsync(b.get('warehouse'), { instanceOf: NoEndpointError });
});

test('a closed handle rejects get, list and register with PUTTU_CLOSED, also for a service it had cached', async (t) => {
  // Regression: get() of a cached service kept answering from a cache that no longer followed
  // ZooKeeper, while an uncached one rejected.
  const base = newBase();
  const a = open(t, base);
  await a.register('svc', { host: '10.0.0.5', port: 80 });
  t.is((await a.get('svc')).host, '10.0.0.5');
  await a.close();
  t.is(a.state, 'closed');
  for (const call of [
    () => a.get('svc'),
    () => a.list('svc'),
    () => a.get('other'),
    () => a.register('svc', { host: '10.0.0.5', port: 80 }),
  ]) {
    await t.throwsAsync(call(), { code: 'PUTTU_CLOSED' } as never);
  }
  await a.close(); // idempotent
});

test('three instances: get() picks by the injected random over sorted ids; Math.random reaches every one', async (t) => {
  const base = newBase();
  const a = open(t, base);
  const regs = [];
  for (const host of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) regs.push(await a.register('billing', { host, port: 9000 }));
  const sortedIds = regs.map((r) => lastSegment(r.path)).sort();

  const sequence = [0, 0.4, 0.8];
  let draw = 0;
  const pinned = open(t, base, { random: () => sequence[draw++ % sequence.length]! });
  await eventually(async () => (await pinned.list('billing')).length === 3, { message: 'three instances listed' });
  const picked = [await pinned.get('billing'), await pinned.get('billing'), await pinned.get('billing')];
  t.deepEqual(ids(picked), sortedIds);
  t.deepEqual(
    picked.map((e) => e.host),
    ['10.0.0.1', '10.0.0.2', '10.0.0.3'],
  );

  // With Math.random, each draw misses a given instance with probability 2/3, so one of the three
  // is never picked in 3000 draws with probability at most 3 · (2/3)^3000 ≈ 10^-527.8: if this
  // fails, get() is not choosing among all instances.
  const free = open(t, base);
  const counts = new Map<string, number>();
  for (let i = 0; i < 3000; i++) {
    const e = await free.get('billing');
    counts.set(e.id, (counts.get(e.id) ?? 0) + 1);
  }
  t.deepEqual([...counts.keys()].sort(), sortedIds);
});

test('znodes in the `ip` and URL-string formats are served; a malformed one is skipped without breaking its siblings', async (t) => {
  const base = newBase();
  const dir = `${base}/billing`;
  await raw.mkdirp(dir);
  await raw.create(`${dir}/a-ip`, Buffer.from('{"ip":"10.0.0.7","port":9000,"api":"/billing"}'), 'persistent');
  await raw.create(`${dir}/b-url`, Buffer.from('https://10.0.0.8:9443/billing/v2'), 'persistent');
  await raw.create(`${dir}/c-bad`, Buffer.from('this is no endpoint'), 'persistent');
  await raw.create(`${dir}/d-quoted`, Buffer.from('"http://[fd00::9]:9000"'), 'persistent');
  await raw.create(`${dir}/e-port0`, Buffer.from('{"host":"10.0.0.10","port":0}'), 'persistent');

  const b = open(t, base);
  t.deepEqual(
    (await b.list('billing')).map((e) => [e.id, e.url]),
    [
      ['a-ip', 'http://10.0.0.7:9000/billing'],
      ['b-url', 'https://10.0.0.8:9443/billing/v2'],
      ['d-quoted', 'http://[fd00::9]:9000'],
    ],
  );
  t.is((await b.get('billing')).service, 'billing');

  // The service keeps following changes: a repaired node joins, a new sibling appears.
  await raw.setData(`${dir}/c-bad`, Buffer.from('{"host":"10.0.0.11","port":9001}'));
  await raw.create(`${dir}/f-new`, Buffer.from('{"host":"10.0.0.12","port":9002}'), 'persistent');
  await eventually(async () => ids(await b.list('billing')).join() === 'a-ip,b-url,c-bad,d-quoted,f-new', {
    message: 'repaired and new nodes listed',
  });
  t.pass();
});

test('invalid registrations reject with PUTTU_INVALID_REGISTRATION and write nothing', async (t) => {
  const base = newBase();
  const a = open(t, base);
  const cases: Array<[string, Parameters<Puttu['register']>[1], RegExp]> = [
    ['svc', { host: '10.0.0.5', port: 0 }, /port/],
    ['svc', { host: '10.0.0.5', port: 65536 }, /port/],
    ['svc', { host: '10.0.0.5', port: 80, protocol: 'ftp' as never }, /protocol/],
    ['svc', { host: '10.0.0.5', port: 80, api: 'x' }, /api/],
    ['svc', { host: '10.0.0.5', port: 80, api: '/a/../b' }, /api/],
    ['svc', { host: 'not a host!', port: 80 }, /host/],
    ['a/b', { host: '10.0.0.5', port: 80 }, /service name/],
    ['..', { host: '10.0.0.5', port: 80 }, /service name/],
  ];
  for (const [service, data, message] of cases) {
    await t.throwsAsync(
      a.register(service, data),
      { code: 'PUTTU_INVALID_REGISTRATION', message } as never,
      `${service} ${JSON.stringify(data)}`,
    );
  }
  t.false(await raw.exists(base), 'not even the base path was created');
});

test('an unknown service: get() rejects with NoEndpointError, list() is empty; it appears once registered', async (t) => {
  const base = newBase();
  const b = open(t, base);
  const error = await t.throwsAsync(b.get('nobody'), { instanceOf: NoEndpointError });
  t.is(error?.code, 'PUTTU_NO_ENDPOINT');
  t.is((error as NoEndpointError).service, 'nobody');
  t.deepEqual(await b.list('nobody'), []);
  await t.throwsAsync(b.get('bad/name'), { code: 'PUTTU_INVALID_REGISTRATION' } as never);

  // The service node did not exist: the watch on its absence brings the new instance in.
  const a = open(t, base);
  const reg = await a.register('nobody', { host: '10.0.0.5', port: 80 });
  const endpoint = await eventually(() => b.get('nobody').catch(() => undefined), { message: 'new service seen' });
  t.is(endpoint.id, lastSegment(reg.path));
});

test('a service whose instances all leave: get() rejects with NoEndpointError again', async (t) => {
  const base = newBase();
  const a = open(t, base);
  const b = open(t, base);
  const one = await a.register('svc', { host: '10.0.0.1', port: 80 });
  const two = await a.register('svc', { host: '10.0.0.2', port: 80 });
  t.is((await b.list('svc')).length, 2);
  await one.unregister();
  await eventually(async () => ids(await b.list('svc')).join() === lastSegment(two.path), { message: 'one left' });
  await two.unregister();
  await two.unregister(); // idempotent
  await eventually(
    () =>
      b.get('svc').then(
        () => false,
        (e: unknown) => e instanceof NoEndpointError,
      ),
    { message: 'NoEndpointError once all left' },
  );
  t.deepEqual(await b.list('svc'), []);
  t.deepEqual(await raw.getChildren(`${base}/svc`), []);
});

test('a data change on an instance node is picked up', async (t) => {
  const base = newBase();
  const a = open(t, base);
  const b = open(t, base);
  const reg = await a.register('svc', { host: '10.0.0.5', port: 8080 });
  t.is((await b.get('svc')).port, 8080);
  await raw.setData(reg.path, Buffer.from(JSON.stringify({ protocol: 'https', host: '10.0.0.6', port: 8443, api: '/v2' })));
  const moved = await eventually(
    async () => {
      const e = await b.get('svc');
      return e.port === 8443 ? e : undefined;
    },
    { message: 'new data seen' },
  );
  t.is(moved.url, 'https://10.0.0.6:8443/v2');
  t.is(moved.id, lastSegment(reg.path), 'the same instance, new data');
});

test('get() and list() are served from the cache: they keep answering with ZooKeeper stopped', async (t) => {
  const own = await startZooKeeper();
  t.teardown(() => own.stop());
  const a = open(t, '/svc-cache', { opTimeoutMs: 500 }, own.connectString);
  const b = open(t, '/svc-cache', { opTimeoutMs: 500 }, own.connectString);
  await a.register('svc', { host: '10.0.0.5', port: 8080 });
  const before = await b.get('svc');

  await own.server.stop();
  await eventually(() => b.state !== 'connected', { message: 'client noticed ZooKeeper is gone' });
  t.deepEqual(await b.get('svc'), before);
  t.deepEqual(await b.list('svc'), [before]);
  // A service never asked for has no cache: it needs ZooKeeper and says so.
  await t.throwsAsync(open(t, '/svc-cache', { connectTimeoutMs: 300 }, own.connectString).get('other'), {
    code: 'PUTTU_ZK_UNAVAILABLE',
  } as never);

  // close() settles with the server gone, even with a registration left to remove.
  t.not(await within(Promise.all([a.close(), b.close()]), 5_000), 'pending');
  t.is(a.state, 'closed');
});

test('session expiry: the registration is re-created exactly once, and the expired client re-arms its watches', async (t) => {
  const base = newBase();
  const logger = recordingLogger();
  const a = open(t, base, { sessionTimeoutMs: 2_000, logger });
  const observer = open(t, base);
  const reg = await a.register('svc', { host: '10.0.0.5', port: 8080 });
  const oldPath = reg.path;
  t.deepEqual(ids(await a.list('svc')), [lastSegment(oldPath)], 'the expired client watches the service too');
  t.deepEqual(ids(await observer.list('svc')), [lastSegment(oldPath)]);

  const victim = (a as unknown as Record<typeof kZkClient, ZkClient>)[kZkClient];
  t.is(victim.generation, 1);
  await expireSession(zk.connectString, victim);

  await eventually(() => reg.path !== oldPath, { message: 'registration moved to a new znode' });
  t.regex(reg.path, new RegExp(`^${base}/svc/svc\\d{10}$`));
  t.is(victim.generation, 2);
  t.false(await raw.exists(oldPath), 'the old ephemeral node went with the old session');
  t.deepEqual(await raw.getChildren(`${base}/svc`), [lastSegment(reg.path)], 'exactly one node');
  await eventually(async () => ids(await observer.list('svc')).join() === lastSegment(reg.path), { message: 'observer sees the new node' });
  t.is((await observer.get('svc')).id, lastSegment(reg.path));
  // The expired client's cache has read on the new session (and so re-armed its watch).
  await eventually(async () => ids(await a.list('svc')).join() === lastSegment(reg.path), { message: 'expired client sees the new node' });

  // A third client registers after the expiry: only a re-armed watch tells the expired client.
  const c = open(t, base);
  const third = await c.register('svc', { host: '10.0.0.6', port: 8080 });
  const both = [lastSegment(reg.path), lastSegment(third.path)].sort().join();
  await eventually(async () => ids(await a.list('svc')).join() === both, { message: "expired client sees the third client's instance" });

  // Still exactly one node carries this registration, and it was written once on the new session.
  const children = await raw.getChildren(`${base}/svc`);
  t.is(children.length, 2);
  const owners = await Promise.all(
    children.map(async (child) => (JSON.parse((await raw.getData(`${base}/svc/${child}`)).toString()) as { id: string }).id),
  );
  t.is(owners.filter((id) => id === reg.id).length, 1);
  t.is(logger.records.filter((r) => r.msg === 're-registered on the new session').length, 1);
});

// The same guarantees through the registry's own classes, as the proxy composes them (mode 'all').

interface Parts {
  zk: ZkClient;
  registrar: Registrar;
  registry: Registry;
  logger: ReturnType<typeof recordingLogger>;
  states: ConnectionState[];
}

function parts(t: ExecutionContext, connectString: string, base: string, sessionTimeoutMs = 2_000): Parts {
  const logger = recordingLogger();
  const zkClient = new ZkClient({ connectString, logger, sessionTimeoutMs, opTimeoutMs: 5_000 });
  const states: ConnectionState[] = [];
  zkClient.on('state', (s) => states.push(s));
  const registrar = new Registrar({ zk: zkClient, basePath: base, logger, retryMs: 100 });
  const registry = new Registry({ zk: zkClient, basePath: base, logger, clock: systemClock, mode: 'all', retryMs: 100 });
  registry.start();
  t.teardown(async () => {
    await registrar.close();
    registry.close();
    await zkClient.close();
  });
  return { zk: zkClient, registrar, registry, logger, states };
}

const endpoint = (host: string) => ({ protocol: 'http' as const, host, port: 8080, api: '' });

/** The ids of the registrations whose node data carries `reg.id`, under its service. */
async function nodesOf(reg: Registration, base: string): Promise<string[]> {
  const dir = `${base}/${reg.service}`;
  const children = await raw.getChildren(dir);
  const owners = await Promise.all(
    children.map(async (c) => (JSON.parse((await raw.getData(`${dir}/${c}`)).toString()) as { id?: string }).id),
  );
  return children.filter((_, i) => owners[i] === reg.id);
}

test('classes: after a session expiry the Registrar writes once and the Registry re-arms the service list and services', async (t) => {
  const base = newBase();
  const p = parts(t, zk.connectString, base);
  p.zk.connect();
  await p.zk.whenConnected(15_000);
  const reg = await p.registrar.register('svc', endpoint('10.0.0.5'));
  const oldPath = reg.path;
  await eventually(() => p.registry.get('svc')?.instances.length === 1, { message: 'registry sees the registration' });
  await p.registry.whenSynced();

  await expireSession(zk.connectString, p.zk);
  await eventually(() => reg.path !== oldPath, { message: 're-registered' });
  await p.registrar.idle();
  t.is(p.zk.generation, 2);
  t.true(p.states.includes('expired'));
  t.deepEqual(await raw.getChildren(`${base}/svc`), [lastSegment(reg.path)]);
  await eventually(
    () =>
      p.registry
        .get('svc')
        ?.instances.map((i) => i.id)
        .join() === lastSegment(reg.path),
    { message: 'registry follows the move' },
  );

  // Written after the expiry by someone else: a new instance and a new service. Seen only through
  // watches armed on the new session (the base path's child watch, the service's child watch).
  const other = open(t, base);
  const late = await other.register('late', { host: '10.0.0.7', port: 80 });
  const sibling = await other.register('svc', { host: '10.0.0.6', port: 80 });
  await eventually(() => p.registry.get('late')?.instances[0]?.id === lastSegment(late.path), { message: 'new service seen' });
  await eventually(() => p.registry.get('svc')?.instances.length === 2, { message: 'new sibling seen' });
  t.true(p.registry.get('svc')!.instances.some((i) => i.id === lastSegment(sibling.path)));
  t.deepEqual(await nodesOf(reg, base), [lastSegment(reg.path)]);
  t.is(p.logger.records.filter((r) => r.msg === 're-registered on the new session').length, 1);
});

test('classes: a registration made while the first session is being established is written once', async (t) => {
  // Regression: the write recorded the generation seen when it started (0, no session yet), so
  // the first 'session' event deleted and re-created the node just after register() resolved.
  const base = newBase();
  const p = parts(t, zk.connectString, base);
  p.zk.connect();
  t.is(p.zk.state, 'connecting');
  const reg = await p.registrar.register('svc', endpoint('10.0.0.5'));
  const path = reg.path;
  await p.registrar.idle();
  t.is(reg.path, path);
  t.deepEqual(await raw.getChildren(`${base}/svc`), [lastSegment(path)]);
  t.false(
    p.logger.records.some((r) => r.msg === 're-registered on the new session' || r.msg === 'deleted a stale node of this registration'),
  );
});

test('classes: cut off longer than the session timeout, the client starts a new session and leaves exactly one node', async (t) => {
  const own = await startZooKeeper();
  t.teardown(() => own.stop());
  const base = newBase();
  const p = parts(t, own.connectString, base);
  p.zk.connect();
  await p.zk.whenConnected(15_000);
  const reg = await p.registrar.register('svc', endpoint('10.0.0.5'));
  const oldPath = reg.path;
  const oldSession = BigInt(`0x${p.zk.sessionCredentials().id.toString('hex')}`);

  await own.server.stop();
  // The client gives the session up on its own after 2 s without a server, as the server would.
  await eventually(() => p.states.includes('expired'), { message: 'client gave its session up' });
  await own.server.start();
  // The restarted server restored the old session, which lives until its own timeout: the new
  // session deletes the node it left (it carries this registration's id) before writing again.
  await eventually(() => p.zk.generation === 2 && p.zk.state === 'connected', { message: 'new session' });
  await eventually(() => reg.path !== oldPath, { message: 're-registered' });
  await p.registrar.idle();

  const observer = await rawClient(own.connectString);
  t.teardown(() => observer.close());
  const dir = `${base}/svc`;
  t.deepEqual(await observer.getChildren(dir), [lastSegment(reg.path)], 'one node, right after the new session wrote');
  // Once the server has expired the old session, still exactly that one.
  const sessions = async () => (await fourLetter(own.server.options.clientPort, 'dump')).match(/0x[0-9a-f]+/g)?.map((h) => BigInt(h)) ?? [];
  await eventually(async () => !(await sessions()).includes(oldSession), {
    timeoutMs: 15_000,
    message: 'old session expired on the server',
  });
  t.deepEqual(await observer.getChildren(dir), [lastSegment(reg.path)]);
  await eventually(
    () =>
      p.registry
        .get('svc')
        ?.instances.map((i) => i.id)
        .join() === lastSegment(reg.path),
    { message: 'registry follows' },
  );
});
