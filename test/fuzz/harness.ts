/**
 * The fast-lane fuzzer's harness: one real ZooKeeper, one real upstream echo backend registered in
 * it, and two real proxies on the same base path, one with the fast lane and one without (Node's
 * own parser). Each generated case (generator.ts) is sent over raw TCP to both; the normalised
 * outcomes must be equal:
 *
 * - every response on the connection (status, fields, body), with the volatile parts masked as
 *   test/integration/fast-lane.test.ts masks them (Date, generated ids, the upstream's port),
 *   plus the client's address (see below) and the harness's own x-seen field;
 * - whether the proxy closed the connection (within the observation window);
 * - any bytes after the last complete response;
 * - what the upstream received for each answered request (method, target, fields as sent, body),
 *   in any order.
 *
 * For a 2xx the upstream's answer is its echo of the request (method, url, fields, body), so the
 * responses carry what the upstream saw; its own record adds what the other answers do not show.
 *
 * Where the lane differs from Node's path by design (it waits for small bodies; it serves
 * pipelined requests one at a time, where Node's parser reads ahead), runCase compares the lane
 * with Node's path run as the lane works; readAheadEquivalent says what else Node's reading ahead
 * makes vary. Each such match is counted in the summary.
 *
 * Every connection comes from its own loopback address (127.x.y.z, to 127.0.0.1): X-Forwarded-For
 * tells the upstream which connection a request came from, so cases can run concurrently.
 */
import { createHash } from 'node:crypto';
import type http from 'node:http';
import net from 'node:net';
import { connect, type Puttu } from '../../proxy/index.js';
import { eventually } from '../helpers/eventually.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstreams.js';
import { startZooKeeper, type TestZooKeeper } from '../helpers/zookeeper.js';
import { generateCase, LIMITS, type FuzzCase } from './generator.js';

// ---------------------------------------------------------------------------------------------
// The environment

/** What the upstream received on one case's connection. */
interface Seen {
  method: string;
  url: string;
  /** Field names and values as received (rawHeaders), volatile parts masked. */
  headers: string[];
  /** The body (latin1; a digest when long), or how it ended short. */
  body: string;
}

export interface FuzzEnv {
  zk: TestZooKeeper;
  lane: TestProxy;
  node: TestProxy;
  upstream: Upstream;
  /** Upstream requests by client address, for the connections in progress. */
  seen: Map<string, Seen[]>;
  /** Upstream requests from no connection in progress (after their case ended). */
  late: number;
  /** What the lane did on each of its connections in progress, by client address (see watchLane). */
  laneWork: Map<string, LaneWork>;
  close(): Promise<void>;
}

/** What the lane did on one connection. */
export interface LaneWork {
  /** Requests it took itself. */
  took: number;
  /** Whether it handed the connection to Node's parser. */
  handedOff: boolean;
}

/**
 * Counts, per client address, the requests the lane takes and whether it hands the connection on,
 * by wrapping the lane's handler and its hand-off to Node (fields of the lane object, not of its
 * FastLane interface: observed only, nothing changed). Without them (the lane changed shape) the
 * counts stay undefined and the comparisons that need them are not made.
 */
