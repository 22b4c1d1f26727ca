/**
 * The fast lane: a plain-HTTP listener's everyday requests read and answered without Node's
 * http.Server machinery. An IncomingMessage and a ServerResponse are two streams per request, a
 * large share of a proxy's whole CPU cost per request; the lane answers the common requests
 * without them and hands everything else to Node's path (BENCHMARKS.md, "Fast lane", measures it).
 *
 * The lane reads each new connection's bytes itself and takes a request only when it is plainly
 * well-formed:
 * - the whole head is in hand and within the head size limit;
 * - the request line is `METHOD /target HTTP/1.1`, with a common method and a printable target;
 * - every field name is a token and every value printable ASCII (HTAB allowed);
 * - there is exactly one Host;
 * - there is no Transfer-Encoding, Upgrade, Expect or Proxy-Connection, and Connection is
 *   keep-alive or close;
 * - a Content-Length is one plain decimal, within the body limit.
 *
 * A body of up to BUFFERED_BODY bytes still arriving after its head is waited for (as nginx buffers
 * request bodies), for 1-2 s and up to MAX_BODY_READS reads; a larger body, or one slower than
 * that, goes to Node's path, which streams it. The bodies waited for on all connections together
 * may reserve at most WAITING_BODY_BUDGET bytes: past it, a request whose body is still arriving
 * goes to Node's path at once, which reads a body only as fast as the upstream takes it. So many
 * slow uploads cost the proxy no more memory with the lane than without it.
 *
 * Anything else goes to Node's own parser, on that connection for good, with the unread bytes put
 * back (`socket.unshift`): a slow, odd, hostile or streaming request gets exactly the handling
 * Node gives it (400, 408, 413, 431, 100-continue, chunked bodies, upgrades). The lane never
 * judges a request Node would refuse as good: it only passes on more of them to Node.
 *
 * One request at a time per connection: pipelined requests wait in the buffer (reading pauses
 * past the head size limit) and are taken in order once the response before them has ended.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type { ClientRequest, ClientResponse } from '../forward/client.js';
import {
  bytesDecimal,
  DROP,
  DROP_NAMING,
  RELAY_CONTENT_LENGTH,
  RELAY_DATE,
  plainDecimal,
  responseField,
  type ResponseFacts,
} from '../forward/headers.js';
import { putBack, takeListener } from './connection-hooks.js';
import { prefaceVerdict } from './h2.js';

/**
 * A request handler both paths call. `body`: the whole request body when the lane already holds
 * it (the buffers of several reads, in order, when it arrived after its head); undefined for
 * Node's requests, whose body is the request stream itself.
 */
export type LaneHandler = (req: ClientRequest, res: ClientResponse, body?: Buffer | Buffer[]) => void;

export interface FastLaneOptions {
  maxHeaderSize: number;
  keepAliveTimeoutMs: number;
  /** Bodies over this go to Node's path (which answers 413); 0: no limit. */
  maxBodyBytes: number;
  /**
   * Where a connection that opens with the HTTP/2 preface goes (prior-knowledge h2c), with the
   * bytes read; unset: to Node's parser like any other. The preface is never a request the lane
   * takes, so it is recognised only on the way out (handOff), at no cost to HTTP/1.1.
   */
  toH2?: (socket: Socket, read: Buffer[]) => void;
}

export interface FastLane {
  /** Stop taking requests: idle connections are closed, busy ones after their response. */
  close(): void;
  /** Cut every connection the lane holds. */
  closeAll(): void;
  /** Connections the lane holds (not yet handed to Node). */
  readonly connections: number;
  /** Of those, the ones whose request body is still arriving (see BUFFERED_BODY). */
  readonly waiting: number;
  /** Their declared body bytes together (at most WAITING_BODY_BUDGET). */
  readonly waitingBytes: number;
  /** Requests the lane has taken. */
  readonly served: number;
  /** Connections handed to Node's parser. */
  readonly handedOff: number;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');
/**
 * The largest request body the lane waits for when it arrives after its head: one socket read's
 * worth (Node reads up to 64 KiB at a time), so an ordinary POST is served here too rather than
 * by Node's slower path.
 */
export const BUFFERED_BODY = 64 * 1024;
/**
 * The most body bytes (declared lengths) the lane waits for on all its connections at once. A
 * body handed to Node's path after waiting is held twice until V8 frees the lane's copy, so the
 * budget also bounds that.
 */
export const WAITING_BODY_BUDGET = 8 * 1024 * 1024;
/** Sweeps (1 s apart) a connection waits for the rest of a body before Node's path takes it. */
const BODY_WAIT_TICKS = 2;
/** Reads after the head a waited-for body may take (the last one completing it); more, and Node's path streams it. */
const MAX_BODY_READS = 16;
/** A waited-for body up to this size is copied into one buffer; a larger one stays in its reads'. */
const COPIED_BODY = 16 * 1024;
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);

