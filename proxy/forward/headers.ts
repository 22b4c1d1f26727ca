/**
 * Header passes, pure and working on Node's flat raw-header arrays ([name, value, name, value…]),
 * which is what both the incoming request and undici's dispatch accept: no per-request objects.
 */

/**
 * Hop-by-hop fields (RFC 9110 §7.6.1) and fields a proxy must not relay as-is: the connection is
 * the proxy's own. `host` is set from the chosen endpoint; `expect` is answered by the proxy.
 */
const REQUEST_DROP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'host',
  'expect',
  'http2-settings',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-request-id',
]);

// Module-level: a regular expression literal inside a function is a new object at each call.
const TOKEN = /^[\x21-\x7e]+$/;

/** 1-15 ASCII digits as a number, else -1 (per response: a loop, not a regular expression). */
export function plainDecimal(value: string): number {
  if (value.length === 0 || value.length > 15) return -1;
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const digit = value.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return -1;
    n = n * 10 + digit;
  }
  return n;
}

const RESPONSE_DROP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'x-request-id',
]);

/** RESPONSE_DROP by name length, for checking a field name's bytes without making a string of it. */
const RESPONSE_DROP_BY_LENGTH: string[][] = [];
for (const name of RESPONSE_DROP) (RESPONSE_DROP_BY_LENGTH[name.length] ??= []).push(name);