function watchLane(lane: unknown, work: Map<string, LaneWork>): boolean {
  const l = lane as { handler?: unknown; toNode?: unknown };
  if (typeof l.handler !== 'function' || typeof l.toNode !== 'function') return false;
  const handler = l.handler as (req: { socket: net.Socket }, ...rest: unknown[]) => void;
  const toNode = l.toNode as (socket: net.Socket) => void;
  l.handler = function (this: unknown, req: { socket: net.Socket }, ...rest: unknown[]) {
    const w = work.get(req.socket.remoteAddress ?? '');
    if (w) w.took++;
    return handler.call(this, req, ...rest);
  };
  l.toNode = function (this: unknown, socket: net.Socket) {
    const w = work.get(socket.remoteAddress ?? '');
    if (w) w.handedOff = true;
    return toNode.call(this, socket);
  };
  return true;
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

/** Masks what legitimately differs between two runs of the same request. */
function mask(s: string): string {
  return (
    s
      .replace(UUID, 'UUID')
      // The upstream's own address (its Host field), as the existing differential test masks it.
      .replace(/127\.0\.0\.1:\d+/g, 'ADDR')
      // The client's address: each connection has its own (see above).
      .replace(/127\.\d+\.\d+\.\d+/g, 'CLIENT')
  );
}

function bodyText(body: Buffer): string {
  return body.length <= 64
    ? body.toString('latin1')
    : `${body.length} bytes, sha256 ${createHash('sha256').update(body).digest('hex').slice(0, 16)}`;
}

/** The client address a request came from: the last X-Forwarded-For entry (the proxy's own). */
function clientOf(req: http.IncomingMessage): string {
  const xff = req.headers['x-forwarded-for'];
  const value = Array.isArray(xff) ? xff.join(', ') : (xff ?? '');
  return value.slice(value.lastIndexOf(',') + 1).trim();
}

function upstreamHandler(env: { seen: Map<string, Seen[]>; late: number }) {
  return (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const list = env.seen.get(clientOf(req));
    const seen: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.rawHeaders.map(mask), body: '(not received)' };
    const headers = [...req.rawHeaders];
    const te = headers.findIndex((h, i) => i % 2 === 0 && h.toLowerCase() === 'transfer-encoding' && headers[i + 1] === 'chunked');
    const sentChunked = te >= 0;
    if (list === undefined) env.late++;
    else list.push(seen);
    // Which record this response answers (the fuzzer takes the field out before comparing).
    const tag = String(list === undefined ? -1 : list.length - 1);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('aborted', () => (seen.body = '(aborted)'));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.body = bodyText(body);
      // The framing of the upstream hop is undici's choice: a body it has whole when it writes the
      // request gets a Content-Length, one still streaming from the client is sent chunked (on
      // Node's path that depends on how the client's bytes were read). The body is compared.
      if (sentChunked) {
        headers.splice(te, 2, 'content-length', String(body.length));
        seen.headers = headers.map(mask);
      }

      const path = req.url ?? '';
      if (path.startsWith('/status/')) {
        const status = Number(path.slice(8, 11));
        res.writeHead(status >= 200 && status <= 599 ? status : 400, { 'x-kind': 'status', 'x-seen': tag });
        return res.end();
      }
      if (path.startsWith('/chunked')) {
        // No Content-Length: the proxy frames it for its client.
        res.writeHead(200, { 'content-type': 'text/plain', 'x-seen': tag });
        res.write('first part\n');
        return setImmediate(() => res.end('second part\n'));
      }
      if (path.startsWith('/hdrs')) {
        // Fields the proxy must drop (hop-by-hop, and one named in Connection), and repeated ones.
        res.writeHead(200, [
          'Connection',
          'x-drop',
          'X-Drop',
          '1',
          'Keep-Alive',
          'timeout=9',
          'Set-Cookie',
          'a=1',
          'Set-Cookie',
          'b=2',
          'X-Empty',
          '',
          'x-seen',
          tag,
          'Content-Length',
          '2',
        ]);
        return res.end('ok');
      }
      if (path.startsWith('/close')) {
        // The upstream closes its connection after answering: not the client's business.
        res.writeHead(200, { connection: 'close', 'content-length': '6', 'x-seen': tag });
        return res.end('closed');
      }
      const text = JSON.stringify({ method: req.method, url: req.url, headers, body: bodyText(body) });
      res.writeHead(200, { 'content-type': 'application/json', 'x-multi': ['a', 'b'], 'x-seen': tag });
      res.end(text);
    });
  };
}

/** Starts ZooKeeper, the upstream and both proxies; resolves once both proxies route to it. */
export async function startFuzzEnv(): Promise<FuzzEnv> {
  const zk = await startZooKeeper();
  const partial: { seen: Map<string, Seen[]>; late: number } = { seen: new Map(), late: 0 };
  const laneWork = new Map<string, LaneWork>();
  let lane: TestProxy | undefined;
  let node: TestProxy | undefined;
  let upstream: Upstream | undefined;
  let lib: Puttu | undefined;
  try {
    const shared = { maxHeaderBytes: LIMITS.maxHeaderBytes, maxBodyBytes: LIMITS.maxBodyBytes };
    lane = await startProxy(zk.connectString, { ...shared, fastLane: 'on' });
    node = await startProxy(zk.connectString, { ...shared, fastLane: 'off', basePath: lane.basePath });
    upstream = await startUpstream('svc', upstreamHandler(partial));
    // The helper's own record of every request is not needed (and would grow without end).
    const seenByHelper = upstream.seen;
    upstream.server.prependListener('request', () => (seenByHelper.length = 0));
    lib = connect(zk.connectString, lane.basePath);
    await lib.register('svc', { host: '127.0.0.1', port: upstream.port });
    await eventually(
      () => lane!.app.registry!.get('svc')?.instances.length === 1 && node!.app.registry!.get('svc')?.instances.length === 1,
      { timeoutMs: 20_000, message: 'both proxies route svc' },
    );
    if (lane.app.fastLane === undefined) throw new Error('the proxy started with fastLane: on has no fast lane');
    watchLane(lane.app.fastLane, laneWork);
  } catch (error) {
    await lib?.close().catch(() => undefined);
    await lane?.close().catch(() => undefined);
    await node?.close().catch(() => undefined);
    await upstream?.close().catch(() => undefined);
    await zk.stop().catch(() => undefined);
    throw error;
  }
  const env: FuzzEnv = {
    zk,
    lane: lane!,
    node: node!,
    upstream: upstream!,
    get seen() {
      return partial.seen;
    },
    get late() {
      return partial.late;
    },
    laneWork,
    async close() {
      await lib?.close().catch(() => undefined);
      await lane?.close().catch(() => undefined);
      await node?.close().catch(() => undefined);
      await upstream?.close().catch(() => undefined);
      await zk.stop().catch(() => undefined);
    },
  };
  return env;
}

