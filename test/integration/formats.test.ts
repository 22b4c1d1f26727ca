/**
 * Every registry format, read from one real ZooKeeper tree by a real proxy: the fixtures of
 * test/fixtures/registry written as znodes (each format in a service of its own, and mixed in
 * shared services), routed to real upstreams on 127.0.0.1; inactive and malformed ones isolated
 * (a trap upstream they all point at must never see a request) and counted. Then: Curator's
 * container node reaped by ZooKeeper and re-created, state changes followed, and the library's
 * canonical JSON and DRAINING shutdown.
 */
import test, { type ExecutionContext } from 'ava';
import { randomUUID } from 'node:crypto';
import { connect } from '../../proxy/index.js';
import type { RejectionKind, ServiceSnapshot } from '../../proxy/registry/service-cache.js';
import { lastSegment } from '../../proxy/registry/paths.js';
import { kZkClient, type ZkClient } from '../../proxy/registry/zk-client.js';
import { fourLetter } from '../../proxy/dev/local-zookeeper.js';
import { createContainerNode } from '../helpers/container-node.js';
import { eventually } from '../helpers/eventually.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request, startUpstream, type Upstream } from '../helpers/upstreams.js';
import { expireSession, rawClient, startZooKeeper, type TestZooKeeper } from '../helpers/zookeeper.js';
import { loadFixtures, znodeData, type Fixture, type FixtureFile } from '../fixtures/registry/fixtures.js';

// ZooKeeper reaps empty container nodes every znode.container.checkIntervalMs (default 60 s), a
// JVM system property only (zoo.cfg cannot set it); the JVM reads JAVA_TOOL_OPTIONS. ava runs each
// test file in a process of its own (workerThreads: false), so only this file's ZooKeeper gets it.
process.env.JAVA_TOOL_OPTIONS = [process.env.JAVA_TOOL_OPTIONS, '-Dznode.container.checkIntervalMs=100'].filter(Boolean).join(' ');

let zk: TestZooKeeper;
test.before(async () => {
  zk = await startZooKeeper();
});
test.after.always(async () => {
  await zk?.stop();
});

const files = loadFixtures();
const byFormat = new Map(files.map((f) => [f.format, f]));

/** A round-robin proxy: 2N requests reach each of N routable instances exactly twice. */
async function roundRobinProxy(t: ExecutionContext): Promise<TestProxy> {
  const proxy = await startProxy(zk.connectString, { balancer: 'round-robin' });
  t.teardown(() => proxy.close());
  return proxy;
}

async function raw(t: ExecutionContext): Promise<ZkClient> {
  const client = await rawClient(zk.connectString);
  t.teardown(() => client.close());
  return client;
}

async function upstream(t: ExecutionContext, name: string): Promise<Upstream> {
  const u = await startUpstream(name);
  t.teardown(() => u.close());
  return u;
}

/** Writes a fixture the way its format's writers name their nodes; returns the node's name. */
async function writeFixture(client: ZkClient, dir: string, file: FixtureFile, fixture: Fixture, port: number): Promise<string> {
  const data = znodeData(fixture, port);
  const path =
    file.node.kind === 'uuid'
      ? await client.create(`${dir}/${randomUUID()}`, data, 'ephemeral')
      : await client.create(`${dir}/${file.node.prefix}`, data, 'ephemeral_sequential');
  return lastSegment(path);
}

interface Planned {
  fixture: Fixture;
  file: FixtureFile;
}

interface WrittenNode extends Planned {
  id: string;
  upstream?: Upstream;
}

/** Sends `count` requests to a service; returns the status codes. */
async function hit(proxy: TestProxy, service: string, count: number): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < count; i++) statuses.push((await request(`${proxy.url}/${service}/probe?n=${i}`)).status);
  return statuses;
}

