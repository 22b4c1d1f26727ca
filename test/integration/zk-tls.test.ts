/**
 * ZooKeeper over TLS: a real ZooKeeper 3.8 with a Netty secureClientPort and PEM stores, with
 * certificates generated here by openssl. The library, the proxy and the small commands connect
 * through it and verify the server; client-certificate auth (ssl.clientAuth=need) works with a
 * certificate and fails clearly without one; a wrong CA or a name the certificate does not carry
 * fails with ZkTlsError at once, after one connection attempt per server, not a reconnect loop.
 */
import test from 'ava';
import fs from 'node:fs';
import { connect, ZkTlsError, type Puttu, type ZkTlsOptions } from '../../proxy/index.js';
import { silentLogger } from '../../proxy/logger.js';
import { kZkClient, type ZkClient } from '../../proxy/registry/zk-client.js';
import { delay, eventually, within } from '../helpers/eventually.js';
import { puttu as puttuCommand } from '../helpers/processes.js';
import { startProxy } from '../helpers/proxy.js';
import { startRelay } from '../helpers/relay.js';
import { request, startUpstream } from '../helpers/upstreams.js';
import { startTlsZooKeeper, waitListening, type TestTlsZooKeeper } from '../helpers/zookeeper.js';

let zk: TestTlsZooKeeper;
const read = (file: string) => fs.readFileSync(file, 'utf8');

test.before(async () => {
  zk = await startTlsZooKeeper({ clientAuth: 'need' });
});
test.after.always(async () => {
  await zk?.stop();
});

/** CA, client certificate and key: what a server with clientAuth=need accepts. */
const trusted = (): ZkTlsOptions => ({ ca: read(zk.certs.ca), cert: read(zk.certs.clientCert), key: read(zk.certs.clientKey) });

function client(t: { teardown(fn: () => Promise<void>): void }, connectString: string, tls: ZkTlsOptions, basePath = '/tls'): Puttu {
  const puttu = connect(connectString, basePath, { tls, connectTimeoutMs: 10_000, sessionTimeoutMs: 10_000, logger: silentLogger });
  t.teardown(() => puttu.close());
  return puttu;
}

/** Runs `puttu <args>` to its end: exit code and everything it wrote. */
function run(args: string[], timeoutMs = 20_000): Promise<{ code: number | null; output: string }> {
  const child = puttuCommand(args, { PUTTU_LOG_LEVEL: 'info' });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return child.exited.then((code) => {
    clearTimeout(timer);
    return { code, output: child.output() };
  });
}

test('the library registers and finds an endpoint over TLS, with a client certificate (clientAuth=need)', async (t) => {
  const writer = client(t, zk.secureConnectString, trusted(), '/tls-lib');
  await writer.register('warehouse', { host: '127.0.0.1', port: 10001, api: '/warehouse/v1' });
  t.is(writer.state, 'connected');
  // A second client, its own session over TLS, sees the registration.
  const reader = client(t, zk.secureConnectString, trusted(), '/tls-lib');
  const endpoint = await reader.get('warehouse');
  t.is(endpoint.url, 'http://127.0.0.1:10001/warehouse/v1');
  // And it is the server's tree, also visible on its plain port.
  const plain = connect(zk.connectString, '/tls-lib', { logger: silentLogger });
  t.teardown(() => plain.close());
  t.is((await plain.list('warehouse')).length, 1);
});

test('the proxy reads the registry over TLS (--zk-tls on, --zk-ca, --zk-cert, --zk-key) and routes to it', async (t) => {
  const upstream = await startUpstream('tls-backed');
  t.teardown(() => upstream.close());
  const proxy = await startProxy(zk.secureConnectString, {
    zkTls: 'on',
    zkCa: zk.certs.ca,
    zkCert: zk.certs.clientCert,
    zkKey: zk.certs.clientKey,
  });
  t.teardown(() => proxy.close());
  t.is(proxy.app.zk?.state, 'connected');
  const writer = client(t, zk.secureConnectString, trusted(), proxy.basePath);
  await writer.register('orders', { host: '127.0.0.1', port: upstream.port, api: '/v1' });
  const reply = await eventually(
    async () => {
      const r = await request(`${proxy.url}/orders/list?x=1`);
      return r.status === 200 ? r : undefined;
    },
    { timeoutMs: 10_000, message: 'the proxy routes /orders' },
  );
  t.is(reply.json().name, 'tls-backed');
  t.is(reply.json().url, '/v1/list?x=1');
});

