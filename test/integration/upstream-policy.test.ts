/**
 * Registry poisoning, decided without connecting: the non-loopback addresses registered here are
 * never requested, so nothing can dial them even if the decision were wrong; the tests assert the
 * registry's decision, the metric and the log. DNS-name and own-port cases only involve loopback.
 */
import test from 'ava';
import { eventually } from '../helpers/eventually.js';
import { startProxy } from '../helpers/proxy.js';
import { request, startUpstream } from '../helpers/upstreams.js';
import { rawClient, startZooKeeper, type TestZooKeeper } from '../helpers/zookeeper.js';
import { createLogger } from '../../proxy/logger.js';

let zk: TestZooKeeper;
test.before(async () => {
  zk = await startZooKeeper();
});
test.after.always(async () => {
  await zk?.stop();
});

const node = (host: string, port: number) => Buffer.from(JSON.stringify({ protocol: 'http', host, port, api: '' }));

test('metadata, link-local and own-port registrations are refused, counted, logged and never routed', async (t) => {
  const logs: any[] = [];
  const logger = createLogger({ level: 'warn', write: (line) => void logs.push(JSON.parse(line)) });
  const proxy = await startProxy(zk.connectString, {}, { logger });
  t.teardown(() => proxy.close());
  const good = await startUpstream('good');
  t.teardown(() => good.close());
  const raw = await rawClient(zk.connectString);
  t.teardown(() => raw.close());
  const base = proxy.basePath;
  const ownPort = Number(new URL(proxy.url).port);
  await raw.mkdirp(`${base}/meta`);
  await raw.create(`${base}/meta/meta`, node('169.254.169.254', 80), 'ephemeral_sequential');
  await raw.create(`${base}/meta/meta`, node('fe80::1', 80), 'ephemeral_sequential');
  await raw.mkdirp(`${base}/loop`);
  await raw.create(`${base}/loop/loop`, node('127.0.0.1', ownPort), 'ephemeral_sequential');
  await raw.create(`${base}/loop/loop`, node('127.0.0.1', good.port), 'ephemeral_sequential');

  await eventually(() => proxy.app.registry!.get('meta')?.rejected.length === 2, { message: 'metadata refused' });
  await eventually(() => proxy.app.registry!.get('loop')?.instances.length === 1, { message: 'loop service settled' });
  const meta = proxy.app.registry!.get('meta')!;
  t.is(meta.instances.length, 0, 'nothing routable');
  t.true(meta.rejected.every((r) => r.kind === 'refused' && /denied network/.test(r.reason)));
  const loop = proxy.app.registry!.get('loop')!;
  t.is(loop.instances[0]!.port, good.port);
  t.regex(loop.rejected[0]!.reason, /own listener/);

  // Only the loopback service is requested: its refused instance never gets traffic.
  for (let i = 0; i < 10; i++) t.is((await request(proxy.url + '/loop/x')).status, 200);
  t.is(good.seen.length, 10);

  const metrics = (await request(proxy.adminUrl + '/metrics')).body.toString();
  t.regex(metrics, /puttu_registry_refused_instances_total\{service="meta"\} 2/);
  t.regex(metrics, /puttu_registry_refused_instances_total\{service="loop"\} 1/);
  t.regex(metrics, /puttu_endpoints\{service="meta"\} 0/);
  t.true(logs.some((l) => l.msg === 'instance refused by the upstream policy' && l.service === 'meta'));
});

test('a DNS name resolving outside the allowed networks is refused before connecting (502)', async (t) => {
  const proxy = await startProxy(zk.connectString, { allowNetworks: '10.0.0.0/8' });
  t.teardown(() => proxy.close());
  const upstream = await startUpstream('hidden');
  t.teardown(() => upstream.close());
  const raw = await rawClient(zk.connectString);
  t.teardown(() => raw.close());
  await raw.mkdirp(`${proxy.basePath}/named`);
  await raw.create(`${proxy.basePath}/named/named`, node('localhost', upstream.port), 'ephemeral_sequential');
  await eventually(() => proxy.app.registry!.get('named')?.instances.length === 1);
  const reply = await request(proxy.url + '/named/x');
  t.is(reply.status, 502);
  t.is(reply.json().error.code, 'PUTTU_UPSTREAM_POLICY');
  t.is(upstream.seen.length, 0, 'nothing was dialled');
});
