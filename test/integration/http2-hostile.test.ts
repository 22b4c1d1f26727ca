/**
 * Hostile HTTP/2, written frame by frame (test/helpers/h2-frames.ts): rapid reset, CONTINUATION
 * floods, oversized header lists, SETTINGS floods and zero-window stalls. Each is bounded: the
 * connection is closed (GOAWAY) or the stream refused, little or nothing reaches the upstream,
 * and another client is served meanwhile.
 */
import test from 'ava';
import type { ServerResponse } from 'node:http';
import { connect, type Puttu } from '../../proxy/index.js';
import { eventually, within } from '../helpers/eventually.js';
import { h2request } from '../helpers/h2.js';
import { FLAG, FRAME, SETTING, frame, goawayCode, headerBlock, rawH2, requestBlock, rstStream } from '../helpers/h2-frames.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request, startUpstream, type Upstream } from '../helpers/upstreams.js';
import { startZooKeeper, type TestZooKeeper } from '../helpers/zookeeper.js';

let zk: TestZooKeeper;
let proxy: TestProxy;
let lib: Puttu;
let slow: Upstream;
let big: Upstream;
/** Responses the slow upstream holds open (released at the end). */
const held: ServerResponse[] = [];
/** Bytes the big upstream managed to hand to its socket, per request. */
const written: number[] = [];
let bigClosed = 0;