test('without a client certificate, a server with clientAuth=need is refused with ZkTlsError, after one attempt', async (t) => {
  const relay = await startRelay(zk.server.options.tls!.secureClientPort);
  t.teardown(() => relay.close());
  const puttu = client(t, relay.address, { ca: read(zk.certs.ca) });
  const started = Date.now();
  const error = await t.throwsAsync(puttu.get('anything'), { instanceOf: ZkTlsError });
  const attempts = relay.accepted;
  t.true(Date.now() - started < 5_000, 'fails fast, well within connectTimeoutMs');
  t.is(error?.code, 'PUTTU_ZK_TLS');
  t.regex(error?.reason ?? '', /^ERR_SSL_/);
  t.regex(error?.message ?? '', /refused the TLS handshake .*client certificate/);
  t.is(puttu.state, 'tls_failed');
  // Not a reconnect loop: the library alone retries every spinDelay (200 ms), so a second would
  // hold several attempts. One is the rule; a handshake slower than the read guard on a loaded
  // machine is dropped and tried once more (not a TLS failure), hence "at most 2".
  t.true(attempts >= 1 && attempts <= 2, `attempts: ${attempts}`);
  await delay(1_000);
  t.is(relay.accepted, attempts, 'no attempt after giving up');
  await t.throwsAsync(puttu.register('svc', { host: '127.0.0.1', port: 1 }), { instanceOf: ZkTlsError });
  await puttu.close();
  t.is(puttu.state, 'closed');
});