/** RFC 9110 tchar. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

/** Whether `name` (a token) is `lower` in any case, without allocating a lower-cased copy. */
function named(name: string, lower: string): boolean {
  if (name.length !== lower.length) return false;
  for (let i = 0; i < name.length; i++) if ((name.charCodeAt(i) | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

class LaneRequest implements ClientRequest {
  readonly headers: { host: string; 'x-request-id': string | undefined; 'content-length': string | undefined };
  constructor(
    readonly method: string,
    readonly url: string,
    readonly rawHeaders: string[],
    host: string,
    requestId: string | undefined,
    contentLength: string | undefined,
    readonly socket: Socket,
  ) {
    this.headers = { host, 'x-request-id': requestId, 'content-length': contentLength };
  }
}

/** A parsed head the lane takes, or undefined: Node's parser decides. */
interface Head {
  req: LaneRequest;
  /** Content-Length, 0 when absent. */
  length: number;
  close: boolean;
}

/** Parses `head` (the bytes before CRLFCRLF, as latin1) strictly; undefined for anything unusual. */
export function parseHead(head: string, socket: Socket): Head | undefined {
  const sp1 = head.indexOf(' ');
  if (sp1 <= 0 || sp1 > 7) return undefined;
  const method = head.slice(0, sp1);
  if (!METHODS.has(method)) return undefined;
  const lineEnd = head.indexOf('\r\n', sp1);
  if (lineEnd < 0) return undefined; // no fields, so no Host
  const sp2 = lineEnd - 9;
  if (sp2 <= sp1 + 1 || head.charCodeAt(sp2) !== 32 || !head.startsWith('HTTP/1.1', sp2 + 1)) return undefined;
  if (head.charCodeAt(sp1 + 1) !== 47) return undefined; // origin-form only: "/..."
  for (let i = sp1 + 1; i < sp2; i++) {
    const c = head.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return undefined;
  }
  const url = head.slice(sp1 + 1, sp2);
  const raw: string[] = [];
  let host: string | undefined;
  let requestId: string | undefined;
  let contentLength: string | undefined;
  let close = false;
  let pos = lineEnd + 2;
  const end = head.length;
  while (pos < end) {
    let eol = head.indexOf('\r\n', pos);
    if (eol < 0) eol = end;
    let i = pos;
    while (i < eol && TCHAR[head.charCodeAt(i)] === 1) i++;
    // An empty name, a space before the colon, obs-fold, a bare CR or LF: Node decides.
    if (i === pos || i === eol || head.charCodeAt(i) !== 58) return undefined;
    const name = head.slice(pos, i);
    i++;
    let c = head.charCodeAt(i);
    while (i < eol && (c === 32 || c === 9)) c = head.charCodeAt(++i);
    let valueEnd = eol;
    let trailingTab = false;
    c = head.charCodeAt(valueEnd - 1);
    while (valueEnd > i && (c === 32 || c === 9)) {
      if (c === 9) trailingTab = true;
      c = head.charCodeAt(--valueEnd - 1);
    }
    for (let k = i; k < valueEnd; k++) {
      c = head.charCodeAt(k);
      if ((c < 0x20 && c !== 9) || c > 0x7e) return undefined;
    }
    const value = head.slice(i, valueEnd);
    switch (name.length) {
      case 4:
        if (named(name, 'host')) {
          if (host !== undefined) return undefined;
          host = value;
        }
        break;
      case 6:
        if (named(name, 'expect')) return undefined;
        break;
      case 7:
        if (named(name, 'upgrade')) return undefined;
        break;
      case 10:
        if (named(name, 'connection')) {
          // Node's parser reads a trailing tab on the fields it interprets unlike a trailing
          // space (a Connection of "close\t" is not close, a Content-Length of "5\t" is refused).
          if (trailingTab) return undefined;
          if (named(value, 'close')) close = true;
          else if (!named(value, 'keep-alive')) return undefined;
        }
        break;
      case 12:
        if (named(name, 'x-request-id')) {
          if (requestId !== undefined) return undefined;
          requestId = value;
        }
        break;
      case 14:
        if (named(name, 'content-length')) {
          if (trailingTab || contentLength !== undefined || plainDecimal(value) < 0) return undefined;
          contentLength = value;
        }
        break;
      case 16:
        // Node's parser reads it as Connection (keep-alive or close): Node decides.
        if (named(name, 'proxy-connection')) return undefined;
        break;
      case 17:
        if (named(name, 'transfer-encoding')) return undefined;
        break;
    }
    raw.push(name, value);
    pos = eol + 2;
  }
  if (host === undefined) return undefined;
  return {
    req: new LaneRequest(method, url, raw, host, requestId, contentLength, socket),
    length: contentLength === undefined ? 0 : plainDecimal(contentLength),
    close,
  };
}

/** The Date field, rebuilt at most once per tick (as Node does, to the second). */
let dateField = '';
function date(): string {
  if (dateField === '') dateField = `Date: ${new Date().toUTCString()}\r\n`;
  return dateField;
}

/** Statuses whose responses have no body (RFC 9110 §6.4.1). */
function bodyless(status: number, method: string): boolean {
  return method === 'HEAD' || status === 204 || status === 304 || status < 200;
}

/** Bodies up to this size go out in the same buffer as the head (one copy, one write). */
const INLINE_BODY = 4096;

/**
 * An upstream's response head kept as undici's field buffers, copied into the outgoing buffer
 * when it is written: no string per field, no concatenation.
 */
interface RawHead {
  /** The status line (or, from writeHead, the whole head). */
  lead: string;
  /** Kept fields, name and value buffers alternating. */
  fields: Buffer[];
  /** The fields puttu adds and the blank line. */
  tail: string;
  size: number;
}

/** A head made whole by writeHead (a string): no raw fields. */
const NO_FIELDS: Buffer[] = [];

/** Writes `raw` into `out` from 0; returns the end offset. */
function fillRawHead(out: Buffer, raw: RawHead): number {
  let pos = out.write(raw.lead, 0, 'latin1');
  const fields = raw.fields;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!;
    const value = fields[i + 1]!;
    out.set(name, pos);
    pos += name.length;
    out[pos++] = 58; // ':'
    out[pos++] = 32;
    out.set(value, pos);
    pos += value.length;
    out[pos++] = 13;
    out[pos++] = 10;
  }
  return pos + out.write(raw.tail, pos, 'latin1');
}

/** A response written straight to the connection's socket. */
class LaneResponse implements ClientResponse {
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  readonly #conn: LaneConnection;
  readonly #method: string;
  /** The head not yet written, sent with the first body bytes. */
  #raw: RawHead | null = null;
  #chunked = false;
  #noBody = false;
  #onClose: (() => void) | undefined;

  constructor(conn: LaneConnection, method: string) {
    this.#conn = conn;
    this.#method = method;
  }

  writeHead(status: number, statusMessage: string | undefined | string[], headers?: string[]): this {
    if (Array.isArray(statusMessage)) {
      headers = statusMessage;
      statusMessage = undefined;
    }
    const fields = headers ?? [];
    let head = `HTTP/1.1 ${status} ${statusMessage ?? http.STATUS_CODES[status] ?? 'unknown'}\r\n`;
    let length = -1;
    let hasDate = false;
    for (let i = 0; i < fields.length; i += 2) {
      const name = fields[i]!;
      const value = fields[i + 1]!;
      head += `${name}: ${value}\r\n`;
      if (name.length === 14 && named(name, 'content-length')) length = plainDecimal(value);
      else if (name.length === 4 && named(name, 'date')) hasDate = true;
    }
    const lead = head + this.#ownFields(status, length, hasDate);
    this.#raw = { lead, fields: NO_FIELDS, tail: '', size: lead.length };
    this.headersSent = true;
    return this;
  }

  /**
   * The upstream's head from undici's raw field buffers, filtered as `clientResponseHeaders`
   * filters them (hop-by-hop fields out, our X-Request-Id in), without making strings of them.
   * False, with nothing done, for what only that function handles: a Connection field that names
   * other fields.
   */
  writeUpstreamHead(status: number, statusText: string, raw: readonly Buffer[], requestId: string, facts: ResponseFacts): boolean {
    let length = -1;
    let hasDate = false;
    const fields: Buffer[] = [];
    let size = 0;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const value = raw[i + 1]!;
      const action = responseField(name, value);
      if (action === DROP) continue;
      if (action === DROP_NAMING) return false;
      if (action === RELAY_CONTENT_LENGTH) length = bytesDecimal(value);
      else if (action === RELAY_DATE) hasDate = true;
      fields.push(name, value);
      size += name.length + value.length + 4;
    }
    facts.contentLength = length;
    const lead = `HTTP/1.1 ${status} ${statusText || http.STATUS_CODES[status] || 'unknown'}\r\n`;
    const extra = facts.extraFields;
    const tail = `x-request-id: ${requestId}\r\n${extra === undefined ? '' : fieldLines(extra)}${this.#ownFields(status, length, hasDate)}`;
    this.#raw = { lead, fields, tail, size: lead.length + size + tail.length };
    this.headersSent = true;
    return true;
  }

  /** What Node adds after the fields it is given (in its order), and the blank line; sets the framing. */
  #ownFields(status: number, length: number, hasDate: boolean): string {
    let own = hasDate ? '' : date();
    own += this.#conn.closeAfter ? 'Connection: close\r\n' : this.#conn.lane.keepAliveFields;
    this.#noBody = bodyless(status, this.#method);
    if (!this.#noBody && length < 0) {
      this.#chunked = true;
      own += 'Transfer-Encoding: chunked\r\n';
    }
    return `${own}\r\n`;
  }

  /**
   * Writes the pending head (if any), then `pre`, `body` and `post`, in as few writes as it can;
   * `done` runs once `body`'s bytes are no longer needed (copied, or written by the socket).
   */
  #send(pre: string, body: Buffer | undefined, post: string, done?: (err?: Error | null) => void): boolean {
    const socket = this.#conn.socket;
    const bodyLength = body === undefined ? 0 : body.length;
    const raw = this.#raw;
    if (raw === null && bodyLength === 0) return pre + post === '' || socket.write(pre + post, 'latin1');
    this.#raw = null;
    const inline = bodyLength <= INLINE_BODY;
    const out = Buffer.allocUnsafe((raw === null ? 0 : raw.size) + pre.length + (inline ? bodyLength + post.length : 0));
    let pos = raw === null ? 0 : fillRawHead(out, raw);
    if (pre !== '') pos += out.write(pre, pos, 'latin1');
    if (inline) {
      if (body !== undefined) out.set(body, pos);
      if (post !== '') out.write(post, pos + bodyLength, 'latin1');
      done?.();
      return socket.write(out);
    }
    socket.cork();
    if (pos > 0) socket.write(out);
    let ok = socket.write(body!, done);
    if (post !== '') ok = socket.write(post, 'latin1');
    socket.uncork();
    return ok;
  }

  write(chunk: Buffer, done?: (err?: Error | null) => void): boolean {
    if (this.writableEnded) return false;
    if (this.#noBody || chunk.length === 0) return this.#send('', undefined, '');
    return this.#chunked ? this.#send(`${chunk.length.toString(16)}\r\n`, chunk, '\r\n', done) : this.#send('', chunk, '', done);
  }

  end(chunk?: Buffer | string, done?: (err?: Error | null) => void): this {
    if (this.writableEnded) return this;
    this.writableEnded = true;
    const body = chunk === undefined || this.#noBody ? undefined : typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (body !== undefined && body.length > 0) {
      if (this.#chunked) this.#send(`${body.length.toString(16)}\r\n`, body, '\r\n0\r\n\r\n', done);
      else this.#send('', body, '', done);
    } else {
      this.#send('', undefined, this.#chunked ? '0\r\n\r\n' : '');
    }
    this.writableFinished = true;
    this.#conn.responseEnded();
    return this;
  }

  destroy(): this {
    this.#conn.socket.destroy();
    return this;
  }

  once(_event: 'drain', listener: () => void): this {
    this.#conn.socket.once('drain', listener);
    return this;
  }

  on(_event: 'close', listener: () => void): this {
    this.#onClose = listener;
    return this;
  }

  /** The connection closed before this response ended. */
  connectionClosed(): void {
    this.#onClose?.call(this);
  }
}