// ---------------------------------------------------------------------------------------------
// One connection

export interface Response {
  status: number;
  /** The fields, as sent ("Name: value"). */
  headers: string[];
  body: string;
  /** Normalised responses: whether the upstream answered it (else Node or puttu itself did). */
  fromUpstream?: boolean;
}

export interface Outcome {
  responses: Response[];
  /** The proxy closed the connection (within the observation window). */
  closed: boolean;
  /** Bytes after the last complete response (a partial one, or anything not HTTP). */
  rest: string;
  /**
   * The upstream's record of the requests on this connection whose responses reached the client,
   * sorted (Node's path forwards pipelined requests concurrently, in no fixed order).
   */
  upstream: string[];
  /**
   * Not compared: upstream requests whose responses never reached the client. Node's parser reads
   * pipelined requests ahead and forwards each as soon as its head is parsed; when the connection
   * then ends (a parse error further on, a Connection: close before) they are abandoned at a point
   * that depends on timing, and they may or may not have reached the upstream. The lane takes one
   * request at a time (its responses always go out before it reads on), and waits up to 1-2 s for
   * a small body before forwarding (fast-lane.ts, BUFFERED_BODY): a request still arriving may
   * already be upstream on Node's path and not yet on the lane's.
   */
  unanswered: string[];
  /**
   * Not compared: the proxy reset the connection (it closed with bytes of ours unread, and we
   * wrote more or had not read all yet). A reset can drop what arrived before it unread, so an
   * outcome with one is not trusted on its own (see fuzz()).
   */
  reset: boolean;
  /** Not compared: whether the observation ended by its time limit, and how long it took. */
  timedOut: boolean;
  ms: number;
  /** On the lane's proxy: what the lane did on the connection (undefined: not known). */
  lane?: LaneWork;
}

/** Timing of the observation (ms). */
export interface Timing {
  /** Quiet time after the expected responses before the connection is judged left open. */
  settle: number;
  /** Quiet time when fewer responses arrived than requests were sent (both may be waiting). */
  idle: number;
  /** Wait for the close after a response that says Connection: close. */
  closeWait: number;
  /** Paced writes: the longest wait for the responses before the next request's bytes. */
  gate: number;
  /** Upper bound per connection. */
  limit: number;
}

export const TIMING: Timing = { settle: 60, idle: 300, closeWait: 1_500, gate: 1_000, limit: 8_000 };

function field(headers: string[], name: string): string | undefined {
  const lower = `${name}:`;
  return headers
    .find((h) => h.toLowerCase().startsWith(lower))
    ?.slice(lower.length)
    .trim();
}

/**
 * Splits `text` into responses. `heads[i]`: the i-th final response answers a HEAD. `closed`: the
 * server closed, so a body without framing ends there. Returns the responses and what is left.
 */
export function parseResponses(text: string, heads: boolean[], closed: boolean): { responses: Response[]; rest: string } {
  const out: Response[] = [];
  let pos = 0;
  while (pos < text.length) {
    const end = text.indexOf('\r\n\r\n', pos);
    if (end < 0) break;
    const lines = text.slice(pos, end).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0]!);
    if (!m) break;
    const status = Number(m[1]);
    const headers = lines.slice(1);
    let bodyStart = end + 4;
    let body = '';
    const finals = out.filter((r) => r.status >= 200).length;
    const length = field(headers, 'content-length');
    // No body: the statuses without one; and a HEAD's response, which is known by what follows it
    // (no body here starts with "HTTP/1."), or at the end by the request it answers (`heads`).
    // Node's clientError answer has its body even for a HEAD; it is the last, so it is not taken
    // for a HEAD's by what follows it.
    const nextIsResponse = text.startsWith('HTTP/1.', bodyStart);
    const headBody = nextIsResponse || (bodyStart >= text.length && heads[finals] === true);
    if (headBody || status === 204 || status === 304 || status < 200) {
      // no body
    } else if (length !== undefined) {
      const n = Number(length);
      if (!Number.isSafeInteger(n) || n < 0 || text.length < bodyStart + n) break;
      body = text.slice(bodyStart, bodyStart + n);
      bodyStart += n;
    } else if (field(headers, 'transfer-encoding')?.toLowerCase() === 'chunked') {
      let ok = false;
      for (;;) {
        const eol = text.indexOf('\r\n', bodyStart);
        if (eol < 0) break;
        const size = parseInt(text.slice(bodyStart, eol), 16);
        if (!(size >= 0) || text.length < eol + 2 + size + 2) break;
        body += text.slice(eol + 2, eol + 2 + size);
        bodyStart = eol + 2 + size + 2;
        if (size === 0) {
          ok = true;
          break;
        }
      }
      if (!ok) break;
    } else {
      if (!closed) break;
      body = text.slice(bodyStart);
      bodyStart = text.length;
    }
    out.push({ status, headers, body });
    pos = bodyStart;
  }
  return { responses: out, rest: text.slice(pos) };
}