test('every format from one tree, mixed within and across services: routable ones routed, inactive ones listed and never routed, malformed ones isolated and counted', async (t) => {
  const proxy = await roundRobinProxy(t);
  const client = await raw(t);
  const trap = await upstream(t, 'trap');
  const events: Array<{ service: string; id: string; kind: RejectionKind; reason: string }> = [];
  proxy.app.registry!.on('rejected', (service, id, reason, kind) => events.push({ service, id, kind, reason }));

  const plan = new Map<string, Planned[]>();
  const add = (service: string, file: FixtureFile, fixtures: readonly (Fixture | undefined)[]) => {
    const list = plan.get(service) ?? [];
    for (const fixture of fixtures) if (fixture) list.push({ fixture, file });
    plan.set(service, list);
  };
  for (const file of files) {
    add(`f-${file.format}`, file, [...file.routable, ...file.inactive, ...file.malformed]);
    add('mixed', file, [file.routable[0], file.inactive[0], file.malformed[0]]);
    add('broken', file, [file.routable[1], ...file.malformed]);
  }

  const written = new Map<string, WrittenNode[]>();
  for (const [service, planned] of plan) {
    const dir = `${proxy.basePath}/${service}`;
    await client.mkdirp(dir);
    const nodes: WrittenNode[] = [];
    for (const p of planned) {
      const routable = p.fixture.group === 'routable';
      const u = routable ? await upstream(t, `${service}: ${p.fixture.format} ${p.fixture.name}`) : undefined;
      const id = await writeFixture(client, dir, p.file, p.fixture, u?.port ?? trap.port);
      nodes.push({ ...p, id, ...(u && { upstream: u }) });
    }
    written.set(service, nodes);
  }

  for (const [service, nodes] of written) {
    const routable = nodes.filter((n) => n.fixture.group === 'routable');
    const inactive = nodes.filter((n) => n.fixture.group === 'inactive');
    const malformed = nodes.filter((n) => n.fixture.group === 'malformed');
    const snapshot = await eventually(
      () => {
        const s = proxy.app.registry!.get(service);
        return s && s.instances.length === routable.length && s.rejected.length === inactive.length + malformed.length ? s : undefined;
      },
      { message: `${service}: every znode read` },
    );
    checkSnapshot(t, service, snapshot, routable, inactive, malformed);

    // Smooth weighted round robin: over twice the total weight, each instance gets exactly twice its
    // weight (once each for weight 1), under its api.
    const weightOf = (n: WrittenNode) => snapshot.instances.find((i) => i.id === n.id)!.weight ?? 1;
    const statuses = await hit(proxy, service, 2 * routable.reduce((sum, n) => sum + weightOf(n), 0));
    t.deepEqual(
      statuses,
      statuses.map(() => 200),
      `${service}: every request answered by an upstream`,
    );
    for (const n of routable) {
      const instance = snapshot.instances.find((i) => i.id === n.id)!;
      t.is(n.upstream!.seen.length, 2 * weightOf(n), `${service}: ${n.fixture.name} got its share`);
      for (const seen of n.upstream!.seen)
        t.regex(seen.url, new RegExp(`^${instance.api}/probe\\?n=\\d+$`), `${service}: ${n.fixture.name} under its api`);
    }

    const ofService = events.filter((e) => e.service === service);
    t.is(
      ofService.filter((e) => e.kind === 'invalid').length,
      malformed.length,
      `${service}: each malformed znode reported once as invalid`,
    );
    t.is(ofService.filter((e) => e.kind === 'inactive').length, inactive.length, `${service}: each inactive one reported once as inactive`);
    t.is(ofService.filter((e) => e.kind === 'refused').length, 0);
  }
  t.is(trap.seen.length, 0, 'no inactive or malformed znode ever got a request');

  // 'broken' holds every malformed variant and no inactive one: the metric counts exactly them.
  const malformedTotal = files.reduce((sum, f) => sum + f.malformed.length, 0);
  const metrics = (await request(proxy.adminUrl + '/metrics')).body.toString();
  t.regex(metrics, new RegExp(`puttu_registry_invalid_znodes_total\\{service="broken"\\} ${malformedTotal}\\n`));
  t.regex(metrics, new RegExp(`puttu_endpoints\\{service="broken"\\} ${files.length}\\n`));
  t.regex(metrics, new RegExp(`puttu_endpoints\\{service="mixed"\\} ${files.length}\\n`));
});

