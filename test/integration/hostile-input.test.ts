/**
 * Hostile or broken requests, sent as raw bytes to a real proxy. Each case asserts what the client
 * gets and, where it matters, what the upstream saw (nothing smuggled, nothing escaped).
 */
import test from 'ava';
import net from 'node:net';
import { connect, type Puttu } from '../../proxy/index.js';
import { eventually } from '../helpers/eventually.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request, startUpstream, type Upstream } from '../helpers/upstreams.js';
import { startZooKeeper, type TestZooKeeper } from '../helpers/zookeeper.js';

let zk: TestZooKeeper;
let proxy: TestProxy;
let lib: Puttu;
let svc: Upstream;
let other: Upstream;

test.before(async () => {
  zk = await startZooKeeper();
  proxy = await startProxy(zk.connectString, { clientHeadersTimeoutMs: 500, maxHeaderBytes: 8 * 1024 });
  lib = connect(zk.connectString, proxy.basePath);
  svc = await startUpstream('svc');
  other = await startUpstream('other');
  await lib.register('svc', { host: '127.0.0.1', port: svc.port, api: '/base' });
  await lib.register('other', { host: '127.0.0.1', port: other.port });
  await eventually(
    () => proxy.app.registry!.get('svc')?.instances.length === 1 && proxy.app.registry!.get('other')?.instances.length === 1,
  );
});

test.after.always(async () => {
  await lib?.close();
  await proxy?.close();
  await svc?.close();
  await other?.close();
  await zk?.stop();
});

/** Sends raw bytes; resolves with everything received until the server closes (or the deadline). */
function raw(text: string | string[], deadlineMs = 3_000): Promise<string> {
  const { port } = new URL(proxy.url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), '127.0.0.1');
    let out = '';
    socket.on('data', (d) => (out += d));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(out));
    const parts = Array.isArray(text) ? text : [text];
    socket.write(parts[0]!);
    let i = 1;
    const next = setInterval(() => (i < parts.length ? socket.write(parts[i++]!) : clearInterval(next)), 50);
    setTimeout(() => {
      clearInterval(next);
      socket.destroy();
    }, deadlineMs);
  });
}

const status = (response: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0);
const seenBoth = () => svc.seen.length + other.seen.length;

test.serial('request smuggling shapes are refused with 400 and never reach an upstream', async (t) => {
  const before = seenBoth();
  const shapes = {
    'CL and TE':
      'POST /svc/x HTTP/1.1\r\nHost: p\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /other/smuggled HTTP/1.1\r\nHost: p\r\n\r\n',
    'duplicate CL': 'POST /svc/x HTTP/1.1\r\nHost: p\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd',
    'bad CL': 'POST /svc/x HTTP/1.1\r\nHost: p\r\nContent-Length: 4x\r\n\r\nabcd',
    'obs-fold': 'GET /svc/x HTTP/1.1\r\nHost: p\r\nX-A: a\r\n folded\r\n\r\n',
    'TE other than chunked': 'POST /svc/x HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n',
  };
  for (const [name, bytes] of Object.entries(shapes)) {
    const response = await raw(bytes);
    t.is(status(response), 400, name);
    t.regex(response, /"code":"PUTTU_BAD_REQUEST"/, name);
  }
  t.is(seenBoth(), before, 'no upstream saw any of them');
  t.false(other.seen.some((s) => s.url.includes('smuggled')));
});

test.serial('oversized headers get 431; trickled headers are cut off with 408', async (t) => {
  const big = await raw(`GET /svc/x HTTP/1.1\r\nHost: p\r\nX-Big: ${'a'.repeat(10_000)}\r\n\r\n`);
  t.is(status(big), 431);
  t.regex(big, /PUTTU_HEADERS_TOO_LARGE/);
  const started = Date.now();
  const trickle = await raw(['GET /svc/x HTTP/1.1\r\n', ...Array.from({ length: 100 }, (_, i) => `X-${i}: y\r\n`)], 10_000);
  t.is(status(trickle), 408);
  t.true(Date.now() - started < 5_000, 'closed well before the trickle would end');
});