let addressCounter = 0;
/** A fresh loopback source address: 127.a.b.c with a in 1..254, c in 1..254. */
export function nextAddress(): string {
  const k = addressCounter++;
  const c = 1 + (k % 254);
  const b = Math.floor(k / 254) % 256;
  const a = 1 + (Math.floor(k / (254 * 256)) % 254);
  return `127.${a}.${b}.${c}`;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One write: after `delay` ms, and (paced) once `after` final responses have arrived. */
interface Piece {
  bytes: string;
  delay: number;
  after: number;
}

/** The case's writes as they are. */
function piecesOf(c: FuzzCase): Piece[] {
  return c.chunks.map((bytes, i) => ({ bytes, delay: i === 0 ? 0 : c.delays[i - 1]!, after: 0 }));
}

/**
 * The case's writes in the lane's order of work: the same bytes and cuts, also cut where each of
 * the first `k` generated requests ends, and each of the next `k` requests' first write held back
 * until the responses before it have arrived (or the connection closed, or nothing came for
 * `gate` ms: a parser may be waiting for more). The rest goes as it would.
 */
function pacedPiecesOf(c: FuzzCase, k: number): Piece[] {
  const cuts = new Map<number, Piece>();
  let at = 0;
  c.chunks.forEach((bytes, i) => {
    cuts.set(at, { bytes: '', delay: i === 0 ? 0 : c.delays[i - 1]!, after: 0 });
    at += bytes.length;
  });
  c.starts.forEach((start, i) => {
    if (i === 0 || i > k || start >= c.bytes.length) return;
    const piece = cuts.get(start) ?? { bytes: '', delay: 0, after: 0 };
    if (piece.after === 0) piece.after = i;
    cuts.set(start, piece);
  });
  const points = [...cuts.keys()].sort((x, y) => x - y);
  return points
    .map((p, k) => ({ ...cuts.get(p)!, bytes: c.bytes.slice(p, points[k + 1] ?? c.bytes.length) }))
    .filter((p) => p.bytes.length > 0);
}

function finalCount(text: string, heads: boolean[]): number {
  return parseResponses(text, heads, false).responses.filter((r) => r.status >= 200).length;
}

/** Sends `pieces` to `port` from `localAddress`; observes until settled. */
function observe(
  port: number,
  c: FuzzCase,
  pieces: Piece[],
  localAddress: string,
  timing: Timing,
): Promise<{ text: string; closed: boolean; reset: boolean; timedOut: boolean; ms: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    socket.setNoDelay(true);
    socket.setEncoding('latin1');
    let text = '';
    let closed = false;
    /** The proxy has ended its side (FIN): it reads no more. */
    let ended = false;
    let reset = false;
    let writesDone = false;
    let last = Date.now();
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (timedOut: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(limit);
      socket.destroy();
      resolve({ text, closed, reset, timedOut, ms: Date.now() - started });
    };
    const limit = setTimeout(() => finish(true), timing.limit);
    /** Decides how much longer to watch, from what has arrived. */
    const evaluate = () => {
      if (done) return;
      if (closed) return finish(false);
      if (!writesDone) return;
      const { responses, rest } = parseResponses(text, c.heads, false);
      const finals = responses.filter((r) => r.status >= 200).length;
      const lastOne = responses[responses.length - 1];
      const closing = lastOne !== undefined && rest === '' && field(lastOne.headers, 'connection')?.toLowerCase() === 'close';
      let quiet = timing.idle;
      if (closing) quiet = timing.closeWait;
      else if (rest === '' && finals >= c.expected) quiet = timing.settle;
      clearTimeout(timer);
      timer = setTimeout(
        () => {
          // Whatever the event loop had pending (reads included) first: then judge.
          setImmediate(() => {
            if (done) return;
            if (Date.now() - last >= quiet - 1) finish(false);
            else evaluate();
          });
        },
        Math.max(1, last + quiet - Date.now()),
      );
    };
    socket.on('data', (d: string) => {
      text += d;
      last = Date.now();
      evaluate();
    });
    socket.on('end', () => (ended = true));
    socket.on('close', () => {
      closed = true;
      evaluate();
    });
    /** A response that closes the connection has arrived whole: what we would write is not read. */
    const closingSeen = () => {
      const { responses, rest } = parseResponses(text, c.heads, false);
      const lastOne = responses[responses.length - 1];
      return rest === '' && lastOne !== undefined && field(lastOne.headers, 'connection')?.toLowerCase() === 'close';
    };
    socket.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNRESET' || e.code === 'EPIPE') reset = true;
    });
    socket.on('connect', () => {
      void (async () => {
        for (const piece of pieces) {
          // Writes without a pause go out in the same turn (the proxy usually reads them as one).
          if (piece.delay > 0 || piece.after > 0) {
            if (piece.delay > 0) await sleep(piece.delay);
            if (piece.after > 0) {
              const waitFrom = Date.now();
              while (!closed && !done && finalCount(text, c.heads) < piece.after && Date.now() - Math.max(last, waitFrom) < timing.gate)
                await sleep(5);
            }
            // Read whatever has arrived before writing more: once the proxy has closed, a write
            // fails (EPIPE) and destroys the socket with the proxy's last bytes still unread in it.
            await new Promise((r) => setImmediate(r));
          }
          if (closed || done || ended || closingSeen()) break;
          socket.write(Buffer.from(piece.bytes, 'latin1'));
        }
        writesDone = true;
        last = Date.now();
        evaluate();
      })();
    });
  });
}