test('a wrong CA fails verification with ZkTlsError UNABLE_TO_VERIFY_LEAF_SIGNATURE, once per server, within a deadline', async (t) => {
  const relays = [await startRelay(zk.server.options.tls!.secureClientPort), await startRelay(zk.server.options.tls!.secureClientPort)];
  t.teardown(() => Promise.all(relays.map((r) => r.close())).then(() => undefined));
  const puttu = client(t, relays.map((r) => r.address).join(','), { ...trusted(), ca: read(zk.certs.otherCa) });
  const outcome = await within(
    puttu.get('anything').catch((e: unknown) => e),
    5_000,
  );
  t.not(outcome, 'pending', 'get() settles within 5 s');
  const error = (outcome as { value: unknown }).value;
  const attempts = relays.map((r) => r.accepted);
  t.true(error instanceof ZkTlsError, String(error));
  t.is((error as ZkTlsError).reason, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  t.regex((error as ZkTlsError).message, /failed TLS verification.*zkCa/);
  t.true(
    attempts.every((n) => n >= 1 && n <= 2),
    `each server of the connect string tried once (twice at most, see above): ${attempts}`,
  );
  await delay(1_000);
  t.deepEqual(
    relays.map((r) => r.accepted),
    attempts,
    'no attempt after giving up',
  );
});

test('a name the server certificate does not carry fails with ERR_TLS_CERT_ALTNAME_INVALID', async (t) => {
  const puttu = client(t, zk.secureConnectString, { ...trusted(), servername: 'zookeeper.example' });
  const error = await t.throwsAsync(puttu.list('anything'), { instanceOf: ZkTlsError });
  t.is(error?.reason, 'ERR_TLS_CERT_ALTNAME_INVALID');
  t.regex(error?.message ?? '', /does not name it/);
});

test('a client certificate without its key is refused before anything connects', (t) => {
  t.throws(() => connect(zk.secureConnectString, '/x', { tls: { ca: read(zk.certs.ca), cert: read(zk.certs.clientCert) } }), {
    message: /tls\.key is required with tls\.cert/,
  });
});

test('puttu get and ls over TLS; without a client certificate they exit 1 naming the reason; a cert without key is usage (2)', async (t) => {
  const writer = client(t, zk.secureConnectString, trusted(), '/tls-cli');
  await writer.register('billing', { host: '127.0.0.1', port: 9000, api: '/b' });
  const tlsFlags = ['--zk', zk.secureConnectString, '--base-path', '/tls-cli', '--zk-tls', 'on', '--zk-ca', zk.certs.ca];
  const clientCert = ['--zk-cert', zk.certs.clientCert, '--zk-key', zk.certs.clientKey];
  const [got, listed, refused, usage] = await Promise.all([
    run(['get', 'billing', ...tlsFlags, ...clientCert]),
    run(['ls', '--json', ...tlsFlags, ...clientCert]),
    run(['ls', ...tlsFlags]),
    run(['get', 'billing', ...tlsFlags, '--zk-cert', zk.certs.clientCert]),
  ]);
  t.is(got.code, 0, got.output);
  t.regex(got.output, /^http:\/\/127\.0\.0\.1:9000\/b$/m);
  t.is(listed.code, 0, listed.output);
  t.regex(listed.output, /"name": "billing"/);
  t.is(refused.code, 1, refused.output);
  t.regex(refused.output, /puttu ls: ZooKeeper server 127\.0\.0\.1:\d+ refused the TLS handshake/);
  t.is(usage.code, 2, usage.output);
  t.regex(usage.output, /zkKey .*is required with zkCert/);
});

test('puttu proxy with a wrong CA logs the TLS reason and exits 1 after one connection attempt', async (t) => {
  const relay = await startRelay(zk.server.options.tls!.secureClientPort);
  t.teardown(() => relay.close());
  const started = Date.now();
  const { code, output } = await run([
    'proxy',
    '--zk',
    relay.address,
    '--zk-tls',
    'on',
    '--zk-ca',
    zk.certs.otherCa,
    '--zk-cert',
    zk.certs.clientCert,
    '--zk-key',
    zk.certs.clientKey,
    '--host',
    '127.0.0.1',
    '--port',
    '0',
    '--admin-port',
    '0',
  ]);
  t.is(code, 1, output);
  t.true(Date.now() - started < 15_000);
  t.regex(output, /"msg":"puttu proxy cannot continue: stopping"/);
  t.regex(output, /puttu proxy: ZooKeeper server 127\.0\.0\.1:\d+ failed TLS verification: .*UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
  t.true(relay.accepted >= 1 && relay.accepted <= 2, `attempts: ${relay.accepted}`);
});

test('puttu proxy: --zk-ca without --zk-tls on, and an unreadable --zk-ca, are configuration errors (exit 2)', async (t) => {
  const [off, missing] = await Promise.all([
    run(['proxy', '--zk', zk.secureConnectString, '--zk-ca', zk.certs.ca]),
    run(['proxy', '--zk', zk.secureConnectString, '--zk-tls', 'on', '--zk-ca', '/nonexistent/ca.pem', '--port', '0', '--admin-port', '0']),
  ]);
  t.is(off.code, 2, off.output);
  t.regex(off.output, /zkCa .*is set but zkTls is off/);
  t.is(missing.code, 2, missing.output);
  t.regex(missing.output, /zkCa .*cannot read \/nonexistent\/ca\.pem/);
});

test('over TLS, a session survives a server restart; clientAuth=want needs no client certificate', async (t) => {
  const own = await startTlsZooKeeper({ clientAuth: 'want' });
  t.teardown(() => own.stop());
  const puttu = client(t, own.secureConnectString, { ca: read(own.certs.ca) }, '/tls-restart');
  await puttu.register('kept', { host: '127.0.0.1', port: 7000 });
  const zkClient = (puttu as unknown as { [kZkClient]: ZkClient })[kZkClient];
  const session = zkClient.sessionCredentials().id.toString('hex');
  const reconnected = new Promise<void>((resolve) => zkClient.once('reconnected', resolve));
  await own.server.stop();
  await eventually(() => zkClient.state === 'disconnected', { timeoutMs: 10_000, message: 'the client sees the server go' });
  await own.server.start();
  await waitListening(own.server.options.tls!.secureClientPort);
  const back = await within(reconnected, 15_000);
  t.not(back, 'pending', 'reconnected to the same session');
  t.is(zkClient.generation, 1);
  t.is(zkClient.sessionCredentials().id.toString('hex'), session);
  t.is((await puttu.get('kept')).port, 7000);
});

test('puttu proxy --workers 2: the cluster primary holds the session, and a TLS failure stops it and its workers with exit 1', async (t) => {
  const { code, output } = await run([
    'proxy',
    '--workers',
    '2',
    '--zk',
    zk.secureConnectString,
    '--zk-tls',
    'on',
    '--zk-ca',
    zk.certs.ca,
    '--host',
    '127.0.0.1',
    '--port',
    '0',
    '--admin-port',
    '0',
  ]);
  t.is(code, 1, output);
  t.regex(output, /"msg":"puttu cluster primary/);
  t.regex(output, /puttu proxy: ZooKeeper server 127\.0\.0\.1:\d+ refused the TLS handshake/);
  t.regex(output, /"code":1,"msg":"stopped"/);
});