/** Whether `bytes` (a field name or value) is `lower` (lower-case ASCII) in any case. */
export function bytesNamed(bytes: Buffer, lower: string): boolean {
  if (bytes.length !== lower.length) return false;
  for (let i = 0; i < bytes.length; i++) if ((bytes[i]! | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

/** A plain decimal of at most 15 digits, else -1 (`plainDecimal` on bytes). */
export function bytesDecimal(bytes: Buffer): number {
  if (bytes.length === 0 || bytes.length > 15) return -1;
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const d = bytes[i]! - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/** What the response-header policy does with one upstream field (see `responseField`). */
export const RELAY = 0;
export const DROP = 1;
/** Relayed; it declares the body's length. */
export const RELAY_CONTENT_LENGTH = 2;
/** Relayed; the client then needs no Date of the proxy's. */
export const RELAY_DATE = 3;
/** Dropped, and it names other fields that must go too (RFC 9110 §7.6.1). */
export const DROP_NAMING = 4;
export type FieldAction = typeof RELAY | typeof DROP | typeof RELAY_CONTENT_LENGTH | typeof RELAY_DATE | typeof DROP_NAMING;

/**
 * The response-header policy, for Node's path (`clientResponseHeaders`) and the fast lane's byte
 * writer alike: hop-by-hop fields and the upstream's X-Request-Id are dropped (ours is added), the
 * rest relayed as they came. Works on undici's raw field bytes without making strings of them.
 */
export function responseField(name: Buffer, value: Buffer): FieldAction {
  const candidates = RESPONSE_DROP_BY_LENGTH[name.length];
  if (candidates !== undefined) {
    for (const lower of candidates) {
      if (!bytesNamed(name, lower)) continue;
      return lower === 'connection' && !bytesNamed(value, 'keep-alive') && !bytesNamed(value, 'close') ? DROP_NAMING : DROP;
    }
  }
  if (bytesNamed(name, 'content-length')) return RELAY_CONTENT_LENGTH;
  if (bytesNamed(name, 'date')) return RELAY_DATE;
  return RELAY;
}

export interface ForwardInfo {
  /** The client's address, appended to X-Forwarded-For. */
  clientIp: string;
  /** 'http' or 'https': how the client reached us. */
  proto: string;
  /** The Host the client asked for. */
  host: string | undefined;
  /** This request's id, sent upstream as X-Request-Id. */
  requestId: string;
}

/**
 * Request headers for the upstream: hop-by-hop fields (and every field named in `Connection`)
 * removed; X-Forwarded-For appended; X-Forwarded-Proto/-Host set by us (never trusted from the
 * client); Via added (RFC 9110 §7.6.3).
 */
export function upstreamRequestHeaders(raw: readonly string[], info: ForwardInfo): string[] {
  const named = connectionTokens(raw);
  const out: string[] = [];
  let xff: string | undefined;
  let via: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (REQUEST_DROP.has(lower) || named?.has(lower)) continue;
    const value = raw[i + 1]!;
    if (lower === 'x-forwarded-for') {
      xff = xff === undefined ? value : `${xff}, ${value}`;
      continue;
    }
    if (lower === 'via') {
      via = via === undefined ? value : `${via}, ${value}`;
      continue;
    }
    out.push(name, value);
  }
  out.push('x-forwarded-for', xff === undefined ? info.clientIp : `${xff}, ${info.clientIp}`);
  out.push('x-forwarded-proto', info.proto);
  if (info.host !== undefined) out.push('x-forwarded-host', info.host);
  out.push('via', via === undefined ? '1.1 puttu' : `${via}, 1.1 puttu`);
  out.push('x-request-id', info.requestId);
  return out;
}

/**
 * Whether the request has more than one Host field line. RFC 9112 §3.2: a server must answer 400
 * to that (and to an HTTP/1.1 request with none, which Node's parser already refuses). Node's
 * parser lets duplicates through and keeps the first; a cache or an upstream behind the proxy
 * might read another, so they are refused.
 */
export function duplicateHost(raw: readonly string[]): boolean {
  let seen = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length !== 4 || name.toLowerCase() !== 'host') continue;
    if (seen) return true;
    seen = true;
  }
  return false;
}

/**
 * The request id: the client's X-Request-Id when it is a sane token (printable ASCII, at most 128
 * characters), else a new UUID. W3C traceparent/tracestate are not touched: they pass through.
 */
export function requestIdOf(incoming: string | string[] | undefined, generate: () => string): string {
  if (typeof incoming === 'string' && incoming.length > 0 && incoming.length <= 128 && TOKEN.test(incoming)) return incoming;
  return generate();
}

/** What clientResponseHeaders noticed on the way: the body length the upstream declared. */
export interface ResponseFacts {
  /** Content-Length as a number; -1 when absent or not a plain decimal. */
  contentLength: number;
  /** Fields the proxy adds after X-Request-Id (explain: Server-Timing, X-Puttu-Attempts), as name/value pairs. */
  readonly extraFields?: readonly string[] | undefined;
}

/**
 * Response headers for the client from undici's raw Buffers: hop-by-hop fields removed, our
 * X-Request-Id added. `facts`, when given, gets the declared Content-Length.
 */
export function clientResponseHeaders(raw: readonly Buffer[], requestId: string, facts?: ResponseFacts): string[] {
  if (facts !== undefined) facts.contentLength = -1;
  // One pass; fields named in Connection (rare beyond keep-alive/close) are taken out after it.
  const out: string[] = [];
  let named: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const action = responseField(raw[i]!, raw[i + 1]!);
    if (action === DROP) continue;
    if (action === DROP_NAMING) {
      named = addConnectionTokens(raw[i + 1]!.toString('latin1'), named);
      continue;
    }
    if (action === RELAY_CONTENT_LENGTH && facts !== undefined) facts.contentLength = bytesDecimal(raw[i + 1]!);
    out.push(raw[i]!.toString('latin1'), raw[i + 1]!.toString('latin1'));
  }
  const kept = named === undefined ? out : withoutFields(out, named);
  kept.push('x-request-id', requestId);
  const extra = facts?.extraFields;
  if (extra !== undefined) for (const f of extra) kept.push(f);
  return kept;
}

function withoutFields(fields: readonly string[], names: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < fields.length; i += 2) if (!names.has(fields[i]!.toLowerCase())) out.push(fields[i]!, fields[i + 1]!);
  return out;
}

/** Field names listed in `Connection` (RFC 9110 §7.6.1), lower-cased; undefined when none. */
export function connectionTokens(raw: readonly string[]): Set<string> | undefined {
  let tokens: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 10 && raw[i]!.toLowerCase() === 'connection') tokens = addConnectionTokens(raw[i + 1]!, tokens);
  }
  return tokens;
}

/** Adds the field names one Connection value lists (not close/keep-alive) to `tokens`. */
function addConnectionTokens(value: string, tokens: Set<string> | undefined): Set<string> | undefined {
  // The usual value, without splitting it.
  if (value.length === 10 && value.toLowerCase() === 'keep-alive') return tokens;
  for (const t of value.split(',')) {
    const token = t.trim().toLowerCase();
    if (token === '' || token === 'close' || token === 'keep-alive') continue;
    (tokens ??= new Set()).add(token);
  }
  return tokens;
}
