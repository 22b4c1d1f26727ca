/**
 * HTTP/2 through the proxy: prior-knowledge h2c next to HTTP/1.1 on the plain port (with the fast
 * lane and without), h2 by ALPN on the TLS listener, HTTP/2 upstreams (h2c), header rules,
 * metrics, the access log and a graceful shutdown with GOAWAY. Real ZooKeeper, real upstreams,
 * real clients (Node's http2 and curl).
 */
import test from 'ava';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { connect, type Puttu } from '../../proxy/index.js';
import { createLogger } from '../../proxy/logger.js';
import { eventually } from '../helpers/eventually.js';
import * as grpc from '@grpc/grpc-js';
import { EchoClient, SERVICE, startEchoServer, unary } from '../helpers/grpc.js';
import { h2request } from '../helpers/h2.js';
import { startProxy } from '../helpers/proxy.js';
import { request, startUpstream, type Upstream } from '../helpers/upstreams.js';
import { startZooKeeper, type TestZooKeeper } from '../helpers/zookeeper.js';

const run = promisify(execFile);
let zk: TestZooKeeper;
let dir: string;
const closers: Array<() => unknown> = [];

test.before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'puttu-h2-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      'key.pem',
      '-out',
      'cert.pem',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { cwd: dir, stdio: 'pipe' },
  );
  zk = await startZooKeeper();
});