function checkSnapshot(
  t: ExecutionContext,
  service: string,
  snapshot: ServiceSnapshot,
  routable: WrittenNode[],
  inactive: WrittenNode[],
  malformed: WrittenNode[],
): void {
  t.deepEqual(
    snapshot.instances.map((i) => i.id),
    routable.map((n) => n.id).sort(),
    `${service}: exactly the routable znodes are routed`,
  );
  for (const n of routable) {
    const instance = snapshot.instances.find((i) => i.id === n.id)!;
    t.like(
      instance,
      { format: n.fixture.format, host: '127.0.0.1', port: n.upstream!.port, ...n.fixture.expect },
      `${service}: ${n.fixture.name}`,
    );
  }
  for (const n of inactive) {
    const r = snapshot.rejected.find((x) => x.id === n.id);
    t.like(r, { kind: 'inactive', reason: n.fixture.reason }, `${service}: ${n.fixture.name} listed as inactive`);
    t.is(r?.instance?.format, n.fixture.format, `${service}: ${n.fixture.name} decoded as ${n.fixture.format}`);
  }
  for (const n of malformed) {
    const r = snapshot.rejected.find((x) => x.id === n.id);
    t.is(r?.kind, 'invalid', `${service}: ${n.fixture.name} rejected as invalid`);
    t.regex(r?.reason ?? '', new RegExp(n.fixture.reason!), `${service}: ${n.fixture.name}`);
    t.is(r?.instance, undefined);
  }
}

test('a Curator service under a real container node: ZooKeeper reaps it after the last instance leaves, and the service routes again when it comes back, three times', async (t) => {
  const proxy = await roundRobinProxy(t);
  const client = await raw(t);
  const [a, b] = [await upstream(t, 'a'), await upstream(t, 'b')];
  const curator = byFormat.get('curator')!;
  const springUp = curator.routable[0]!;
  const dir = `${proxy.basePath}/spring-orders`;
  await client.mkdirp(proxy.basePath);
  const routedTo = async (u: Upstream) => {
    const reply = await request(`${proxy.url}/spring-orders/x`);
    return reply.status === 200 && reply.headers['x-upstream'] === u.name;
  };

  for (let round = 1; round <= 3; round++) {
    const target = round % 2 === 1 ? a : b;
    // What Curator's registerService does: parents as containers, the instance as an ephemeral node.
    await createContainerNode(zk.connectString, dir);
    const instance = await writeFixture(client, dir, curator, springUp, target.port);
    await eventually(() => routedTo(target), { message: `round ${round}: routed to ${target.name}` });
    t.deepEqual(
      proxy.app.registry!.get('spring-orders')!.instances.map((i) => [i.id, i.format]),
      [[instance, 'curator']],
      `round ${round}: exactly the new instance`,
    );

    await client.remove(`${dir}/${instance}`);
    // Nobody but ZooKeeper deletes the service node: its disappearance proves it was a container.
    await eventually(async () => !(await client.exists(dir)), {
      timeoutMs: 10_000,
      message: `round ${round}: container reaped by ZooKeeper`,
    });
    const gone = await eventually(
      async () => {
        const reply = await request(`${proxy.url}/spring-orders/x`);
        return reply.status === 404 || reply.status === 503 ? reply : undefined;
      },
      { message: `round ${round}: unavailable while gone` },
    );
    t.true(['PUTTU_UNKNOWN_SERVICE', 'PUTTU_NO_INSTANCES'].includes(gone.json().error.code), `round ${round}: ${gone.json().error.code}`);
  }
});

