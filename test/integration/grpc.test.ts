/**
 * gRPC end to end: @grpc/grpc-js clients pointed at the proxy reach @grpc/grpc-js servers
 * registered in ZooKeeper (protocol "h2c") under their gRPC service name. All four call shapes,
 * status and trailing metadata passed through, grpc-timeout enforced by the proxy, UNAVAILABLE
 * for a dead instance (before and during a call) and for a service without instances,
 * UNIMPLEMENTED for a service the registry does not know.
 */
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import net from 'node:net';
import { connect, type Puttu } from '../../proxy/index.js';
import { eventually } from '../helpers/eventually.js';
import { SERVICE, echoClient, startEchoServer, unary, type EchoClient, type EchoServer, type Msg } from '../helpers/grpc.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startZooKeeper, type TestZooKeeper } from '../helpers/zookeeper.js';

let zk: TestZooKeeper;
let proxy: TestProxy;
let lib: Puttu;
let servers: EchoServer[];
let client: EchoClient;
const closers: Array<() => unknown> = [];

test.before(async () => {
  zk = await startZooKeeper();
  proxy = await startProxy(zk.connectString);
  lib = connect(zk.connectString, proxy.basePath);
  servers = [await startEchoServer('a'), await startEchoServer('b')];
  for (const s of servers) await lib.register(SERVICE, { protocol: 'h2c', host: '127.0.0.1', port: s.port });
  await eventually(() => proxy.app.registry!.get(SERVICE)?.instances.length === 2);
  client = echoClient(new URL(proxy.url).host);
});

test.after.always(async () => {
  client?.close();
  for (const c of closers.reverse()) await c();
  for (const s of servers ?? []) await s.close();
  await lib?.close();
  await proxy?.close();
  await zk?.stop();
});

const proxyHost = () => new URL(proxy.url).host;

test.serial('unary calls reach both registered servers through the proxy, with metadata', async (t) => {
  const from = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const reply = await unary(client, 'unary', { text: `hi ${i}` });
    t.is(reply.text, `hi ${i}`);
    from.add(reply.from!);
  }
  t.deepEqual([...from].sort(), ['a', 'b']);
  const last = servers.find((s) => s.lastMetadata)!.lastMetadata!;
  t.is(last.get('x-forwarded-for')[0], '127.0.0.1');
  t.is(typeof last.get('x-request-id')[0], 'string');
});

test.serial('server-streaming, client-streaming and bidirectional calls', async (t) => {
  const streamed = await new Promise<Msg[]>((resolve, reject) => {
    const got: Msg[] = [];
    const call = client.serverStream({ n: 50 });
    call.on('data', (m: Msg) => got.push(m));
    call.on('error', reject);
    call.on('end', () => resolve(got));
  });
  t.deepEqual(
    streamed.map((m) => m.n),
    Array.from({ length: 50 }, (_, i) => i),
  );

  const summed = await new Promise<Msg>((resolve, reject) => {
    const call = client.clientStream((error: grpc.ServiceError | null, reply: Msg) => (error ? reject(error) : resolve(reply)));
    for (const text of ['x', 'y', 'z']) call.write({ text });
    call.end();
  });
  t.is(summed.text, 'x,y,z');
  t.is(summed.n, 3);

  // Bidirectional: each answer arrives before the next message is sent.
  const call = client.bidi();
  const answers: string[] = [];
  for (const text of ['one', 'two', 'three']) {
    const answer = new Promise<Msg>((resolve) => call.once('data', resolve));
    call.write({ text });
    answers.push((await answer).text!);
  }
  const ended = new Promise<void>((resolve) => call.on('end', () => resolve()));
  call.end();
  await ended;
  t.deepEqual(answers, ['echo:one', 'echo:two', 'echo:three']);
});

test.serial('a status, its message and trailing metadata pass through unchanged', async (t) => {
  const error = await t.throwsAsync<grpc.ServiceError>(unary(client, 'fail', {}));
  t.is(error!.code, grpc.status.NOT_FOUND);
  t.is(error!.details, 'no such thing: über');
  t.deepEqual(error!.metadata.get('x-detail'), ['kept']);
});

test.serial('a client deadline ends the call with DEADLINE_EXCEEDED and cancels it upstream', async (t) => {
  const before = servers.reduce((n, s) => n + s.cancelled, 0);
  const error = await t.throwsAsync<grpc.ServiceError>(unary(client, 'slow', { ms: 5_000 }, { deadline: Date.now() + 300 }));
  t.is(error!.code, grpc.status.DEADLINE_EXCEEDED);
  await eventually(() => servers.reduce((n, s) => n + s.cancelled, 0) > before, { message: 'the upstream call was cancelled' });
});