test.after.always(async () => {
  for (const c of closers.reverse()) await c();
  await zk?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function library(basePath: string): Promise<Puttu> {
  const lib = connect(zk.connectString, basePath);
  closers.push(() => lib.close());
  return lib;
}

async function upstream(name: string, handler?: Parameters<typeof startUpstream>[1]): Promise<Upstream> {
  const u = await startUpstream(name, handler);
  closers.push(() => u.close());
  return u;
}

/** A proxy with one HTTP/1.1 upstream registered as `svc`. */
async function proxyWithUpstream(overrides: Parameters<typeof startProxy>[1] = {}, deps: Parameters<typeof startProxy>[2] = {}) {
  const proxy = await startProxy(zk.connectString, overrides, deps);
  closers.push(() => proxy.close());
  const u = await upstream('one', (req, res, up) => {
    res.writeHead(200, {
      'content-type': 'application/json',
      'x-upstream': up.name,
      'keep-alive': 'timeout=5',
      'x-gone': 'yes',
      connection: 'x-gone',
    });
    res.end(JSON.stringify({ url: req.url, headers: req.headers, version: req.httpVersion }));
  });
  const lib = await library(proxy.basePath);
  await lib.register('svc', { host: '127.0.0.1', port: u.port, api: '/v1' });
  await eventually(() => proxy.app.registry!.get('svc')?.instances.length);
  return { proxy, upstream: u };
}

for (const fastLane of ['on', 'off'] as const) {
  test(`prior-knowledge h2c and HTTP/1.1 share the plain port (fast lane ${fastLane}), with the same routing and header rules`, async (t) => {
    const { proxy } = await proxyWithUpstream({ fastLane });
    const reply = await h2request(proxy.url, '/svc/hello?x=1', { headers: { 'x-request-id': 'h2-abc', 'x-forwarded-proto': 'forged' } });
    t.is(reply.status, 200);
    const seen = reply.json();
    t.is(seen.url, '/v1/hello?x=1');
    t.is(seen.version, '1.1', 'an HTTP/1.1 upstream is reached over HTTP/1.1');
    t.is(seen.headers['x-forwarded-proto'], 'http');
    t.is(seen.headers['x-forwarded-for'], '127.0.0.1');
    t.regex(seen.headers['x-forwarded-host'], /^127\.0\.0\.1:\d+$/);
    t.is(seen.headers.via, '1.1 puttu');
    t.is(seen.headers['x-request-id'], 'h2-abc');
    t.is(reply.headers['x-request-id'], 'h2-abc');
    t.is(reply.headers['x-upstream'], 'one');
    // Connection-specific fields HTTP/2 forbids, and what Connection named, never reach the client.
    t.is(reply.headers['keep-alive'], undefined);
    t.is(reply.headers.connection, undefined);
    t.is(reply.headers['x-gone'], undefined);

    const h1 = await request(`${proxy.url}/svc/plain`);
    t.is(h1.status, 200);
    t.is(h1.json().url, '/v1/plain');

    const missing = await h2request(proxy.url, '/nope/x');
    t.is(missing.status, 404);
    t.is(missing.json().error.code, 'PUTTU_UNKNOWN_SERVICE');

    const { stdout } = await run('curl', ['-s', '--http2-prior-knowledge', '-w', '\n%{http_version}', `${proxy.url}/svc/curl`]);
    const [body, version] = stdout.split('\n');
    t.is(version, '2');
    t.is(JSON.parse(body!).url, '/v1/curl');
  });
}

test('HTTP/2 request bodies stream to the upstream, many streams on one client connection', async (t) => {
  const proxy = await startProxy(zk.connectString);
  closers.push(() => proxy.close());
  const back = await upstream('back', (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => res.end(`${req.url} ${Buffer.concat(chunks).toString()}`));
  });
  const lib = await library(proxy.basePath);
  await lib.register('back', { host: '127.0.0.1', port: back.port });
  await eventually(() => proxy.app.registry!.get('back')?.instances.length);
  const session = http2.connect(proxy.url);
  closers.push(() => session.destroy());
  const bodies = Array.from({ length: 20 }, (_, i) => `payload-${i};`.repeat(2000));
  const replies = await Promise.all(bodies.map((body, i) => h2request(session, `/back/n${i}`, { method: 'POST', body })));
  t.deepEqual(
    replies.map((r) => r.body.toString()),
    bodies.map((body, i) => `/n${i} ${body}`),
  );
});

test('the TLS listener negotiates h2 by ALPN and still serves HTTP/1.1', async (t) => {
  const { proxy } = await proxyWithUpstream({ tlsCert: path.join(dir, 'cert.pem'), tlsKey: path.join(dir, 'key.pem') });
  t.regex(proxy.url, /^https:/);
  const ca = fs.readFileSync(path.join(dir, 'cert.pem'));
  const reply = await h2request(proxy.url, '/svc/secure', { ca });
  t.is(reply.status, 200);
  t.is(reply.json().headers['x-forwarded-proto'], 'https');
  const cert = path.join(dir, 'cert.pem');
  const h2 = await run('curl', ['-s', '--http2', '--cacert', cert, '-w', '\n%{http_version}', `${proxy.url}/svc/c`]);
  t.is(h2.stdout.split('\n')[1], '2');
  const h1 = await run('curl', ['-s', '--http1.1', '--cacert', cert, '-w', '\n%{http_version}', `${proxy.url}/svc/c`]);
  t.is(h1.stdout.split('\n')[1], '1.1');
  t.is(JSON.parse(h1.stdout.split('\n')[0]!).url, '/v1/c');
});

test('gRPC over TLS: a client with TLS credentials reaches a plain-text gRPC server through the TLS listener', async (t) => {
  const proxy = await startProxy(zk.connectString, { tlsCert: path.join(dir, 'cert.pem'), tlsKey: path.join(dir, 'key.pem') });
  closers.push(() => proxy.close());
  const server = await startEchoServer('tls');
  closers.push(() => server.close());
  const lib = await library(proxy.basePath);
  await lib.register(SERVICE, { protocol: 'h2c', host: '127.0.0.1', port: server.port });
  await eventually(() => proxy.app.registry!.get(SERVICE)?.instances.length);
  const client: EchoClient = new EchoClient(
    new URL(proxy.url).host,
    grpc.credentials.createSsl(fs.readFileSync(path.join(dir, 'cert.pem'))),
  );
  closers.push(() => client.close());
  const reply = await unary(client, 'unary', { text: 'secure' });
  t.deepEqual(reply, { text: 'secure', from: 'tls' });
});

test('--http2 off: the preface is not HTTP/2 to the proxy, HTTP/1.1 is served as before', async (t) => {
  const { proxy } = await proxyWithUpstream({ http2: 'off' });
  await t.throwsAsync(h2request(proxy.url, '/svc/x', { timeoutMs: 3_000 }));
  t.is((await request(`${proxy.url}/svc/x`)).status, 200);
});

test('instances registered with protocol "h2c" are reached over HTTP/2, many requests on one connection', async (t) => {
  const proxy = await startProxy(zk.connectString);
  closers.push(() => proxy.close());
  const server = http2.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ version: req.httpVersion, path: req.url, xff: req.headers['x-forwarded-for'] }));
  });
  let sessions = 0;
  server.on('session', () => sessions++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => server.close(r)));
  const lib = await library(proxy.basePath);
  await lib.register('h2svc', { protocol: 'h2c', host: '127.0.0.1', port: (server.address() as AddressInfo).port });
  await eventually(() => proxy.app.registry!.get('h2svc')?.instances.length);
  const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => request(`${proxy.url}/h2svc/r${i}`)));
  t.true(replies.every((r) => r.status === 200));
  t.deepEqual(
    replies.map((r) => r.json().path),
    Array.from({ length: 30 }, (_, i) => `/r${i}`),
  );
  t.true(replies.every((r) => r.json().version === '2.0' && r.json().xff === '127.0.0.1'));
  t.is(sessions, 1, 'one multiplexed connection per origin');
  // And from an HTTP/2 client too, end to end.
  const h2 = await h2request(proxy.url, '/h2svc/both');
  t.is(h2.json().version, '2.0');

  // --http2-services: a service whose instances registered plain http is reached over h2c too.
  const flagged = await startProxy(zk.connectString, { basePath: proxy.basePath, http2Services: 'legacy' });
  closers.push(() => flagged.close());
  await lib.register('legacy', { protocol: 'http', host: '127.0.0.1', port: (server.address() as AddressInfo).port });
  await eventually(() => flagged.app.registry!.get('legacy')?.instances.length);
  const legacy = await request(`${flagged.url}/legacy/old`);
  t.is(legacy.status, 200);
  t.like(legacy.json(), { version: '2.0', path: '/old' });
});