test('state changes are followed from the data alone: ours UP/DRAINING, a serverset member STARTING/ALIVE/STOPPING, Spring OUT_OF_SERVICE/UP then disabled, Nerve weight 0/5', async (t) => {
  const proxy = await roundRobinProxy(t);
  const client = await raw(t);
  const [ours, member, spring, nerve] = [
    await upstream(t, 'ours'),
    await upstream(t, 'member'),
    await upstream(t, 'spring'),
    await upstream(t, 'nerve'),
  ];
  const dir = `${proxy.basePath}/states`;
  await client.mkdirp(dir);
  const kinds: RejectionKind[] = [];
  proxy.app.registry!.on('rejected', (service, _id, _reason, kind) => void (service === 'states' && kinds.push(kind)));

  const oursData = (status: string) => ({
    protocol: 'http',
    host: '127.0.0.1',
    port: ours.port,
    api: '',
    id: 'o1',
    registrationTimeUTC: 1,
    status,
    weight: 1,
    metadata: {},
  });
  const memberData = (status: string) => ({
    serviceEndpoint: { host: '127.0.0.1', port: member.port },
    additionalEndpoints: {},
    status,
    shard: 0,
  });
  const springData = (status: string, enabled = true) => ({
    name: 'states',
    id: 's1',
    address: '127.0.0.1',
    port: spring.port,
    sslPort: null,
    payload: {
      '@class': 'org.springframework.cloud.zookeeper.discovery.ZookeeperInstance',
      id: 'states-1',
      name: 'states',
      metadata: { instance_status: status },
    },
    registrationTimeUTC: 1,
    serviceType: 'DYNAMIC',
    uriSpec: null,
    enabled,
  });
  const nerveData = (weight: number) => ({ host: '127.0.0.1', port: nerve.port, name: 'i-1', weight });
  const json = (v: unknown) => Buffer.from(JSON.stringify(v));
  const nodes = {
    ours: await client.create(`${dir}/states`, json(oursData('UP')), 'ephemeral_sequential'),
    member: await client.create(`${dir}/member_`, json(memberData('STARTING')), 'ephemeral_sequential'),
    spring: await client.create(`${dir}/${randomUUID()}`, json(springData('OUT_OF_SERVICE')), 'ephemeral'),
    nerve: await client.create(`${dir}/i-1_states_`, json(nerveData(0)), 'ephemeral_sequential'),
  };
  const all = [ours, member, spring, nerve];

  /** Waits for the routable set, then checks twice their total weight of requests reach exactly those, twice their weight each. */
  const expectRouted = async (step: string, routed: Upstream[], inactive: Record<string, string>) => {
    const ports = routed.map((u) => u.port).sort();
    await eventually(
      () => {
        const s = proxy.app.registry!.get('states');
        return (
          s &&
          s.rejected.length === all.length - routed.length &&
          s.instances
            .map((i) => i.port)
            .sort()
            .join() === ports.join()
        );
      },
      { message: `${step}: routable set` },
    );
    const s = proxy.app.registry!.get('states')!;
    for (const [name, reason] of Object.entries(inactive)) {
      const id = lastSegment(nodes[name as keyof typeof nodes]);
      t.like(
        s.rejected.find((r) => r.id === id),
        { kind: 'inactive', reason },
        `${step}: ${name}`,
      );
    }
    const before = all.map((u) => u.seen.length);
    const weight = (u: Upstream) => s.instances.find((i) => i.port === u.port)?.weight ?? 0;
    const total = routed.reduce((sum, u) => sum + weight(u), 0);
    t.deepEqual(
      await hit(proxy, 'states', 2 * total),
      Array.from({ length: 2 * total }, () => 200),
      `${step}: answered`,
    );
    for (const [i, u] of all.entries()) t.is(u.seen.length - before[i]!, routed.includes(u) ? 2 * weight(u) : 0, `${step}: ${u.name}`);
  };

  await expectRouted('at first', [ours], { member: 'status STARTING', spring: 'instance_status OUT_OF_SERVICE', nerve: 'weight 0' });

  await client.setData(nodes.ours, json(oursData('DRAINING')));
  await client.setData(nodes.member, json(memberData('ALIVE')));
  await client.setData(nodes.spring, json(springData('UP')));
  await client.setData(nodes.nerve, json(nerveData(5)));
  await expectRouted('after the first changes', [member, spring, nerve], { ours: 'status DRAINING' });

  await client.setData(nodes.ours, json(oursData('UP')));
  await client.setData(nodes.member, json(memberData('STOPPING')));
  await client.setData(nodes.spring, json(springData('UP', false)));
  await expectRouted('after the second changes', [ours, nerve], { member: 'status STOPPING', spring: 'enabled: false' });

  t.true(kinds.length >= 5 && kinds.every((k) => k === 'inactive'), `only inactive reports, never invalid (${kinds.join()})`);
});