test.serial('absolute-form targets route by their path, never by their authority', async (t) => {
  const before = other.seen.length;
  const response = await raw('GET http://evil.example/svc/abs?q=1 HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n');
  t.is(status(response), 200);
  t.is(svc.seen.at(-1)!.url, '/base/abs?q=1');
  t.is(other.seen.length, before);
});

test.serial('path tricks never reach another service nor escape the api base path', async (t) => {
  const before = other.seen.length;
  for (const path of [
    '/svc/../other/x',
    '/svc/%2e%2e/other/x',
    '/svc/%2E%2e/%2e%2e/x',
    '/svc/a/../../other',
    '/svc/%2fother',
    '/svc/..%2fother',
    '/svc/a\\..\\..\\other',
  ]) {
    const reply = await request(proxy.url + path);
    t.is(reply.status, 400, path);
    t.is(reply.json().error.code, 'PUTTU_BAD_PATH', path);
  }
  t.is(other.seen.length, before, 'the other service saw nothing');
  // Allowed normalisations stay inside the api base path.
  for (const [path, upstream] of [
    ['/svc/a/../b', '/base/b'],
    ['/svc/./a/./b', '/base/a/b'],
    ['//svc///a//b', '/base/a/b'],
    ['/svc/a/%2e%2e/c', '/base/c'],
  ]) {
    const reply = await request(proxy.url + path!);
    t.is(reply.status, 200, path);
    t.is(reply.json().url, upstream, path);
  }
});

test.serial('Upgrade: h2c, Trailer and TE are not passed on; the request is served as HTTP/1.1', async (t) => {
  const response = await raw(
    'GET /svc/h2c HTTP/1.1\r\nHost: p\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nTrailer: X-T\r\nTE: trailers\r\n\r\n',
  );
  t.is(status(response), 200);
  const seen = svc.seen.at(-1)!;
  t.is(seen.url, '/base/h2c');
  for (const h of ['upgrade', 'http2-settings', 'trailer', 'te']) t.is(seen.headers[h], undefined, h);
});

test.serial('Expect: 100-continue is answered by the proxy and the body still arrives', async (t) => {
  const body = 'hello body';
  const response = await raw([
    `POST /svc/expect HTTP/1.1\r\nHost: p\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
    body,
  ]);
  t.regex(response, /^HTTP\/1\.1 100 Continue/);
  t.regex(response, /HTTP\/1\.1 200 OK/);
  t.is(svc.seen.at(-1)!.headers.expect, undefined);
  t.is(svc.seen.at(-1)!.headers['content-length'], String(body.length));
});

test('a request with two Host fields gets 400 and the connection closes, with the fast lane on or off, for upgrades too; it never reaches an upstream', async (t) => {
  const laneOff = await startProxy(zk.connectString, { basePath: proxy.basePath, fastLane: 'off' });
  t.teardown(() => laneOff.close());
  await eventually(() => laneOff.app.registry!.get('svc')?.instances.length === 1);
  const send = (url: string, text: string) =>
    new Promise<string>((resolve) => {
      const socket = net.connect(Number(new URL(url).port), '127.0.0.1');
      let out = '';
      socket.on('data', (d) => (out += d));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(out));
      socket.write(text);
      setTimeout(() => socket.destroy(), 3_000);
    });
  const before = seenBoth();
  for (const url of [proxy.url, laneOff.url]) {
    for (const text of [
      'GET /svc/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
      'GET /svc/x HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n',
      'GET /svc/x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nHost: b\r\n\r\n',
    ]) {
      const response = await send(url, text);
      t.is(status(response), 400, `${url}: ${JSON.stringify(text)} → ${response.split('\r\n')[0]}`);
      t.regex(response, /"code":"PUTTU_BAD_REQUEST"/);
      t.regex(response, /\r\nConnection: close\r\n/i);
    }
  }
  t.is(seenBoth(), before, 'nothing reached an upstream');
  // One Host is served as ever.
  t.is(status(await send(proxy.url, 'GET /svc/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')), 200);
});