test.before(async () => {
  zk = await startZooKeeper();
  // Short stream idle timeout (body timeout) so the stall test is quick.
  proxy = await startProxy(zk.connectString, { bodyTimeoutMs: 1_500 });
  lib = connect(zk.connectString, proxy.basePath);
  slow = await startUpstream('slow', (_req, res) => {
    held.push(res);
  });
  big = await startUpstream('big', (_req, res) => {
    // 32 MiB offered as fast as the socket takes it: what the proxy buffers is what it takes.
    const chunk = Buffer.alloc(64 * 1024, 97);
    let sent = 0;
    const index = written.push(0) - 1;
    res.on('close', () => bigClosed++);
    const pump = (): void => {
      while (sent < 512) {
        sent++;
        written[index]! += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    pump();
  });
  await lib.register('slow', { host: '127.0.0.1', port: slow.port });
  await lib.register('big', { host: '127.0.0.1', port: big.port });
  await eventually(() => proxy.app.registry!.get('slow')?.instances.length && proxy.app.registry!.get('big')?.instances.length);
});

test.after.always(async () => {
  for (const res of held) res.destroy();
  await lib?.close();
  await proxy?.close();
  await slow?.close();
  await big?.close();
  await zk?.stop();
});

const port = () => Number(new URL(proxy.url).port);

/**
 * CPU this process (the proxy, the attacking client and the upstreams together) has used since
 * `start` (a process.cpuUsage() reading), ms: an upper bound on what the attack cost the proxy.
 */
const cpuMs = (start: NodeJS.CpuUsage) => {
  const { user, system } = process.cpuUsage(start);
  return (user + system) / 1_000;
};
/** The CPU an attack below may cost, all of this process together. */
const ATTACK_CPU_MS = 2_000;

/** HTTP/2 client connections the proxy has open (its own gauge). */
async function sessions(): Promise<number> {
  const text = (await request(`${proxy.adminUrl}/metrics`)).body.toString();
  return Number(/^puttu_http2_sessions (\d+)$/m.exec(text)?.[1] ?? Number.NaN);
}

/** Another client, served while (or right after) the attack: the proxy is still there for it. */
async function bystanderServed(t: { is: (a: unknown, b: unknown, m?: string) => void }): Promise<void> {
  const upstream = await startUpstream('bystander');
  try {
    const reg = await lib.register('bystander', { host: '127.0.0.1', port: upstream.port });
    await eventually(() => proxy.app.registry!.get('bystander')?.instances.length);
    t.is((await h2request(proxy.url, '/bystander/x', { timeoutMs: 5_000 })).status, 200, 'another client is served');
    await reg.unregister();
  } finally {
    await upstream.close();
  }
}

test.serial(
  'rapid reset (CVE-2023-44487): streams opened and reset in a loop get the connection closed, few reach the upstream',
  async (t) => {
    const before = slow.seen.length;
    const c = await rawH2(port());
    const parts: Buffer[] = [];
    for (let i = 0; i < 20_000; i++) {
      const id = 1 + 2 * i;
      parts.push(frame(FRAME.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, id, requestBlock('/slow/x')), rstStream(id));
    }
    const cpu = process.cpuUsage();
    c.write(...parts);
    t.not(await within(c.closed, 5_000), 'pending', 'the connection is closed');
    const used = cpuMs(cpu);
    t.is(goawayCode(c.goaway()!), 11, 'with a GOAWAY, ENHANCE_YOUR_CALM');
    t.log(`20,000 opened and reset streams cost ${used.toFixed(0)} ms of CPU`);
    t.true(used < ATTACK_CPU_MS, `CPU ${used.toFixed(0)} ms`);
    await bystanderServed(t);
    const reached = slow.seen.length - before;
    t.log(`${reached} of 20,000 reset streams reached the upstream`);
    t.true(reached < 2_000, `${reached} of 20,000 reset streams reached the upstream`);
  },
);

test.serial('a CONTINUATION flood is cut with GOAWAY before any request is made of it', async (t) => {
  const before = slow.seen.length;
  const c = await rawH2(port());
  const parts = [frame(FRAME.HEADERS, FLAG.END_STREAM, 1, requestBlock('/slow/x'))];
  for (let i = 0; i < 20_000; i++) parts.push(frame(FRAME.CONTINUATION, 0, 1, headerBlock([[`x-f${i}`, 'v']])));
  const cpu = process.cpuUsage();
  c.write(...parts);
  t.not(await within(c.closed, 5_000), 'pending', 'the connection is closed');
  const used = cpuMs(cpu);
  t.log(`a 20,000-frame CONTINUATION flood cost ${used.toFixed(0)} ms of CPU`);
  t.true(used < ATTACK_CPU_MS, `CPU ${used.toFixed(0)} ms`);
  t.truthy(c.goaway());
  t.is(slow.seen.length, before, 'nothing reached the upstream');
  await bystanderServed(t);
});

test.serial('oversized header lists: too large is 431, too many fields is refused, and the connection goes on', async (t) => {
  const before = big.seen.length + slow.seen.length;
  const c = await rawH2(port());
  // 20 KiB of fields in a HEADERS and a CONTINUATION frame (each within the 16 KiB frame size).
  const large = requestBlock('/slow/x', '127.0.0.1', [
    ['x-big', 'a'.repeat(10_000)],
    ['x-big2', 'b'.repeat(10_000)],
  ]);
  c.write(
    frame(FRAME.HEADERS, FLAG.END_STREAM, 1, large.subarray(0, 12_000)),
    frame(FRAME.CONTINUATION, FLAG.END_HEADERS, 1, large.subarray(12_000)),
  );
  // 200 fields, over the 128 pairs a list may have.
  const many = requestBlock(
    '/slow/x',
    '127.0.0.1',
    Array.from({ length: 200 }, (_, i): [string, string] => [`x-${i}`, 'v']),
  );
  c.write(frame(FRAME.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, 3, many));
  await eventually(() => c.frames.some((f) => f.streamId === 1 && f.type === FRAME.HEADERS) && c.frames.some((f) => f.streamId === 3), {
    message: 'both streams answered',
  });
  const body = Buffer.concat(c.frames.filter((f) => f.streamId === 1 && f.type === FRAME.DATA).map((f) => f.payload)).toString();
  await eventually(() => body.includes('PUTTU_HEADERS_TOO_LARGE') || c.frames.some((f) => f.streamId === 1 && f.type === FRAME.DATA));
  const data = Buffer.concat(c.frames.filter((f) => f.streamId === 1 && f.type === FRAME.DATA).map((f) => f.payload)).toString();
  t.regex(data, /PUTTU_HEADERS_TOO_LARGE/);
  const reset = c.frames.find((f) => f.streamId === 3 && f.type === FRAME.RST_STREAM);
  t.truthy(reset, 'too many fields: the stream is reset');
  t.is(reset!.payload.readUInt32BE(0), 11, 'ENHANCE_YOUR_CALM');
  t.is(c.goaway(), undefined, 'the connection itself is fine');
  t.is(big.seen.length + slow.seen.length, before, 'nothing reached an upstream');
  c.socket.destroy();
});

test.serial('--http2-max-concurrent-streams: 100 streams at once are served; a client opening 150 loses its connection', async (t) => {
  const opened = async (n: number) => {
    const c = await rawH2(port());
    // Acknowledged, the proxy's SETTINGS (100 concurrent streams) are in force.
    c.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
    await eventually(() => c.frames.some((f) => f.type === FRAME.SETTINGS && f.flags === 0), { message: "the proxy's SETTINGS" });
    const parts: Buffer[] = [];
    for (let i = 0; i < n; i++) parts.push(frame(FRAME.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, 1 + 2 * i, requestBlock('/slow/held')));
    c.write(...parts);
    return c;
  };
  const before = slow.seen.length;
  const within100 = await opened(100);
  await eventually(() => slow.seen.length - before === 100, { message: '100 streams forwarded' });
  t.is(within100.goaway(), undefined);
  within100.socket.destroy();

  const after = slow.seen.length;
  const over = await opened(150);
  t.not(await within(over.closed, 5_000), 'pending', 'the connection is closed');
  t.truthy(over.goaway(), 'with a GOAWAY');
  t.true(slow.seen.length - after <= 100, `${slow.seen.length - after} forwarded`);
  await bystanderServed(t);
});

test.serial('a SETTINGS flood from a client that reads nothing is cut, memory bounded', async (t) => {
  const rss = process.memoryUsage().rss;
  await eventually(async () => (await sessions()) === 0, { message: 'no HTTP/2 session open before' });
  const c = await rawH2(port(), { read: false });
  await eventually(async () => (await sessions()) === 1, { message: 'the session is open' });
  const one = frame(FRAME.SETTINGS, 0, 0, Buffer.from([0, SETTING.MAX_CONCURRENT_STREAMS, 0, 0, 0, 100]));
  const cpu = process.cpuUsage();
  for (let i = 0; i < 10; i++) c.write(...Array.from({ length: 10_000 }, () => one));
  // The client reads nothing, so it cannot see the close: the proxy's count of sessions can.
  await eventually(async () => (await sessions()) === 0, { timeoutMs: 8_000, message: 'the proxy closed the session' });
  const used = cpuMs(cpu);
  t.log(`100,000 unacknowledged SETTINGS cost ${used.toFixed(0)} ms of CPU`);
  t.true(used < ATTACK_CPU_MS, `CPU ${used.toFixed(0)} ms`);
  c.socket.resume();
  t.not(await within(c.closed, 5_000), 'pending', 'the connection is closed');
  // No GOAWAY to check here: the proxy cuts a session whose client reads nothing, and the bytes
  // it had sent are lost with the reset that its unread input causes.
  const grown = (process.memoryUsage().rss - rss) / 2 ** 20;
  t.true(grown < 100, `RSS grew ${grown.toFixed(1)} MiB`);
  await bystanderServed(t);
});

test.serial('a zero-window stall: the proxy takes only a bounded part of the answer, then resets the stream', async (t) => {
  const c = await rawH2(port(), { initial: [[SETTING.INITIAL_WINDOW_SIZE, 0]] });
  c.write(frame(FRAME.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, 1, requestBlock('/big/download')));
  await eventually(() => written.length === 1, { message: 'the upstream is asked' });
  const reset = await eventually(() => c.frames.find((f) => f.streamId === 1 && f.type === FRAME.RST_STREAM), {
    timeoutMs: 8_000,
    message: 'the stalled stream is reset',
  });
  t.truthy(reset);
  t.true(written[0]! < 16 * 2 ** 20, `the upstream handed ${(written[0]! / 2 ** 20).toFixed(1)} of 32 MiB to its socket`);
  await eventually(() => bigClosed === 1, { message: 'the upstream request is cancelled' });
  t.is(c.goaway(), undefined, 'only the stream is reset; the connection is not the one at fault');
  c.socket.destroy();
  await bystanderServed(t);
});

test.serial('--http2-window-bytes: the receive windows a client is given, per stream and for the connection', async (t) => {
  const settingsOf = async (url: string) => {
    const c = await rawH2(Number(new URL(url).port));
    t.teardown(() => c.socket.destroy());
    const settings = await eventually(() => c.frames.find((f) => f.type === FRAME.SETTINGS && f.flags === 0), {
      message: "the proxy's SETTINGS",
    });
    const values = new Map<number, number>();
    for (let i = 0; i + 6 <= settings.payload.length; i += 6)
      values.set(settings.payload.readUInt16BE(i), settings.payload.readUInt32BE(i + 2));
    // The connection's window grows by WINDOW_UPDATE on stream 0 (its initial size is fixed at
    // 65,535), sent as the session starts: before the answer to a PING sent now.
    c.write(frame(FRAME.PING, 0, 0, Buffer.alloc(8)));
    await eventually(() => c.frames.some((f) => f.type === FRAME.PING && f.flags === FLAG.ACK), { message: 'the PING answered' });
    const grown = c.frames
      .filter((f) => f.type === FRAME.WINDOW_UPDATE && f.streamId === 0)
      .reduce((sum, f) => sum + f.payload.readUInt32BE(0), 0);
    return { stream: values.get(SETTING.INITIAL_WINDOW_SIZE) ?? 65_535, connection: 65_535 + grown };
  };
  const wide = await startProxy(zk.connectString, { http2WindowBytes: 1024 * 1024 });
  t.teardown(() => wide.close());
  t.deepEqual(await settingsOf(proxy.url), { stream: 65_535, connection: 65_535 }, 'the default: the protocol’s 65,535');
  t.deepEqual(await settingsOf(wide.url), { stream: 1024 * 1024, connection: 1024 * 1024 });
});
