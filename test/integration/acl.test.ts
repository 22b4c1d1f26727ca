/**
 * Registrations with ZooKeeper digest credentials, against a real ZooKeeper: other identities (and
 * anonymous clients) can read and route to them but neither delete nor change them; instances of
 * the same service under other identities can still register; the owner deregisters cleanly.
 */
import test from 'ava';
import { connect, digestId, type AclEntry } from '../../proxy/index.js';
import { silentLogger } from '../../proxy/logger.js';
import { lastSegment } from '../../proxy/registry/paths.js';
import { ZkClient } from '../../proxy/registry/zk-client.js';
import { eventually } from '../helpers/eventually.js';
import { startProxy } from '../helpers/proxy.js';
import { request, startUpstream } from '../helpers/upstreams.js';
import { rawClient, startZooKeeper, type TestZooKeeper } from '../helpers/zookeeper.js';

let zk: TestZooKeeper;

test.before(async () => {
  zk = await startZooKeeper();
});
test.after.always(async () => {
  await zk?.stop();
});

const alice = { user: 'alice', password: 'alice-secret' };
const carol = { user: 'carol', password: 'carol-secret' };

/** A raw client authenticated as a digest identity. */
async function digestClient(user: string, password: string): Promise<ZkClient> {
  const client = new ZkClient({
    connectString: zk.connectString,
    logger: silentLogger,
    auth: [{ scheme: 'digest', auth: `${user}:${password}` }],
  });
  client.connect();
  await client.whenConnected(15_000);
  return client;
}

test('digestId matches ZooKeeper’s DigestAuthenticationProvider; a user name with ":" is refused at connect', (t) => {
  // Vectors printed by `java org.apache.zookeeper.server.auth.DigestAuthenticationProvider` (3.8.0).
  t.is(digestId('super', 'superpw'), 'super:g9oN2HttPfn8MMWJZ2r45Np/LIA=');
  t.is(digestId('alice', 'alice-secret'), 'alice:JYdjG/dL2+v79QyuS8/0gpT+rQQ=');
  t.throws(() => connect(zk.connectString, '/x', { credentials: { user: 'a:b', password: 'p' } }), { code: 'PUTTU_INVALID_REGISTRATION' });
});

test('with credentials: another identity and an anonymous client read the registration but cannot delete or change it; the proxy routes to it; the owner deregisters it', async (t) => {
  const upstream = await startUpstream('vault');
  t.teardown(() => upstream.close());
  const proxy = await startProxy(zk.connectString);
  t.teardown(() => proxy.close());
  const owner = connect(zk.connectString, proxy.basePath, { credentials: alice, drainMs: 1_000 });
  t.teardown(() => owner.close());
  const bob = await digestClient('bob', 'bob-secret');
  t.teardown(() => bob.close());
  const anon = await rawClient(zk.connectString);
  t.teardown(() => anon.close());

  const reg = await owner.register('vault', { host: '127.0.0.1', port: upstream.port });
  const parent = `${proxy.basePath}/vault`;
  // ZooKeeper shows digests only to a caller with ADMIN on the node (others see `alice:x`).
  const aliceRaw = await digestClient(alice.user, alice.password);
  t.teardown(() => aliceRaw.close());
  const aliceAll: AclEntry = { scheme: 'digest', id: digestId(alice.user, alice.password), perms: ['all'] };
  t.deepEqual(await aliceRaw.getAcl(reg.path), [aliceAll, { scheme: 'world', id: 'anyone', perms: ['read'] }]);
  // DELETE is checked on the parent: the service node withholds it from everyone but the owner.
  t.deepEqual(await aliceRaw.getAcl(parent), [aliceAll, { scheme: 'world', id: 'anyone', perms: ['read', 'create'] }]);

  for (const [who, client] of [
    ['bob', bob],
    ['anonymous', anon],
  ] as const) {
    await t.throwsAsync(client.remove(reg.path), { code: 'PUTTU_ZK_NO_AUTH' }, `${who} cannot delete`);
    await t.throwsAsync(
      client.setData(reg.path, Buffer.from('{"protocol":"http","host":"127.0.0.9","port":1}')),
      { code: 'PUTTU_ZK_NO_AUTH' },
      `${who} cannot change`,
    );
    t.is(JSON.parse((await client.getData(reg.path)).toString()).id, reg.id, `${who} reads it`);
    t.true((await client.getChildren(parent)).includes(lastSegment(reg.path)), `${who} lists it`);
  }
  t.is(JSON.parse((await anon.getData(reg.path)).toString()).port, upstream.port, 'data unchanged');

  // The proxy holds no credentials: world READ is all it needs.
  const reply = await eventually(
    async () => {
      const r = await request(proxy.url + '/vault/x');
      return r.status === 200 ? r : undefined;
    },
    { message: 'proxy routes to the ACL’d registration' },
  );
  t.is(reply.headers['x-upstream'], 'vault');

  // The owner deletes the node itself (its DELETE on the parent works: the digest id is the
  // server's) while its session stays open, so it is not the session's end that removed it.
  await reg.unregister();
  t.false(await anon.exists(reg.path), 'node deleted by its owner');
  t.is(owner.state, 'connected');
  await owner.close();
  t.is(owner.state, 'closed');
});