test('instances registered with protocol "h2" are reached over HTTP/2 with TLS, verified against the configured CA', async (t) => {
  const cert = fs.readFileSync(path.join(dir, 'cert.pem'));
  const server = http2.createSecureServer({ cert, key: fs.readFileSync(path.join(dir, 'key.pem')) }, (req, res) => {
    res.end(
      JSON.stringify({ version: req.httpVersion, alpn: (req.socket as unknown as { alpnProtocol?: string }).alpnProtocol, path: req.url }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => server.close(r)));
  const proxy = await startProxy(zk.connectString, { upstreamCa: path.join(dir, 'cert.pem') });
  closers.push(() => proxy.close());
  const strict = await startProxy(zk.connectString, { basePath: proxy.basePath });
  closers.push(() => strict.close());
  const lib = await library(proxy.basePath);
  await lib.register('tls2', { protocol: 'h2', host: '127.0.0.1', port: (server.address() as AddressInfo).port, api: '/base' });
  await eventually(() => proxy.app.registry!.get('tls2')?.instances.length && strict.app.registry!.get('tls2')?.instances.length);
  const reply = await request(`${proxy.url}/tls2/x`);
  t.is(reply.status, 200);
  t.deepEqual(reply.json(), { version: '2.0', alpn: 'h2', path: '/base/x' });
  const refused = await request(`${strict.url}/tls2/x`);
  t.is(refused.status, 502);
  t.is(refused.json().error.code, 'PUTTU_UPSTREAM_TLS');
});

test('HTTP/2 requests are counted by protocol and logged with it', async (t) => {
  const lines: string[] = [];
  const logger = createLogger({ level: 'info', write: (line: string) => void lines.push(line) });
  const { proxy } = await proxyWithUpstream({ accessLog: 'on' }, { logger });
  await h2request(proxy.url, '/svc/counted');
  await request(`${proxy.url}/svc/counted1`);
  const metrics = await request(`${proxy.adminUrl}/metrics`);
  t.regex(metrics.body.toString(), /puttu_http2_requests_total\{protocol="h2c"\} 1\b/);
  // The request metrics carry the protocol too (bounded: http/1.1 or http/2).
  t.regex(metrics.body.toString(), /puttu_requests_total\{service="svc",method="GET",status_class="2xx",protocol="http\/2"\} 1\b/);
  t.regex(metrics.body.toString(), /puttu_requests_total\{service="svc",method="GET",status_class="2xx",protocol="http\/1\.1"\} 1\b/);
  const access = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request');
  t.is(access.find((l) => l.path === '/svc/counted')?.protocol, 'h2');
  t.is(access.find((l) => l.path === '/svc/counted1')?.protocol, undefined);
});

test('on shutdown, HTTP/2 clients get GOAWAY and the stream in flight still finishes', async (t) => {
  const proxy = await startProxy(zk.connectString, { shutdownGraceMs: 5_000 });
  let release: (() => void) | undefined;
  const slow = await upstream('slow', (_req, res) => {
    release = () => res.end('finished');
    res.writeHead(200, { 'content-type': 'text/plain' });
  });
  const lib = await library(proxy.basePath);
  await lib.register('slow', { host: '127.0.0.1', port: slow.port });
  await eventually(() => proxy.app.registry!.get('slow')?.instances.length);
  const session = http2.connect(proxy.url);
  closers.push(() => session.destroy());
  const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
  const inflight = h2request(session, '/slow/x');
  await eventually(() => release);
  const closing = proxy.close();
  await goaway;
  release!();
  const reply = await inflight;
  t.is(reply.status, 200);
  t.is(reply.body.toString(), 'finished');
  await closing;
});