/** The upstream record a response answers (its x-seen field), or undefined. */
function seenIndex(r: Response): number | undefined {
  const v = field(r.headers, 'x-seen');
  return v === undefined ? undefined : Number(v);
}

function normalizedResponse(r: Response): Response {
  return {
    status: r.status,
    fromUpstream: seenIndex(r) !== undefined,
    // x-seen: the harness's own bookkeeping (upstream arrival order varies on Node's path).
    headers: r.headers.filter((h) => !/^(date|x-seen):/i.test(h)).map(mask),
    // (The existing differential test also masks the echoed X-Forwarded-Host; here it is compared:
    // it is the client's Host as each path read it.)
    body: mask(r.body),
  };
}

/** How runOn sends a case. */
export interface RunMode {
  timing?: Timing;
  /** Write the first `paced` requests one response at a time (see pacedPiecesOf). */
  paced?: number;
}

/** One case on one proxy: the outcome, normalised. */
export async function runOn(env: FuzzEnv, proxy: TestProxy, c: FuzzCase, mode: RunMode = {}): Promise<Outcome> {
  const timing = mode.timing ?? TIMING;
  const address = nextAddress();
  const list: Seen[] = [];
  env.seen.set(address, list);
  const work: LaneWork = { took: 0, handedOff: false };
  const onLane = proxy === env.lane;
  if (onLane) env.laneWork.set(address, work);
  const { port } = new URL(proxy.url);
  try {
    const pieces = mode.paced ? pacedPiecesOf(c, mode.paced) : piecesOf(c);
    const o = await observe(Number(port), c, pieces, address, timing);
    const { responses, rest } = parseResponses(o.text, c.heads, o.closed);
    const answered = new Set(responses.map(seenIndex).filter((i) => i !== undefined));
    // An answered request's body has surely ended; the others are not compared.
    const records = list.map((s, i) => ({ answered: answered.has(i), text: JSON.stringify(s) }));
    return {
      responses: responses.map(normalizedResponse),
      closed: o.closed,
      // The volatile fields of a partial response too.
      rest: mask(rest).replace(/\r\n(date|x-seen): [^\r]*/gi, ''),
      upstream: records
        .filter((r) => r.answered)
        .map((r) => r.text)
        .sort(),
      unanswered: records
        .filter((r) => !r.answered)
        .map((r) => r.text)
        .sort(),
      reset: o.reset,
      timedOut: o.timedOut,
      ms: o.ms,
      ...(onLane && { lane: { ...work } }),
    };
  } finally {
    env.seen.delete(address);
    env.laneWork.delete(address);
  }
}

// ---------------------------------------------------------------------------------------------
// Comparing

/** The parts of an outcome that must match. */
function comparable(o: Outcome): unknown {
  return { responses: o.responses, closed: o.closed, rest: o.rest, upstream: o.upstream };
}

/** Why two outcomes differ ('' when they do not). */
export function difference(lane: Outcome, node: Outcome): string {
  const a = comparable(lane);
  const b = comparable(node);
  if (JSON.stringify(a) === JSON.stringify(b)) return '';
  const why: string[] = [];
  const statuses = (o: Outcome) => o.responses.map((r) => r.status).join(',');
  if (statuses(lane) !== statuses(node)) why.push(`statuses [${statuses(lane)}] vs [${statuses(node)}]`);
  else if (JSON.stringify(lane.responses) !== JSON.stringify(node.responses)) why.push('responses differ');
  if (lane.closed !== node.closed) why.push(`closed ${lane.closed} vs ${node.closed}`);
  if (lane.rest !== node.rest) why.push('trailing bytes differ');
  if (JSON.stringify(lane.upstream) !== JSON.stringify(node.upstream))
    why.push(
      `upstream saw ${lane.upstream.length} vs ${node.upstream.length} answered requests${lane.upstream.length === node.upstream.length ? ' (differently)' : ''}`,
    );
  return why.join('; ');
}

/**
 * The answer puttu's clientError handler (proxy/http/server.ts) writes when Node's parser refuses
 * the bytes: no X-Request-Id (no request was made of them), and the connection closes.
 */
function isParserRefusal(r: Response | undefined): boolean {
  return (
    r !== undefined &&
    r.status >= 400 &&
    field(r.headers, 'x-request-id') === undefined &&
    field(r.headers, 'connection') === 'close' &&
    /"code":"PUTTU_(BAD_REQUEST|HEADERS_TOO_LARGE|REQUEST_TIMEOUT)"/.test(r.body)
  );
}

