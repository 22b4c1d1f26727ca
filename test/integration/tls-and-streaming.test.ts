/**
 * HTTPS upstreams (verified against a configured CA, with an explicit per-service opt-out for
 * self-signed development certificates), the proxy itself serving TLS, and streamed responses
 * (server-sent events) forwarded as they arrive. Certificates are generated with openssl at test time.
 */
import test from 'ava';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { connect, type Puttu } from '../../proxy/index.js';
import { generateCertificates } from '../helpers/certificates.js';
import { eventually } from '../helpers/eventually.js';
import { startProxy } from '../helpers/proxy.js';
import { request, startUpstream } from '../helpers/upstreams.js';
import { startZooKeeper, type TestZooKeeper } from '../helpers/zookeeper.js';

let zk: TestZooKeeper;
let dir: string;
const pem = (name: string) => path.join(dir, name);
const closers: Array<() => unknown> = [];

test.before(async () => {
  // ca.pem signed server.pem/.key (127.0.0.1); self.pem/.key is self-signed.
  dir = generateCertificates(fs.mkdtempSync(path.join(os.tmpdir(), 'puttu-tls-'))).dir;
  zk = await startZooKeeper();
});

test.after.always(async () => {
  for (const c of closers.reverse()) await c();
  await zk?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function httpsUpstream(cert: string, key: string): Promise<number> {
  const server = https.createServer({ cert: fs.readFileSync(pem(cert)), key: fs.readFileSync(pem(key)) }, (req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ secure: true, url: req.url, proto: req.headers['x-forwarded-proto'] }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => {
    server.closeAllConnections();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

async function library(basePath: string): Promise<Puttu> {
  const lib = connect(zk.connectString, basePath);
  closers.push(() => lib.close());
  return lib;
}

test('HTTPS upstreams are verified against the configured CA; without it they are refused (502)', async (t) => {
  const port = await httpsUpstream('server.pem', 'server.key');
  const trusting = await startProxy(zk.connectString, { upstreamCa: pem('ca.pem') });
  closers.push(() => trusting.close());
  const strict = await startProxy(zk.connectString, { basePath: trusting.basePath });
  closers.push(() => strict.close());
  const lib = await library(trusting.basePath);
  await lib.register('secure', { protocol: 'https', host: '127.0.0.1', port, api: '/v1' });
  await eventually(() => trusting.app.registry!.get('secure')?.instances.length && strict.app.registry!.get('secure')?.instances.length);

  const ok = await request(trusting.url + '/secure/x');
  t.is(ok.status, 200);
  t.deepEqual(ok.json(), { secure: true, url: '/v1/x', proto: 'http' });

  const refused = await request(strict.url + '/secure/x');
  t.is(refused.status, 502);
  t.is(refused.json().error.code, 'PUTTU_UPSTREAM_TLS');
});

test('a self-signed upstream is reached only by the services that opt out of verification', async (t) => {
  const port = await httpsUpstream('self.pem', 'self.key');
  const proxy = await startProxy(zk.connectString, { upstreamCa: pem('ca.pem'), insecureServices: 'devsvc' });
  closers.push(() => proxy.close());
  const lib = await library(proxy.basePath);
  await lib.register('devsvc', { protocol: 'https', host: '127.0.0.1', port });
  await lib.register('prodsvc', { protocol: 'https', host: '127.0.0.1', port });
  await eventually(() => proxy.app.registry!.get('devsvc')?.instances.length && proxy.app.registry!.get('prodsvc')?.instances.length);
  t.is((await request(proxy.url + '/devsvc/x')).status, 200);
  const prod = await request(proxy.url + '/prodsvc/x');
  t.is(prod.status, 502, 'same endpoint, but this service did not opt out');
  t.is(prod.json().error.code, 'PUTTU_UPSTREAM_TLS');
});

test('the proxy serves TLS with a configured certificate, and says https upstream', async (t) => {
  const proxy = await startProxy(zk.connectString, { tlsCert: pem('server.pem'), tlsKey: pem('server.key') });
  closers.push(() => proxy.close());
  t.regex(proxy.url, /^https:\/\//);
  const upstream = await startUpstream('behind-tls');
  closers.push(() => upstream.close());
  const lib = await library(proxy.basePath);
  await lib.register('plain', { host: '127.0.0.1', port: upstream.port });
  await eventually(() => proxy.app.registry!.get('plain')?.instances.length);
  const reply = await new Promise<{ status: number; body: any }>((resolve, reject) => {
    https
      .get(proxy.url + '/plain/x', { ca: fs.readFileSync(pem('ca.pem')) }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(body) }));
      })
      .on('error', reject);
  });
  t.is(reply.status, 200);
  t.is(reply.body.headers['x-forwarded-proto'], 'https');
});

test('server-sent events are forwarded as they are sent, not buffered', async (t) => {
  const proxy = await startProxy(zk.connectString);
  closers.push(() => proxy.close());
  const sentAt: number[] = [];
  const got: Array<{ at: number; text: string }> = [];
  // The next event goes out once the client has the previous one, or after 3 s if it never came
  // (a proxy that buffers): a causal chain, so a stalled event loop in this busy test process
  // cannot reorder "received" and "next sent" the way a fixed 100 ms interval could.
  const upstream = await startUpstream('sse', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    void (async () => {
      for (let n = 0; n < 5; n++) {
        if (n > 0) await eventually(() => got.length >= n, { timeoutMs: 3_000 }).catch(() => undefined);
        sentAt.push(Date.now());
        res.write(`id: ${n}\ndata: event ${n}\n\n`);
      }
      res.end();
    })();
  });
  closers.push(() => upstream.close());
  const lib = await library(proxy.basePath);
  await lib.register('events', { host: '127.0.0.1', port: upstream.port });
  await eventually(() => proxy.app.registry!.get('events')?.instances.length);

  const arrivals = await new Promise<Array<{ at: number; text: string }>>((resolve, reject) => {
    http
      .get(proxy.url + '/events/stream', { agent: false }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          for (const event of chunk.split('\n\n').filter(Boolean)) got.push({ at: Date.now(), text: event });
        });
        res.on('end', () => resolve(got));
      })
      .on('error', reject);
  });
  t.is(arrivals.length, 5);
  t.deepEqual(
    arrivals.map((a) => /data: (.*)/.exec(a.text)![1]),
    ['event 0', 'event 1', 'event 2', 'event 3', 'event 4'],
  );
  // Each event arrives before the next one is even sent: nothing waits for the stream to end.
  for (let i = 0; i < 4; i++)
    t.true(arrivals[i]!.at <= sentAt[i + 1]!, `event ${i} arrived ${arrivals[i]!.at - sentAt[i]!} ms after it was sent`);
  t.log(`delivery delays: ${arrivals.map((a, i) => a.at - sentAt[i]!).join(', ')} ms`);
});