test('library: register writes the canonical JSON superset (weight, metadata, status UP), and a proxy reads it back as ours', async (t) => {
  const proxy = await roundRobinProxy(t);
  const client = await raw(t);
  const u = await upstream(t, 'canon');
  const lib = connect(zk.connectString, proxy.basePath);
  t.teardown(() => lib.close());

  const reg = await lib.register('canon', {
    host: '127.0.0.1',
    port: u.port,
    api: '/c/v1',
    weight: 3,
    metadata: { zone: 'eu-1a', build: '42' },
  });
  const plain = await lib.register('canon', { host: '127.0.0.1', port: u.port, api: '/c/v1' });
  t.like(reg, { weight: 3, metadata: { zone: 'eu-1a', build: '42' }, status: 'UP' });
  t.like(plain, { weight: 1, metadata: {}, status: 'UP' });

  const data = JSON.parse((await client.getData(reg.path)).toString('utf8')) as Record<string, unknown>;
  t.deepEqual(Object.keys(data), ['protocol', 'host', 'port', 'api', 'id', 'registrationTimeUTC', 'status', 'weight', 'metadata']);
  t.like(data, {
    protocol: 'http',
    host: '127.0.0.1',
    port: u.port,
    api: '/c/v1',
    id: reg.id,
    status: 'UP',
    weight: 3,
    metadata: { zone: 'eu-1a', build: '42' },
  });
  t.true(
    typeof data.registrationTimeUTC === 'number' && Math.abs((data.registrationTimeUTC as number) - Date.now()) < 60_000,
    'registrationTimeUTC is now, in ms',
  );
  t.like(JSON.parse((await client.getData(plain.path)).toString('utf8')), { status: 'UP', weight: 1, metadata: {} });

  const snapshot = await eventually(
    () => (proxy.app.registry!.get('canon')?.instances.length === 2 ? proxy.app.registry!.get('canon') : undefined),
    {
      message: 'proxy reads both',
    },
  );
  t.like(
    snapshot.instances.find((i) => i.id === lastSegment(reg.path)),
    { format: 'puttu', weight: 3, status: 'UP', metadata: { zone: 'eu-1a', build: '42' }, api: '/c/v1' },
  );
  t.deepEqual(await hit(proxy, 'canon', 2), [200, 200]);
  t.true(u.seen.every((s) => s.url === '/c/v1/probe?n=0' || s.url === '/c/v1/probe?n=1'));
});