export interface CaseResult {
  case: FuzzCase;
  lane: Outcome;
  node: Outcome;
  /** Both runs again, given time to wait out a body (see runCase), when it was needed. */
  laneSlow?: Outcome;
  nodeSlow?: Outcome;
  /** Node's path in the lane's order of work (see runCase), when it was needed. */
  paced?: Outcome;
  /** How the outcomes matched after all, when only as Node's reading ahead allows (readAheadEquivalent). */
  readAhead?: '' | 'prefix' | 'no-refusal' | 'own-answers';
  /** '' when the outcomes match. */
  difference: string;
}

function isPrefix(a: Response[], b: Response[]): boolean {
  return a.length < b.length && JSON.stringify(a) === JSON.stringify(b.slice(0, a.length));
}

/** Time for the lane to wait out a body: it hands it to Node after two sweeps a second apart. */
const BODY_WAIT: Timing = { ...TIMING, idle: 2_600 };

/**
 * Runs one case on both proxies at once, and compares. Two differences are by design, and are
 * compared otherwise when they show:
 *
 * - The lane waits 1-2 s for a small body still arriving before it hands the request to Node's
 *   path (fast-lane.ts, BUFFERED_BODY), while Node's path may answer at once, from the head (an
 *   unknown service, a path it refuses). When the lane's answers so far are the start of Node's
 *   and the lane has not closed (or the other way round: either side may just be slow, a cold
 *   start, a 64 KiB body on a busy machine), both runs are repeated with time to wait that out.
 *
 * - Node's parser reads pipelined requests ahead of their responses and forwards each as soon as
 *   its head is in; a request further on that it refuses (a parse error, any byte after a request
 *   with Connection: close) ends the connection at once, abandoning the responses still due (or,
 *   when one of them is already written, closing without the 400). The lane takes one request at
 *   a time and reads the next only once the response before it has gone out (fast-lane.ts: "One
 *   request at a time per connection"), then hands the rest to Node's parser. So when the two
 *   differ on a pipelined connection that one of them closed, the lane is compared instead with
 *   Node's path given the same bytes in the lane's order of work: each of the requests the lane
 *   took written once the response before it has arrived, the rest as before. What Node's parser
 *   then does with the rest, on either side, still depends on timing; readAheadEquivalent says
 *   how far.
 */
export async function runCase(env: FuzzEnv, c: FuzzCase, timing: Timing = TIMING): Promise<CaseResult> {
  let [lane, node] = await Promise.all([runOn(env, env.lane, c, { timing }), runOn(env, env.node, c, { timing })]);
  const result: CaseResult = { case: c, lane, node, difference: difference(lane, node) };
  if (result.difference === '') return result;
  if ((!lane.closed && isPrefix(lane.responses, node.responses)) || (!node.closed && isPrefix(node.responses, lane.responses))) {
    // One side is still at work (the lane waiting for a body by design; or either one slow): both
    // again, with time to finish.
    const slow = { ...BODY_WAIT, settle: timing.settle };
    [lane, node] = await Promise.all([runOn(env, env.lane, c, { timing: slow }), runOn(env, env.node, c, { timing: slow })]);
    result.laneSlow = lane;
    result.nodeSlow = node;
    result.difference = difference(lane, node);
    if (result.difference === '') return result;
  }
  const took = lane.lane?.took;
  if (!(lane.closed || node.closed) || took === undefined) return result;
  // Pacing changes nothing when no request the lane took is followed by more bytes.
  const paces = c.starts.slice(1, took + 1).some((at) => at < c.bytes.length);
  if (took === 0 || !paces) {
    // Both are Node's reading of the same bytes, as they came (after what the lane took).
    result.readAhead = readAheadEquivalent(lane, node, took);
    if (result.readAhead !== '') result.difference = '';
    return result;
  }
  const paced = (result.paced = await runOn(env, env.node, c, { timing, paced: took }));
  const pacedDiff = difference(lane, paced);
  if (pacedDiff !== '') result.readAhead = readAheadEquivalent(lane, paced, took);
  if (pacedDiff === '' || result.readAhead !== '') result.difference = '';
  else result.difference = `${result.difference}; and with Node's path in the lane's order of work: ${pacedDiff}`;
  return result;
}

/**
 * Whether `x` and `y` differ only by what Node's reading ahead abandons, and how. Both must be
 * closed, and the responses past the first `k` (which must be equal) of one the start of the
 * other's; then either
 *
 * - 'prefix': both end with the same refusal from Node's parser, after which only responses that
 *   were still due are missing; or
 * - 'no-refusal': one ends with such a refusal and the other closes without it; or
 * - 'own-answers': the longer one's extra responses are all answers Node or puttu gave itself,
 *   without the upstream (a 417 for an unknown Expect, a 400 for a missing Host, puttu's own
 *   404s and 400s).
 *
 * When Node's parser refuses bytes while responses are still due on the connection, puttu's
 * clientError handler (proxy/http/server.ts) answers 400 and closes, abandoning them; or, when
 * one of them is already being written, closes without the 400. Which of the due responses are
 * out by then depends on timing, and on how Node read the bytes: from the socket they go through
 * its native parser, which lets a response written synchronously go out between two of its
 * callbacks; the bytes the lane hands back with socket.unshift go through parser.execute() in one
 * call, during which such a response is still being written when the refusal (or a Connection:
 * close) ends the connection, so it and those queued behind it are lost. The shorter's answered
 * upstream requests must be among the longer's.
 */
