/**
 * WebSockets through the proxy with a real client and server (`ws`): routing, failed and refused
 * upgrades, upstreams dying mid-stream, idle timeouts and client aborts; the proxy stays up.
 */
import test from 'ava';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { connect, type Puttu } from '../../proxy/index.js';
import { freePort } from '../../proxy/dev/local-zookeeper.js';
import { eventually } from '../helpers/eventually.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request } from '../helpers/upstreams.js';
import { startZooKeeper, type TestZooKeeper } from '../helpers/zookeeper.js';

let zk: TestZooKeeper;
let proxy: TestProxy;
let lib: Puttu;
const closers: Array<() => unknown> = [];

test.before(async () => {
  zk = await startZooKeeper();
  proxy = await startProxy(zk.connectString, { wsIdleTimeoutMs: 400, connectTimeoutMs: 1_000 });
  lib = connect(zk.connectString, proxy.basePath);
});
test.after.always(async () => {
  for (const c of closers) await c();
  await lib?.close();
  await proxy?.close();
  await zk?.stop();
});

async function wsUpstream(service: string, api = '', onConnection?: (socket: WebSocket, req: http.IncomingMessage) => void) {
  const server = http.createServer((_req, res) => res.end('plain'));
  const wss = new WebSocketServer({ server });
  const seen: http.IncomingMessage[] = [];
  wss.on('connection', (socket, req) => {
    seen.push(req);
    if (onConnection) onConnection(socket, req);
    else socket.on('message', (data) => socket.send(`echo:${data}`));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => {
    for (const c of wss.clients) c.terminate();
    wss.close();
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as AddressInfo).port;
  await lib.register(service, { host: '127.0.0.1', port, api });
  await eventually(() => proxy.app.registry!.get(service)?.instances.length);
  return { server, wss, seen, port };
}

const wsUrl = (path: string) => proxy.url.replace('http://', 'ws://') + path;

function open(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
}

function unexpected(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('open', () => reject(new Error('the upgrade should have failed')));
    ws.once('error', () => undefined);
  });
}

test('an upgrade is routed with the same path rules, and messages flow both ways', async (t) => {
  const up = await wsUpstream('chat', '/api');
  const ws = new WebSocket(wsUrl('/chat/room/1?user=ada'), { headers: { 'x-request-id': 'ws-1' } });
  await open(ws);
  const reply = new Promise<string>((resolve) => ws.once('message', (d) => resolve(String(d))));
  ws.send('hello');
  t.is(await reply, 'echo:hello');
  const req = up.seen.at(-1)!;
  t.is(req.url, '/api/room/1?user=ada');
  t.is(req.headers['x-forwarded-for'], '127.0.0.1');
  t.is(req.headers['x-request-id'], 'ws-1');
  t.is(req.headers.host, `127.0.0.1:${up.port}`);
  ws.close();
});

test('a refused upgrade (upstream answers 403) reaches the client; the proxy keeps serving', async (t) => {
  const server = http.createServer((_req, res) => res.end('plain'));
  server.on('upgrade', (_req, socket) => socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => server.close());
  await lib.register('forbidden', { host: '127.0.0.1', port: (server.address() as AddressInfo).port });
  await eventually(() => proxy.app.registry!.get('forbidden')?.instances.length);
  t.is(await unexpected(wsUrl('/forbidden/x')), 403);
  t.is((await request(proxy.url + '/forbidden/x')).status, 200, 'proxy alive, HTTP still routed');
});

test('an unreachable upstream gives 502; an unknown service 404; the process survives', async (t) => {
  await lib.register('nows', { host: '127.0.0.1', port: await freePort() });
  await eventually(() => proxy.app.registry!.get('nows')?.instances.length);
  t.is(await unexpected(wsUrl('/nows/x')), 502);
  t.is(await unexpected(wsUrl('/no-such-service/x')), 404);
  t.is((await request(proxy.adminUrl + '/healthz')).status, 200);
});

/** What a failed upgrade answered: status, reason phrase and the error code of its JSON body. */
function refusal(url: string): Promise<{ status: number; reason: string; code: string | undefined }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        ws.terminate();
        let code: string | undefined;
        try {
          code = (JSON.parse(body) as { error?: { code?: string } }).error?.code;
        } catch {}
        resolve({ status: res.statusCode ?? 0, reason: res.statusMessage ?? '', code });
      });
    });
    ws.once('open', () => reject(new Error('the upgrade should have failed')));
    ws.once('error', () => undefined);
  });
}