test('library: invalid weight or metadata is refused with PUTTU_INVALID_REGISTRATION before anything is written', async (t) => {
  const client = await raw(t);
  const base = `/formats-invalid-${randomUUID().slice(0, 8)}`;
  const lib = connect(zk.connectString, base);
  t.teardown(() => lib.close());
  // Connected, so the refusals below are the validation's, not an unreachable ZooKeeper's. (It also
  // keeps the teardown's close() out of the handshake: closed mid-handshake, node-zookeeper-client
  // can read the ConnectResponse as the reply to its CLOSE_SESSION and throw "Unknown code".)
  await eventually(() => lib.state === 'connected', { message: 'connected' });
  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['weight 0', { weight: 0 }, /weight must be an integer from 1 to 1000, got 0/],
    ['weight 1001', { weight: 1001 }, /got 1001/],
    ['fractional weight', { weight: 2.5 }, /got 2\.5/],
    ['weight as a string', { weight: '2' }, /got "2"/],
    ['metadata with a number', { metadata: { replicas: 3 } }, /metadata\["replicas"\] must be a string, got 3/],
    ['metadata as an array', { metadata: ['a'] }, /metadata must be an object of strings/],
    ['metadata over 4 KiB', { metadata: { blob: 'x'.repeat(4096) } }, /metadata is 4107 bytes as JSON, over 4096/],
  ];
  for (const [name, extra, message] of bad) {
    const error = await t.throwsAsync(
      lib.register('svc', { host: '127.0.0.1', port: 8080, ...extra } as never),
      { code: 'PUTTU_INVALID_REGISTRATION' },
      name,
    );
    t.regex(error?.message ?? '', message, name);
  }
  t.false(await client.exists(base), 'nothing written, not even the parents');
});

test('library close() with drainMs: DRAINING first (readers stop routing, the node and the session stay), the node deleted after the drain, then the session ends', async (t) => {
  const proxy = await roundRobinProxy(t);
  const client = await raw(t);
  const u = await upstream(t, 'drainer');
  const drainMs = 3_000;
  const lib = connect(zk.connectString, proxy.basePath, { drainMs });
  t.teardown(() => lib.close());
  const observer = connect(zk.connectString, proxy.basePath);
  t.teardown(() => observer.close());
  const reg = await lib.register('drainer', { host: '127.0.0.1', port: u.port });
  const id = lastSegment(reg.path);
  await eventually(() => proxy.app.registry!.get('drainer')?.instances.length === 1, { message: 'proxy routes it' });
  t.is((await observer.list('drainer')).length, 1);
  const sid = `sid=0x${BigInt('0x' + (lib as unknown as Record<typeof kZkClient, ZkClient>)[kZkClient].sessionCredentials().id.toString('hex')).toString(16)}`;

  const started = performance.now();
  let closedAfter: number | undefined;
  const closing = lib.close().then(() => (closedAfter = performance.now() - started));
  const seen = await eventually(() => proxy.app.registry!.get('drainer')?.rejected.find((r) => r.id === id), {
    message: 'proxy sees DRAINING',
  });
  const drainingAfter = performance.now() - started;
  t.like(seen, { kind: 'inactive', reason: 'status DRAINING' });
  t.is(proxy.app.registry!.get('drainer')!.instances.length, 0, 'not routed any more');
  // Still there while draining: the node (now DRAINING), the session, and close() pending.
  t.like(JSON.parse((await client.getData(reg.path)).toString('utf8')), { status: 'DRAINING', id: reg.id });
  t.is(reg.status, 'DRAINING');
  t.is(lib.state, 'connected');
  t.true((await fourLetter(zk.server.options.clientPort, 'cons')).includes(sid), 'the session is open during the drain');
  t.is(closedAfter, undefined, 'close() still draining');
  const before = u.seen.length;
  const reply = await request(`${proxy.url}/drainer/x`);
  t.is(reply.status, 503);
  t.is(reply.json().error.code, 'PUTTU_NO_INSTANCES');
  t.is(u.seen.length, before, 'no new request reached the draining instance');
  await eventually(async () => (await observer.list('drainer')).length === 0, { message: 'library readers skip DRAINING too' });

  await eventually(async () => !(await client.exists(reg.path)), { timeoutMs: drainMs + 5_000, message: 'node deleted' });
  const goneAfter = performance.now() - started;
  await closing;
  t.log(
    `DRAINING seen after ${drainingAfter.toFixed(0)} ms, node gone after ${goneAfter.toFixed(0)} ms, close() resolved after ${closedAfter!.toFixed(0)} ms`,
  );
  t.true(goneAfter >= drainMs, `deleted only after the drain (${goneAfter.toFixed(0)} ms)`);
  t.true(closedAfter! >= drainMs, 'close() resolves after the drain');
  t.is(lib.state, 'closed');
  await eventually(async () => !(await fourLetter(zk.server.options.clientPort, 'cons')).includes(sid), {
    message: 'session closed on the server',
  });
});

