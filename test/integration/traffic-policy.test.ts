/**
 * Traffic policy end to end: a real ZooKeeper, real backends registered through the library (or
 * written as znodes of other formats), the proxy in-process, real HTTP clients. Each test has its
 * own base path, so they run concurrently. Random choices use a seeded source: shares are measured,
 * never hoped for.
 */
import test from 'ava';
import { connect, type Puttu } from '../../proxy/index.js';
import { eventually } from '../helpers/eventually.js';
import { seeded } from '../helpers/fakes.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { countUpstreams, share } from '../helpers/traffic.js';
import { startUpstream, type Upstream } from '../helpers/upstreams.js';
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

async function setup(overrides: Parameters<typeof startProxy>[1] = {}, seed = 1) {
  const proxy = await startProxy(zk.connectString, overrides, { random: seeded(seed) });
  cleanups.push(() => proxy.close());
  const lib = connect(zk.connectString, proxy.basePath);
  cleanups.push(() => lib.close());
  return { proxy, lib };
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
  const raw = await rawClient(zk.connectString);
  cleanups.push(() => raw.close());
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