class LaneConnection {
  readonly socket: Socket;
  readonly lane: Lane;
  /** Bytes received and not yet taken. */
  buf: Buffer | null = null;
  /** The response in progress, if any. */
  res: LaneResponse | undefined;
  /** Close once the current response has ended (client asked, or the listener is closing). */
  closeAfter = false;
  /** The lane's tick when this connection last became idle. */
  idleSince: number;
  /**
   * A head whose body is still arriving (see BUFFERED_BODY): `buf` holds the head and the body's
   * first bytes (from `#bodyStart`), `#parts` the reads since; `#received` body bytes in all;
   * waiting since the tick `waitingSince` (-1: not waiting).
   */
  #waiting: Head | undefined;
  #bodyStart = 0;
  #parts: Buffer[] = [];
  #received = 0;
  waitingSince = -1;
  /** No request taken yet: the bytes so far are the connection's first. */
  #fresh = true;
  #paused = false;
  /** A response has ended but is not yet flushed: the client has not read it. */
  #draining = false;
  readonly #onDrain = (): void => this.#drained();
  readonly #onData = (chunk: Buffer): void => this.data(chunk);
  readonly #onEnd = (): void => this.ended();
  readonly #onClose = (): void => this.closed();

  constructor(lane: Lane, socket: Socket) {
    this.lane = lane;
    this.socket = socket;
    this.idleSince = lane.tick;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onClose);
    socket.on('error', noop);
  }

  data(chunk: Buffer): void {
    // After a response that closes the connection nothing more is read, as Node's server does.
    if (this.socket.writableEnded) return;
    if (this.#waiting !== undefined) return this.#bodyData(chunk);
    this.buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
    if (this.res !== undefined) {
      // Pipelined: wait for the response in progress, but hold no more than one head's worth.
      if (this.buf.length > this.lane.options.maxHeaderSize && !this.#paused) {
        this.#paused = true;
        this.socket.pause();
      }
      return;
    }
    this.next();
  }

  /** Takes the next request from the buffer, or hands the connection to Node's parser. */
  next(): void {
    const buf = this.buf;
    if (buf === null || this.res !== undefined || this.socket.destroyed) return;
    const { maxHeaderSize, maxBodyBytes } = this.lane.options;
    const end = buf.indexOf(CRLFCRLF);
    if (end < 0 || end + 4 > maxHeaderSize) return this.handOff();
    const head = parseHead(buf.toString('latin1', 0, end), this.socket);
    if (head === undefined || (maxBodyBytes > 0 && head.length > maxBodyBytes)) return this.handOff();
    const start = end + 4;
    if (head.length <= buf.length - start) return this.#take(head, start, buf);
    // The body is on its way: wait for a small one, briefly (the sweep hands a slow one to Node's
    // path). The reads of a large one are kept as they are, not copied together: a copy would
    // double the external memory per request, and with it V8's full collections.
    if (head.length > BUFFERED_BODY || this.lane.waitingBytes + head.length > WAITING_BODY_BUDGET) return this.handOff();
    this.lane.waitingBytes += head.length;
    this.#waiting = head;
    this.#bodyStart = start;
    this.#received = buf.length - start;
    this.waitingSince = this.lane.tick;
  }

  /** More of the body `#waiting` for; the request is taken once it is whole. */
  #bodyData(chunk: Buffer): void {
    const head = this.#waiting!;
    const missing = head.length - this.#received;
    if (chunk.length < missing) {
      this.#parts.push(chunk);
      this.#received += chunk.length;
      // A body trickling in many small reads is not the everyday kind: Node's path streams it.
      if (this.#parts.length >= MAX_BODY_READS) this.handOff();
      return;
    }
    const buf = this.buf!;
    const body = this.#parts;
    if (buf.length > this.#bodyStart) body.unshift(buf.subarray(this.#bodyStart));
    body.push(missing === chunk.length ? chunk : chunk.subarray(0, missing));
    this.#parts = [];
    this.#stopWaiting();
    // A small body goes out in one buffer (undici writes an iterable part by part); a large one
    // is not copied.
    const whole = body.length === 1 ? body[0]! : head.length <= COPIED_BODY ? Buffer.concat(body, head.length) : body;
    this.#serve(head, whole, chunk.length > missing ? chunk.subarray(missing) : null);
  }

  /** Serves `head`, whose body is in `buf` from `start`; what follows it is the next request's. */
  #take(head: Head, start: number, buf: Buffer): void {
    this.#fresh = false;
    const bodyEnd = start + head.length;
    this.#serve(head, head.length > 0 ? buf.subarray(start, bodyEnd) : undefined, bodyEnd < buf.length ? buf.subarray(bodyEnd) : null);
  }

  /** `rest`: bytes received after the request, kept for the next one. */
  #serve(head: Head, body: Buffer | Buffer[] | undefined, rest: Buffer | null): void {
    this.buf = rest;
    if (head.close) this.closeAfter = true;
    const res = new LaneResponse(this, head.req.method);
    this.res = res;
    this.lane.served++;
    this.lane.handler(head.req, res, body);
  }

  responseEnded(): void {
    this.res = undefined;
    this.idleSince = this.lane.tick;
    if (this.closeAfter) {
      // Ends our side, and destroys the socket once the response is flushed (Node's server too).
      this.socket.destroySoon();
      return;
    }
    if (this.socket.writableNeedDrain) {
      // The client is not reading its answers (yet): read nothing more from it, and take no
      // pipelined request, until it has, so unread responses never pile up in the proxy. The
      // connection is not idle while its answer is still going out.
      this.#draining = true;
      if (!this.#paused) {
        this.#paused = true;
        this.socket.pause();
      }
      this.socket.once('drain', this.#onDrain);
      return;
    }
    this.#readOn();
  }

  #drained(): void {
    this.#draining = false;
    this.idleSince = this.lane.tick;
    this.#readOn();
  }

  #readOn(): void {
    if (this.#paused) {
      this.#paused = false;
      this.socket.resume();
    }
    // A pipelined request: taken on the next tick, not inside the caller's callback.
    if (this.buf !== null) process.nextTick(() => this.next());
  }

  /** Whether the connection waits for a request: no response in progress or still going out. */
  get idle(): boolean {
    return this.res === undefined && !this.#draining;
  }

  /**
   * The client sent FIN: close our side too. A response in progress is abandoned and its upstream
   * request aborted once the socket closes, as Node's server does (no half-open HTTP).
   */
  ended(): void {
    // A body still awaited will not come: nothing to hand on to Node either.
    this.#parts = [];
    this.#stopWaiting();
    this.socket.end();
  }

  /** No longer waiting for a body (it came, or went elsewhere): its reservation is given back. */
  #stopWaiting(): void {
    if (this.#waiting !== undefined) this.lane.waitingBytes -= this.#waiting.length;
    this.#waiting = undefined;
    this.waitingSince = -1;
  }

  closed(): void {
    this.#parts = [];
    this.#stopWaiting();
    this.lane.conns.delete(this);
    const res = this.res;
    this.res = undefined;
    res?.connectionClosed();
  }

  /** From now on Node's parser reads this connection, starting with the bytes not yet taken. */
  handOff(): void {
    const socket = this.socket;
    // A connection's first bytes may be the HTTP/2 preface (prior-knowledge h2c): only then, and
    // only until the lane has taken a request; too few of them to tell: wait for more.
    const h2 = this.#fresh && this.lane.options.toH2 !== undefined && this.buf !== null ? prefaceVerdict(this.buf) : 'h1';
    if (h2 === undefined && this.#parts.length === 0) return;
    socket.removeListener('data', this.#onData);
    socket.removeListener('end', this.#onEnd);
    socket.removeListener('close', this.#onClose);
    socket.removeListener('error', noop);
    this.lane.conns.delete(this);
    socket.pause();
    if (h2 === 'h2' && this.#parts.length === 0) {
      const read = [this.buf!];
      this.buf = null;
      this.lane.options.toH2!(socket, read);
      return;
    }
    this.lane.handedOff++;
    if (this.buf !== null) {
      putBack(socket, this.#parts);
      socket.unshift(this.buf);
    }
    this.#parts = [];
    this.#stopWaiting();
    this.buf = null;
    this.lane.toNode(socket);
    socket.resume();
  }
}

function noop(): void {}

class Lane implements FastLane {
  readonly conns = new Set<LaneConnection>();
  readonly options: FastLaneOptions;
  readonly handler: LaneHandler;
  readonly toNode: (socket: Socket) => void;
  /** The fields that end a keep-alive response head (as Node writes them). */
  readonly keepAliveFields: string;
  /** Seconds since the lane started (a coarse clock: no timer per connection). */
  tick = 0;
  served = 0;
  handedOff = 0;
  /** Declared body bytes of the requests waiting for their body (see WAITING_BODY_BUDGET). */
  waitingBytes = 0;
  #closing = false;
  readonly #timer: NodeJS.Timeout;
  readonly #idleTicks: number;

  constructor(options: FastLaneOptions, handler: LaneHandler, toNode: (socket: Socket) => void) {
    this.options = options;
    this.handler = handler;
    this.toNode = toNode;
    this.keepAliveFields = `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(options.keepAliveTimeoutMs / 1000)}\r\n`;
    this.#idleTicks = Math.max(1, Math.ceil(options.keepAliveTimeoutMs / 1000));
    this.#timer = setInterval(() => this.#sweep(), 1000).unref();
  }

  get connections(): number {
    return this.conns.size;
  }

  get waiting(): number {
    let n = 0;
    for (const conn of this.conns) if (conn.waitingSince >= 0) n++;
    return n;
  }

  accept(socket: Socket): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    this.conns.add(new LaneConnection(this, socket));
  }

  #sweep(): void {
    this.tick++;
    dateField = '';
    let waiting = 0;
    for (const conn of this.conns) {
      // A body slower than the lane waits for: Node's path streams it, with its own timeouts.
      // Not once closing: the server stops taking connections, so it waits out the grace period.
      if (conn.waitingSince >= 0) {
        if (!this.#closing && this.tick - conn.waitingSince >= BODY_WAIT_TICKS) conn.handOff();
        else waiting++;
        continue;
      }
      // Idle past the keep-alive timeout (or never sent a byte): closed, as Node closes its own.
      if (conn.idle && this.tick - conn.idleSince > this.#idleTicks) conn.socket.destroy();
    }
    if (this.#closing && waiting === 0) clearInterval(this.#timer);
  }

  close(): void {
    this.#closing = true;
    for (const conn of this.conns) {
      if (conn.idle && conn.waitingSince < 0) conn.socket.destroy();
      // Busy, or its body is arriving: served (the sweep keeps waiting), then closed.
      else conn.closeAfter = true;
    }
  }

  closeAll(): void {
    clearInterval(this.#timer);
    for (const conn of this.conns) conn.socket.destroy();
  }
}

/**
 * Puts the lane in front of `server` (plain HTTP only): new connections go to the lane, which
 * hands those it will not serve to the server's own connection handling.
 */
export function installFastLane(server: http.Server, handler: LaneHandler, options: FastLaneOptions): FastLane {
  const lane = new Lane(options, handler, takeListener(server, 'connection', 'the fast lane'));
  server.on('connection', (socket: Socket) => lane.accept(socket));
  return lane;
}

/** Name/value pairs as head lines. */
function fieldLines(pairs: readonly string[]): string {
  let out = '';
  for (let i = 0; i < pairs.length; i += 2) out += `${pairs[i]}: ${pairs[i + 1]}\r\n`;
  return out;
}