export function readAheadEquivalent(x: Outcome, y: Outcome, k: number): '' | 'prefix' | 'no-refusal' | 'own-answers' {
  if (!x.closed || !y.closed || x.rest !== y.rest) return '';
  const [short, long] = x.upstream.length <= y.upstream.length ? [x, y] : [y, x];
  const pool = [...long.upstream];
  for (const u of short.upstream) {
    const at = pool.indexOf(u);
    if (at < 0) return '';
    pool.splice(at, 1);
  }
  const starts = (s: Response[], l: Response[]) => s.length >= k && JSON.stringify(s) === JSON.stringify(l.slice(0, s.length));
  const lastX = x.responses[x.responses.length - 1];
  const lastY = y.responses[y.responses.length - 1];
  const refusedX = isParserRefusal(lastX);
  const refusedY = isParserRefusal(lastY);
  if (refusedX || refusedY) {
    if (refusedX && refusedY && JSON.stringify(lastX) !== JSON.stringify(lastY)) return '';
    const before = (o: Outcome, refused: boolean) => (refused ? o.responses.slice(0, -1) : o.responses);
    const [s, l] = [before(x, refusedX), before(y, refusedY)].sort((p, q) => p.length - q.length) as [Response[], Response[]];
    if (starts(s, l)) return refusedX && refusedY ? 'prefix' : 'no-refusal';
  }
  const [s, l] = [x.responses, y.responses].sort((p, q) => p.length - q.length) as [Response[], Response[]];
  if (s.length < l.length && starts(s, l) && l.slice(s.length).every((r) => r.fromUpstream === false)) return 'own-answers';
  return '';
}

// ---------------------------------------------------------------------------------------------
// A run

export interface FuzzOptions {
  seed: number;
  /** Stop generating cases once this many requests were generated. */
  requests: number;
  /** Cases in flight at once. */
  concurrency?: number;
  /** Only this case index (a repro). */
  only?: number;
  /** Called every `progressEvery` ms with the counts so far. */
  onProgress?: (p: Progress) => void;
  progressEvery?: number;
  /** Mismatching cases are run again this many times, to see whether they repeat. */
  confirmRuns?: number;
  /** Stop after this many mismatches (0: never). */
  maxMismatches?: number;
  /** Cases run first, not compared nor counted (a cold process is slow). Default 24. */
  warmup?: number;
  timing?: Timing;
}

export interface Progress {
  cases: number;
  requests: number;
  mismatches: number;
  elapsedMs: number;
}

export interface Mismatch extends CaseResult {
  /** Of the confirming runs (the case again, afterwards), how many mismatched too. */
  repeated: number;
  confirmRuns: number;
}

export interface Summary {
  seed: number;
  cases: number;
  requests: number;
  mismatches: Mismatch[];
  elapsedMs: number;
  /** Requests the lane took itself, and connections it handed to Node's parser, during the run. */
  laneServed: number;
  laneHandedOff: number;
  /** Case tags and how often they occurred. */
  tags: Map<string, number>;
  /** Observations that ended by their time limit (lane + node). */
  timedOut: number;
  /** Connections that saw no final response on either proxy. */
  silent: number;
  /** Upstream requests that arrived after their case was over. */
  late: number;
  /** Cases run again with time to wait out a body (see runCase). */
  slow: number;
  /** Cases compared with Node's path in the lane's order of work (see runCase). */
  paced: number;
  /** Cases that matched only through one of those two. */
  matchedOtherwise: number;
  /** Mismatching cases run again because a connection was reset. */
  resetRetries: number;
  /** Cases that matched as Node's reading ahead allows, by kind (readAheadEquivalent). */
  readAhead: Map<string, number>;
}

function wasReset(r: CaseResult): boolean {
  return r.lane.reset || r.node.reset || r.laneSlow?.reset === true || r.nodeSlow?.reset === true || r.paced?.reset === true;
}

