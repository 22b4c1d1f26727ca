/**
 * The reused upstream read buffers (proxy/forward/read-buffers.ts): bodies arrive byte for byte
 * however the reads fall, whatever the client's pace, and the buffers really are reused (a change
 * in undici that stopped it would show here, not as a slower proxy nobody notices).
 */
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { connect } from '../../proxy/index.js';
import { eventually } from '../helpers/eventually.js';
import { startProxy } from '../helpers/proxy.js';
import { shareZooKeeper } from '../helpers/shared-zookeeper.js';
import { request, startUpstream } from '../helpers/upstreams.js';

const shared = shareZooKeeper();
const { cleanups } = shared;

/** A seeded source, so a failure names a case that can be run again. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Every body is a slice of this (random, so a byte from the wrong place shows). */
const SOURCE = randomBytes(16 * 1024 * 1024);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * `/<size>/<offset>/<framing>/<seed>`: SOURCE[offset, offset + size), with Content-Length (`cl`)
 * or chunked, written in pieces of seeded random sizes, some a turn of the event loop apart, so
 * the proxy's reads end anywhere in the body. `/head` and `/304`: responses without a body.
 */
function bodies(req: http.IncomingMessage, res: http.ServerResponse): void {
  const [, size, offset, framing, seed] = (req.url ?? '').split('/');
  if (framing === '304') {
    res.writeHead(304, { etag: '"x"' });
    res.end();
    return;
  }
  const body = SOURCE.subarray(Number(offset), Number(offset) + Number(size));
  if (framing === 'cl' || req.method === 'HEAD') res.setHeader('content-length', body.length);
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const random = mulberry32(Number(seed));
  let at = 0;
  const more = (): void => {
    while (at < body.length) {
      const n = Math.min(body.length - at, 1 + Math.floor(random() * 96 * 1024));
      const ok = res.write(body.subarray(at, at + n));
      at += n;
      if (!ok) return void res.once('drain', more);
      if (random() < 0.3) return void setImmediate(more);
    }
    res.end();
  };
  more();
}

type Pace = 'fast' | 'slow' | 'trickle';

interface Case {
  i: number;
  size: number;
  offset: number;
  framing: string;
  method: string;
  pace: Pace;
  seed: number;
}

/**
 * GET (or HEAD) through the proxy. A slow client waits a millisecond after each chunk it reads; a
 * trickling one reads about 8 MiB/s, slower than the proxy writes: once the kernel's buffers (a
 * few MiB on loopback) are full, the proxy's writes to it wait on the socket with their bytes
 * still in the read buffers they came in.
 */
function fetchBody(agent: http.Agent, url: string, method: string, pace: Pace): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent, method }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (chunk: Buffer) => {
        parts.push(chunk);
        if (pace === 'fast') return;
        res.pause();
        setTimeout(() => res.resume(), pace === 'slow' ? 1 : chunk.length / 8192);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

for (const fastLane of ['on', 'off'] as const) {
  test(`fast lane ${fastLane}: 406 bodies of 0 B to 12 MiB, Content-Length and chunked, to fast, slow and trickling clients, arrive byte for byte through reused read buffers`, async (t) => {
    const proxy = await startProxy(shared.zk.connectString, { fastLane });
    cleanups.push(() => proxy.close());
    const lib = connect(shared.zk.connectString, proxy.basePath);
    cleanups.push(() => lib.close());
    const ups = [await startUpstream('a', bodies), await startUpstream('b', bodies)];
    for (const u of ups) cleanups.push(() => u.close());
    for (const u of ups) await lib.register('bodies', { host: '127.0.0.1', port: u.port });
    await eventually(() => proxy.app.registry!.get('bodies')?.instances.length === 2, { message: 'both instances routed' });

    const random = mulberry32(fastLane === 'on' ? 7 : 8);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 24 });
    cleanups.push(async () => agent.destroy());
    const cases = Array.from({ length: 400 }, (_, i): Case => {
      const r = random();
      const size =
        r < 0.35
          ? Math.floor(random() * 4096)
          : r < 0.65
            ? 4096 + Math.floor(random() * 100_000)
            : 100_000 + Math.floor(random() * 948_576);
      const offset = Math.floor(random() * (SOURCE.length - size));
      const kind = random();
      const framing = kind < 0.05 ? '304' : random() < 0.5 ? 'cl' : 'chunked';
      const method = kind >= 0.05 && kind < 0.1 ? 'HEAD' : 'GET';
      const pace: Pace = random() < 0.15 ? 'slow' : 'fast';
      return { i, size, offset, framing, method, pace, seed: Math.floor(random() * 2 ** 31) };
    });
    // Among them, large bodies to trickling clients: while the writes to them wait, the other
    // responses keep reading into buffers, so a buffer returned too early would be overwritten.
    for (let i = 0; i < 6; i++) {
      const size = 8 * 1024 * 1024 + Math.floor(random() * 4 * 1024 * 1024);
      const offset = Math.floor(random() * (SOURCE.length - size));
      cases.splice(i * 4, 0, { i: 400 + i, size, offset, framing: i % 2 ? 'chunked' : 'cl', method: 'GET', pace: 'trickle', seed: i });
    }
    let next = 0;
    const failures: string[] = [];
    const worker = async (): Promise<void> => {
      while (next < cases.length) {
        const c = cases[next++]!;
        const url = `${proxy.url}/bodies/${c.size}/${c.offset}/${c.framing}/${c.seed}`;
        const got = await fetchBody(agent, url, c.method, c.pace);
        const bodyless = c.framing === '304' || c.method === 'HEAD';
        const want = bodyless ? Buffer.alloc(0) : SOURCE.subarray(c.offset, c.offset + c.size);
        if (got.status !== (c.framing === '304' ? 304 : 200) || sha(got.body) !== sha(want)) {
          failures.push(`case ${c.i} (${c.method} ${url}, ${c.pace} client): status ${got.status}, ${got.body.length} bytes`);
        }
      }
    };
    await Promise.all(Array.from({ length: 24 }, worker));
    t.deepEqual(failures, [], 'every body arrived whole and unchanged');

    // Then plain large responses, one after another: past the first, every read should go into a
    // buffer that came back. If this fails while the bodies above are whole, undici no longer
    // hands body chunks as views of the socket's reads (lib/dispatcher/client-h1.js,
    // wasm_on_body): the reuse is lost, not the bytes.
    const counts = async () => {
      const metrics = (await request(`${proxy.adminUrl}/metrics`)).body.toString();
      const read = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(metrics)?.[1]);
      return {
        allocated: read('puttu_upstream_read_buffers_allocated_total'),
        returned: read('puttu_upstream_read_buffers_returned_total'),
      };
    };
    const before = await counts();
    t.log(`mixed load: ${before.allocated} buffers allocated, returned for reuse ${before.returned} times`);
    const single = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(async () => single.destroy());
    for (let i = 0; i < 50; i++) {
      const got = await fetchBody(single, `${proxy.url}/bodies/262144/${i * 1000}/cl/${i}`, 'GET', 'fast');
      if (!got.body.equals(SOURCE.subarray(i * 1000, i * 1000 + 262144))) t.fail(`large response ${i} changed`);
    }
    const after = await counts();
    const allocated = after.allocated - before.allocated;
    const returned = after.returned - before.returned;
    t.log(`50 × 256 KiB: ${allocated} buffers allocated, returned for reuse ${returned} times`);
    t.true(returned >= 100, `buffers came back (${returned} times; undici still hands out views of the reads)`);
    t.true(allocated <= 8, `reads went into returned buffers (${allocated} new ones for 50 large responses)`);
  });
}