test.serial('the proxy itself enforces grpc-timeout: DEADLINE_EXCEEDED, and the upstream call is cancelled', async (t) => {
  const before = servers.reduce((n, s) => n + s.cancelled, 0);
  // A raw HTTP/2 client that never cancels on its own: only the proxy can end this call.
  const session = http2.connect(proxy.url);
  closers.push(() => session.destroy());
  const body = Buffer.from(JSON.stringify({ ms: 5_000 }));
  const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, body.length]), body]);
  const stream = session.request({
    ':method': 'POST',
    ':path': `/${SERVICE}/Slow`,
    'content-type': 'application/grpc',
    te: 'trailers',
    'grpc-timeout': '250m',
  });
  stream.end(frame);
  const started = Date.now();
  const status = await new Promise<string | undefined>((resolve) => {
    let seen: string | undefined;
    stream.on('response', (h) => {
      seen ??= h['grpc-status'] as string | undefined;
    });
    stream.on('trailers', (h) => {
      seen = h['grpc-status'] as string | undefined;
    });
    stream.resume();
    stream.on('close', () => resolve(seen));
  });
  t.is(status, String(grpc.status.DEADLINE_EXCEEDED));
  t.true(Date.now() - started < 3_000, 'well before the server would have answered');
  await eventually(() => servers.reduce((n, s) => n + s.cancelled, 0) > before, { message: 'the upstream call was cancelled' });
});

test.serial('an unknown service is UNIMPLEMENTED; a service without instances is UNAVAILABLE, with a clear message', async (t) => {
  const other = echoClient(proxyHost(), 'puttu.test.Nowhere');
  closers.push(() => other.close());
  const call = () => unary(other, 'unary', {});
  const unknown = await t.throwsAsync<grpc.ServiceError>(call());
  t.is(unknown!.code, grpc.status.UNIMPLEMENTED);
  t.is(unknown!.details, 'no such service in the registry');

  const reg = await lib.register('puttu.test.Nowhere', { protocol: 'h2c', host: '127.0.0.1', port: servers[0]!.port });
  await eventually(() => proxy.app.registry!.get('puttu.test.Nowhere')?.instances.length === 1);
  await reg.unregister();
  await eventually(() => proxy.app.registry!.get('puttu.test.Nowhere')?.instances.length === 0);
  const none = await t.throwsAsync<grpc.ServiceError>(call());
  t.is(none!.code, grpc.status.UNAVAILABLE);
  t.is(none!.details, 'the service has no live instance');
});

test.serial('a refused instance is retried on another before anything was sent; a dead-only service is UNAVAILABLE', async (t) => {
  // A port that refuses connections: nothing listens on it once the probe server is closed.
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const deadPort = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  const retry = echoClient(proxyHost(), 'puttu.test.Retry');
  closers.push(() => retry.close());
  const call = () => unary(retry, 'unary', { text: 'r' });
  const dead = await lib.register('puttu.test.Retry', { protocol: 'h2c', host: '127.0.0.1', port: deadPort });
  await eventually(() => proxy.app.registry!.get('puttu.test.Retry')?.instances.length === 1);
  const refused = await t.throwsAsync<grpc.ServiceError>(call());
  t.is(refused!.code, grpc.status.UNAVAILABLE);
  const live = await startEchoServer('retry', 'puttu.test.Retry');
  closers.push(() => live.close());
  await lib.register('puttu.test.Retry', { protocol: 'h2c', host: '127.0.0.1', port: live.port });
  await eventually(() => proxy.app.registry!.get('puttu.test.Retry')?.instances.length === 2);
  for (let i = 0; i < 6; i++) t.is((await call()).from, 'retry');
  await dead.unregister();
});

test.serial('an instance dying mid-stream ends the call with UNAVAILABLE, not a hang', async (t) => {
  const victim = await startEchoServer('victim', 'puttu.test.Victim');
  await lib.register('puttu.test.Victim', { protocol: 'h2c', host: '127.0.0.1', port: victim.port });
  await eventually(() => proxy.app.registry!.get('puttu.test.Victim')?.instances.length === 1);
  const vc = echoClient(proxyHost(), 'puttu.test.Victim');
  closers.push(() => vc.close());
  const call = vc.endless({});
  let received = 0;
  const ended = new Promise<grpc.ServiceError>((resolve) => {
    call.on('data', () => {
      received++;
      if (received === 5) void victim.close();
    });
    call.on('error', resolve);
  });
  const error = await ended;
  t.true(received >= 5);
  t.is(error.code, grpc.status.UNAVAILABLE);
  t.is(error.details, 'the upstream instance went away mid-call');
});