/** Runs the cases of `seed` until `requests` requests, against `env`. */
export async function fuzz(env: FuzzEnv, options: FuzzOptions): Promise<Summary> {
  const concurrency = options.concurrency ?? 12;
  const timing = options.timing ?? TIMING;
  // A few cases first, not compared: the first requests of a fresh process are slow (compiling,
  // the first upstream connections), and a slow answer is not what is being looked for.
  const warmup = options.warmup ?? 24;
  await Promise.all(
    Array.from({ length: Math.min(warmup, concurrency) }, async (_, w) => {
      for (let i = w; i < warmup; i += concurrency) await runCase(env, generateCase(options.seed ^ 0x5a5a5a5a, i), timing);
    }),
  );
  const started = Date.now();
  const lane = env.lane.app.fastLane!;
  const servedBefore = lane.served;
  const handedBefore = lane.handedOff;
  const lateBefore = env.late;
  const tags = new Map<string, number>();
  const mismatches: Mismatch[] = [];
  let cases = 0;
  let requests = 0;
  let timedOut = 0;
  let silent = 0;
  let paced = 0;
  let slow = 0;
  let resetRetries = 0;
  const readAhead = new Map<string, number>();
  let matchedOtherwise = 0;
  let index = options.only ?? 0;
  let stop = false;
  const progress = (): Progress => ({ cases, requests, mismatches: mismatches.length, elapsedMs: Date.now() - started });
  const ticker = options.onProgress ? setInterval(() => options.onProgress!(progress()), options.progressEvery ?? 5_000) : undefined;
  let generated = 0;
  /** The next case, or undefined once enough requests were generated. */
  const nextCase = (): FuzzCase | undefined => {
    if (stop) return undefined;
    if (options.only !== undefined ? cases + generated > 0 : generated >= options.requests) return undefined;
    const c = generateCase(options.seed, index++);
    generated += c.expected;
    return c;
  };
  const worker = async () => {
    for (let c = nextCase(); c !== undefined; c = nextCase()) {
      let result = await runCase(env, c, timing);
      // A reset may have cost us bytes that did arrive: such a mismatch is tried again first.
      for (let attempt = 0; attempt < 3 && result.difference !== '' && wasReset(result); attempt++) {
        resetRetries++;
        result = await runCase(env, c, timing);
      }
      cases++;
      requests += c.expected;
      for (const t of c.tags) tags.set(t, (tags.get(t) ?? 0) + 1);
      if (result.paced) paced++;
      if (result.laneSlow) slow++;
      if ((result.paced || result.laneSlow || result.readAhead) && result.difference === '') matchedOtherwise++;
      if (result.difference === '' && result.readAhead) readAhead.set(result.readAhead, (readAhead.get(result.readAhead) ?? 0) + 1);
      if (result.lane.timedOut) timedOut++;
      if (result.node.timedOut) timedOut++;
      if (!result.lane.responses.some((r) => r.status >= 200) && !result.node.responses.some((r) => r.status >= 200)) silent++;
      if (result.difference !== '') {
        const confirmRuns = options.confirmRuns ?? 2;
        let repeated = 0;
        for (let k = 0; k < confirmRuns; k++) if ((await runCase(env, c, timing)).difference !== '') repeated++;
        mismatches.push({ ...result, repeated, confirmRuns });
        if (options.maxMismatches && mismatches.length >= options.maxMismatches) stop = true;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: options.only !== undefined ? 1 : concurrency }, worker));
  } finally {
    clearInterval(ticker);
  }
  return {
    seed: options.seed,
    cases,
    requests,
    mismatches,
    elapsedMs: Date.now() - started,
    laneServed: lane.served - servedBefore,
    laneHandedOff: lane.handedOff - handedBefore,
    tags,
    timedOut,
    silent,
    late: env.late - lateBefore,
    paced,
    slow,
    matchedOtherwise,
    resetRetries,
    readAhead,
  };
}

/** A mismatch, printable: the case's bytes (JSON-escaped) and both outcomes. */
export function describeMismatch(m: Mismatch, seed: number): string {
  const c = m.case;
  const show = (o: Outcome) =>
    JSON.stringify(
      {
        statuses: o.responses.map((r) => r.status),
        closed: o.closed,
        responses: o.responses,
        rest: o.rest,
        upstream: o.upstream.map((u) => JSON.parse(u)),
        unanswered: o.unanswered.length,
        reset: o.reset,
        timedOut: o.timedOut,
        ms: o.ms,
        ...(o.lane && { lane: o.lane }),
      },
      null,
      2,
    )
      .split('\n')
      .map((l) => `    ${l}`)
      .join('\n');
  return [
    `MISMATCH case ${c.index} (seed ${seed}; repro: --seed ${seed} --case ${c.index}): ${m.difference}`,
    `  repeated in ${m.repeated} of ${m.confirmRuns} runs of the case again`,
    `  tags: ${c.tags.join(' ')}`,
    `  bytes: ${JSON.stringify(c.bytes)}`,
    `  writes: ${JSON.stringify(c.chunks.map((x) => x.length))} pauses ${JSON.stringify(c.delays)}`,
    '  with the fast lane:',
    show(m.lane),
    "  without (Node's parser):",
    show(m.node),
    ...(m.laneSlow ? ['  with the fast lane, given time to wait out a body:', show(m.laneSlow)] : []),
    ...(m.nodeSlow ? ['  without, given time to wait out a body:', show(m.nodeSlow)] : []),
    ...(m.paced
      ? [
          `  without, in the lane's order of work (its first ${(m.laneSlow ?? m.lane).lane?.took} requests one response at a time):`,
          show(m.paced),
        ]
      : []),
  ].join('\n');
}