test('a failed upgrade answers with the status of its cause: 504 timed out, 502 refused, 404 unknown service, 503 no instance', async (t) => {
  // A proxy of its own, with a short answer deadline, on the same registry tree.
  const timing = await startProxy(zk.connectString, { basePath: proxy.basePath, connectTimeoutMs: 1_000, upstreamTimeoutMs: 800 });
  closers.push(() => timing.close());
  const url = (path: string) => timing.url.replace('http://', 'ws://') + path;
  // Accepts the connection and reads the handshake, never answers it.
  const silent = net.createServer((socket) => socket.on('data', () => undefined).on('error', () => undefined));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => silent.close(r)));
  await lib.register('silentws', { host: '127.0.0.1', port: (silent.address() as AddressInfo).port });
  await lib.register('refusedws', { host: '127.0.0.1', port: await freePort() });
  // A service whose only instance left: its node stays, with no live instance under it.
  const leaving = connect(zk.connectString, proxy.basePath);
  await leaving.register('emptyws', { host: '127.0.0.1', port: await freePort() });
  await eventually(() => timing.app.registry!.get('emptyws')?.instances.length === 1);
  await leaving.close();
  await eventually(
    () =>
      timing.app.registry!.get('silentws')?.instances.length &&
      timing.app.registry!.get('refusedws')?.instances.length &&
      timing.app.registry!.get('emptyws')?.instances.length === 0,
  );

  const started = Date.now();
  t.deepEqual(await refusal(url('/silentws/x')), { status: 504, reason: 'Gateway Timeout', code: 'PUTTU_UPSTREAM_TIMEOUT' });
  t.true(Date.now() - started >= 700, `answered after ${Date.now() - started} ms, the deadline is 800`);
  t.deepEqual(await refusal(url('/refusedws/x')), { status: 502, reason: 'Bad Gateway', code: 'PUTTU_UPSTREAM_REFUSED' });
  t.deepEqual(await refusal(url('/no-such-service/x')), { status: 404, reason: 'Not Found', code: 'PUTTU_UNKNOWN_SERVICE' });
  t.deepEqual(await refusal(url('/emptyws/x')), { status: 503, reason: 'Service Unavailable', code: 'PUTTU_NO_INSTANCES' });
});

test('an upstream that dies mid-stream closes the client socket', async (t) => {
  const up = await wsUpstream('dies', '', (socket) => socket.on('message', () => socket.terminate()));
  const ws = new WebSocket(wsUrl('/dies/x'));
  await open(ws);
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  ws.send('bye');
  t.is(await closed, 1006, 'abnormal closure: the tunnel was cut');
  t.true(up.seen.length >= 1);
});

test('an idle WebSocket is closed after the idle timeout; an active one is not', async (t) => {
  await wsUpstream('idle');
  const idle = new WebSocket(wsUrl('/idle/x'));
  await open(idle);
  const started = Date.now();
  await new Promise<void>((resolve) => idle.once('close', () => resolve()));
  const lasted = Date.now() - started;
  t.true(lasted >= 350 && lasted < 5_000, `closed after ${lasted} ms`);

  const active = new WebSocket(wsUrl('/idle/y'));
  await open(active);
  let echoes = 0;
  active.on('message', () => echoes++);
  const until = Date.now() + 1_200;
  while (Date.now() < until) {
    active.send('ping');
    await eventually(() => echoes > 0);
    echoes = 0;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.is(active.readyState, WebSocket.OPEN, 'traffic keeps it open past three idle timeouts');
  active.close();
});

test('a client that leaves during the handshake aborts the upstream request', async (t) => {
  let upstreamClosed = false;
  const server = http.createServer();
  server.on('upgrade', (_req, socket) => {
    // Never answers the handshake; reads, so it sees the proxy hang up (FIN: 'end').
    socket.on('data', () => undefined);
    socket.on('end', () => (upstreamClosed = true));
    socket.on('close', () => (upstreamClosed = true));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => {
    server.closeAllConnections();
    server.close();
  });
  await lib.register('hang', { host: '127.0.0.1', port: (server.address() as AddressInfo).port });
  await eventually(() => proxy.app.registry!.get('hang')?.instances.length);
  const ws = new WebSocket(wsUrl('/hang/x'));
  ws.on('error', () => undefined);
  await eventually(() => server.listenerCount('upgrade') > 0 && (server as any)._connections > 0, {
    message: 'upstream holds the handshake',
  });
  ws.terminate();
  await eventually(() => upstreamClosed, { message: 'upstream request aborted' });
  t.true(upstreamClosed);
});