test('library: a session expiry during the drain re-creates the registration as DRAINING, never UP', async (t) => {
  const proxy = await roundRobinProxy(t);
  const client = await raw(t);
  const u = await upstream(t, 'phoenix');
  const lib = connect(zk.connectString, proxy.basePath, { drainMs: 6_000, sessionTimeoutMs: 4_000 });
  t.teardown(() => lib.close());
  const reg = await lib.register('reborn', { host: '127.0.0.1', port: u.port });
  const first = reg.path;
  await eventually(() => proxy.app.registry!.get('reborn')?.instances.length === 1, { message: 'proxy routes it' });

  const closing = lib.close();
  await eventually(() => proxy.app.registry!.get('reborn')?.rejected[0]?.reason === 'status DRAINING', { message: 'DRAINING seen' });
  const routedAgain: string[] = [];
  proxy.app.registry!.on('change', (service, snapshot) => {
    if (service === 'reborn' && snapshot && snapshot.instances.length > 0) routedAgain.push(snapshot.instances.map((i) => i.id).join());
  });
  await expireSession(zk.connectString, (lib as unknown as Record<typeof kZkClient, ZkClient>)[kZkClient]);
  const dir = `${proxy.basePath}/reborn`;
  const second = await eventually(
    async () => {
      const children = await client.getChildren(dir);
      return children.length === 1 && children[0] !== lastSegment(first) ? `${dir}/${children[0]}` : undefined;
    },
    { message: 'the node re-created on the new session' },
  );
  await eventually(() => reg.path === second, { message: 'the registration follows its new node' });
  t.like(JSON.parse((await client.getData(second)).toString('utf8')), { status: 'DRAINING', id: reg.id });
  await eventually(
    () => proxy.app.registry!.get('reborn')?.rejected.find((r) => r.id === lastSegment(second))?.reason === 'status DRAINING',
    {
      message: 'proxy sees the new node, DRAINING',
    },
  );
  await closing;
  t.false(await client.exists(second), 'deleted at the end of the drain');
  t.deepEqual(routedAgain, [], 'never routable again after DRAINING');
});

test('the upstream policy comes before the writer’s state: an inactive instance at a denied address is reported refused', async (t) => {
  const proxy = await roundRobinProxy(t);
  const client = await raw(t);
  const dir = `${proxy.basePath}/poisoned`;
  await client.mkdirp(dir);
  // Link-local metadata addresses, never dialled: nothing here is routable either way.
  const disabled = {
    name: 'poisoned',
    id: 'p1',
    address: '169.254.169.254',
    port: 80,
    sslPort: null,
    payload: null,
    registrationTimeUTC: 1,
    serviceType: 'DYNAMIC',
    uriSpec: null,
    enabled: false,
  };
  const starting = { serviceEndpoint: { host: '169.254.169.254', port: 80 }, additionalEndpoints: {}, status: 'STARTING' };
  await client.create(`${dir}/${randomUUID()}`, Buffer.from(JSON.stringify(disabled)), 'ephemeral');
  await client.create(`${dir}/member_`, Buffer.from(JSON.stringify(starting)), 'ephemeral_sequential');
  const snapshot = await eventually(
    () => (proxy.app.registry!.get('poisoned')?.rejected.length === 2 ? proxy.app.registry!.get('poisoned') : undefined),
    {
      message: 'both read',
    },
  );
  t.is(snapshot.instances.length, 0);
  t.deepEqual(snapshot.rejected.map((r) => [r.kind, r.instance?.format]).sort(), [
    ['refused', 'curator'],
    ['refused', 'serverset'],
  ]);
  t.true(snapshot.rejected.every((r) => /denied network/.test(r.reason)));
  t.regex((await request(proxy.adminUrl + '/metrics')).body.toString(), /puttu_registry_refused_instances_total\{service="poisoned"\} 2\n/);
});