test('a second identity registers under a service node the first created; neither can delete the other’s node through ZooKeeper’s ACL, both are routed', async (t) => {
  const [a, c] = await Promise.all([startUpstream('a'), startUpstream('c')]);
  t.teardown(() => Promise.all([a.close(), c.close()]));
  const proxy = await startProxy(zk.connectString);
  t.teardown(() => proxy.close());
  const first = connect(zk.connectString, proxy.basePath, { credentials: alice });
  t.teardown(() => first.close());
  const second = connect(zk.connectString, proxy.basePath, { credentials: carol });
  t.teardown(() => second.close());
  const anonymous = connect(zk.connectString, proxy.basePath);
  t.teardown(() => anonymous.close());

  const regA = await first.register('shared', { host: '127.0.0.1', port: a.port });
  const regC = await second.register('shared', { host: '127.0.0.1', port: c.port });
  const raw = await rawClient(zk.connectString);
  t.teardown(() => raw.close());
  const carolRaw = await digestClient(carol.user, carol.password);
  t.teardown(() => carolRaw.close());
  t.deepEqual(await carolRaw.getAcl(regC.path), [
    { scheme: 'digest', id: digestId(carol.user, carol.password), perms: ['all'] },
    { scheme: 'world', id: 'anyone', perms: ['read'] },
  ]);
  // An anonymous instance of the same service registers too (world CREATE on the service node).
  const anonUpstream = await startUpstream('anon');
  t.teardown(() => anonUpstream.close());
  await anonymous.register('shared', { host: '127.0.0.1', port: anonUpstream.port });

  await t.throwsAsync(carolRaw.remove(regA.path), { code: 'PUTTU_ZK_NO_AUTH' });

  await eventually(() => proxy.app.registry!.get('shared')?.instances.length === 3, { message: 'proxy sees all three' });
  const seen = new Set<string>();
  await eventually(
    async () => {
      seen.add(String((await request(proxy.url + '/shared/x')).headers['x-upstream']));
      return seen.has('a') && seen.has('c') && seen.has('anon');
    },
    { message: 'every instance routed' },
  );
  t.deepEqual([...seen].sort(), ['a', 'anon', 'c']);

  // Carol may not delete her own node (no DELETE on Alice's service node): it goes with her session.
  await second.close();
  t.false(await raw.exists(regC.path), 'gone with the session');
  t.true(await raw.exists(regA.path), "alice's node untouched");
});

test('registering under a service node that exists in a base the client may not create in works (mkdirp looks before it creates)', async (t) => {
  const admin = await digestClient('admin', 'admin-secret');
  t.teardown(() => admin.close());
  const raw = await rawClient(zk.connectString);
  t.teardown(() => raw.close());
  const base = `/locked-${Date.now().toString(36)}`;
  // An administrator prepared the tree: the base is read-only for everyone else, the service open.
  await admin.create(base, Buffer.alloc(0), 'persistent', [
    { scheme: 'digest', id: digestId('admin', 'admin-secret'), perms: ['all'] },
    { scheme: 'world', id: 'anyone', perms: ['read'] },
  ]);
  await admin.create(`${base}/svc`, Buffer.alloc(0), 'persistent');
  await t.throwsAsync(
    raw.create(`${base}/other`, Buffer.alloc(0), 'persistent'),
    { code: 'PUTTU_ZK_NO_AUTH' },
    'the base really refuses creates',
  );

  const lib = connect(zk.connectString, base, { credentials: alice });
  t.teardown(() => lib.close());
  const reg = await lib.register('svc', { host: '127.0.0.1', port: 9 });
  t.true(await raw.exists(reg.path));
  t.deepEqual(
    await raw.getAcl(`${base}/svc`),
    [{ scheme: 'world', id: 'anyone', perms: ['all'] }],
    'an existing service node keeps its ACL',
  );
});
