/**
 * The fast-lane fuzzer's case generator: seeded, so every case can be replayed from its seed.
 *
 * A case is one client connection: a few HTTP/1.1 requests (valid, odd or malformed), pipelined in
 * one byte stream, cut into write chunks sent with small pauses between some of them. The
 * generator knows how many requests it meant to send and which of them are HEAD (their responses
 * have no body); how the two parsers actually read the bytes is what the fuzzer observes.
 *
 * Everything is latin1: one character, one byte.
 */
import { seeded } from '../helpers/fakes.js';

/** mulberry32, the seeded source the tests share (test/helpers/fakes.ts `seeded`). */
export const mulberry32: (seed: number) => () => number = seeded;

export class Rng {
  readonly #next: () => number;
  constructor(seed: number) {
    this.#next = mulberry32(seed);
  }
  /** [0, 1) */
  float(): number {
    return this.#next();
  }
  /** An unsigned 32-bit integer. */
  u32(): number {
    return Math.floor(this.#next() * 4294967296) >>> 0;
  }
  /** [0, n) */
  int(n: number): number {
    return Math.floor(this.#next() * n);
  }
  /** [lo, hi] */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.#next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  /** Picks by weight: [[weight, value], ...]. */
  weighted<T>(xs: ReadonlyArray<readonly [number, T]>): T {
    let total = 0;
    for (const [w] of xs) total += w;
    let r = this.float() * total;
    for (const [w, v] of xs) {
      r -= w;
      if (r < 0) return v;
    }
    return xs[xs.length - 1]![1];
  }
}

/** The proxies' limits the generator aims at (the fuzzer starts its proxies with them). */
export interface Limits {
  maxHeaderBytes: number;
  maxBodyBytes: number;
}

export const LIMITS: Limits = { maxHeaderBytes: 4096, maxBodyBytes: 100_000 };

export interface FuzzCase {
  /** Position in the seed's sequence of cases. */
  index: number;
  /** The case's own seed (derived from the run's seed and the index). */
  seed: number;
  /** The requests as generated (before pipelining junk), latin1. */
  requests: string[];
  /** The whole byte stream, latin1. */
  bytes: string;
  /** `bytes` cut into the writes, in order. */
  chunks: string[];
  /** Pause before each write after the first, ms (0: same tick, usually coalesced). */
  delays: number[];
  /** Requests the generator meant to send (a whole request smuggled past a body included). */
  expected: number;
  /** Per generated request: whether it is a HEAD (its response has no body). */
  heads: boolean[];
  /**
   * Where each request's part of `bytes` begins, and (last) where the last one's ends: a part runs
   * from the framed end of the request before (junk, or bytes sent past a body, are the start of
   * the next request to a parser) to its own framed end. For writing the requests one response at
   * a time (harness.ts, pacedPiecesOf). `expected + 1` entries, never decreasing.
   */
  starts: number[];
  /** What the case exercises (for the coverage summary). */
  tags: string[];
}

/** The case seed for `index` of a run seeded `seed`: independent of the other cases. */
export function caseSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

const CLEAN_METHODS = ['GET', 'GET', 'GET', 'HEAD', 'POST', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'] as const;
const ODD_METHODS = [
  'get',
  'Get',
  'TRACE',
  'CONNECT',
  'PROPFIND',
  'MKCALENDAR',
  'M-SEARCH',
  'PURGE',
  'QUERY',
  'SOURCE',
  'ACL',
  'GETX',
  'G\u00c9T',
  'GET\t',
  'POST ',
  '',
  'X'.repeat(20),
  'DELETE',
  'LINK',
  'REPORT',
];

/** Path segments after the service; some need normalising, some are refused (route.ts). */
const SEGMENTS = [
  'a',
  'b',
  'c1',
  'x-y',
  'under_score',
  '~t',
  '.',
  '..',
  '%2e',
  '%2E%2e',
  '.%2e',
  '',
  '%20',
  '%41',
  '%zz',
  '%',
  '%2f',
  '%2F',
  '%5c',
  '\\',
  ';p=1',
  '@',
  ':',
  "!$&'()*+,",
  '"',
  '<',
  '>',
  '{x}',
  '|',
  '^',
  '`',
  '[',
  ']',
  'caf\u00e9',
  '\u00ff',
  '%00',
  'status',
  'chunked',
  'hdrs',
];
const SERVICES = [
  'svc',
  'svc',
  'svc',
  'svc',
  'svc',
  'svc',
  'svc',
  'svc',
  'nosuch',
  '',
  'SVC',
  'sv%63',
  's%76c',
  '%2e%2e',
  '.',
  'svc.',
  'svc;x',
  'svc%00',
  'svc%2f',
  'x'.repeat(300),
];
const QUERIES = ['', '', '', '?a=1', '?a=1&b=%20&c', '?', '?#', '#frag', '?x=/../y', '?q=caf%C3%A9', '?a=1#f', '??', '?%zz', '?=&='];
const STATUS_PATHS = [
  '/status/200',
  '/status/201',
  '/status/204',
  '/status/304',
  '/status/301',
  '/status/404',
  '/status/500',
  '/status/503',
  '/chunked',
  '/hdrs',
  '/close',
];

const HOSTS = [
  'example.test',
  'example.test',
  'example.test',
  'example.test:8080',
  'EXAMPLE.test',
  '127.0.0.1',
  '[::1]:8080',
  '',
  'a b',
  'ex_ample',
  'h\u00e9',
  'x'.repeat(200),
  'example.test.',
  'example.test:',
  'example.test:99999',
  'example.test\t',
  'example.test \t',
];

/** Ordinary fields and the values they get. */
const FIELDS: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['Accept', ['*/*', 'text/html, application/json;q=0.9', '']],
  ['User-Agent', ['fuzz/1.0', 'Mozilla/5.0 (X11; Linux x86_64)', 'a\tb']],
  ['Accept-Encoding', ['gzip, deflate', 'identity']],
  ['Content-Type', ['text/plain', 'application/json', 'multipart/form-data; boundary=x']],
  ['Cookie', ['a=b; c=d', 'x=1']],
  ['X-Request-Id', ['abc-123', 'has space', 'x'.repeat(129), 'x'.repeat(128), '', 'caf\u00e9', 'r\u0001']],
  ['X-Forwarded-For', ['10.0.0.1', '10.0.0.1, 10.0.0.2', 'junk']],
  ['X-Forwarded-Proto', ['https', 'gopher']],
  ['X-Forwarded-Host', ['evil.test']],
  ['Via', ['1.0 edge', '1.1 a, 1.1 b']],
  [
    'Connection',
    [
      'keep-alive',
      'close',
      'Close',
      'KEEP-ALIVE',
      'keep-alive, close',
      'close, x-a',
      'x-a',
      'x-a, keep-alive',
      'Upgrade',
      'TE',
      '',
      ' close ',
      'close\t',
      'keep-alive\t',
    ],
  ],
  ['Keep-Alive', ['timeout=5', 'max=10']],
  ['Proxy-Connection', ['close', 'keep-alive']],
  ['TE', ['trailers', 'gzip']],
  ['Trailer', ['X-T']],
  ['Upgrade', ['h2c', 'websocket', '']],
  ['Expect', ['100-continue', 'foo', '100-CONTINUE']],
  ['HTTP2-Settings', ['AAMAAABkAARAAAAAAAIAAAAA']],
  ['X-A', ['1', 'one two', ' padded ', '\tTabbed\t', 'x'.repeat(100), 'a,b', '"quoted"', '']],
  ['x-b', ['2', 'lower case name']],
  ['X-MiXeD-CaSe', ['v']],
  ['X_Underscore', ['u']],
  ['X-Empty', ['']],
  ['Authorization', ['Bearer abc.def']],
  ['Range', ['bytes=0-1']],
  ['If-None-Match', ['"etag"']],
  ['Cache-Control', ['no-cache']],
  ['Origin', ['http://example.test']],
  ['traceparent', ['00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01']],
];

/** Bad field names: not tokens, empty, spaces. */
const BAD_NAMES = [
  'X-D ',
  ' X-E',
  'X-F\t',
  '',
  'X(G)',
  'X-\u00e9',
  'X@Y',
  'X Y',
  'X\u0000Y',
  'X\u007fY',
  'X"Q',
  'X/Y',
  'X{Y}',
  'X=Y',
  'X;Y',
  'X,Y',
  'X[Y]',
  '\u0080',
];
/** Bad or odd bytes in values. */
const BAD_VALUES = [
  'a\u0001b',
  'caf\u00e9',
  'a\u007fb',
  'a\u0000b',
  'a\rb',
  '\u00ff\u00fe',
  'a\u001fb',
  'a\u0080b',
  'trail\u000b',
  '\u000c',
];

export interface LineEnds {
  /** The line end after each field (and the request line). */
  eol(): string;
}

/** Content-Length values for a body of `n` bytes, with what they announce (-1: not a number). */
function lengthVariant(r: Rng, n: number): { value: string; tag: string } {
  return r.weighted<{ value: string; tag: string }>([
    [30, { value: String(n), tag: 'cl' }],
    [3, { value: `0${n}`, tag: 'cl-leading-zero' }],
    [2, { value: `000${n}`, tag: 'cl-leading-zero' }],
    [2, { value: `+${n}`, tag: 'cl-plus' }],
    [1, { value: `-${n}`, tag: 'cl-negative' }],
    [2, { value: ` ${n}  `, tag: 'cl-ows' }],
    [1, { value: `${n}\t`, tag: 'cl-ows' }],
    [2, { value: `${n}x`, tag: 'cl-junk' }],
    [1, { value: `0x${n.toString(16)}`, tag: 'cl-hex' }],
    [1, { value: `${n}.0`, tag: 'cl-decimal' }],
    [2, { value: `${n},${n}`, tag: 'cl-list' }],
    [2, { value: `${n}, ${n}`, tag: 'cl-list' }],
    [1, { value: `${n}, ${n + 1}`, tag: 'cl-list' }],
    [1, { value: '', tag: 'cl-empty' }],
    [1, { value: '99999999999999999999', tag: 'cl-huge' }],
    [1, { value: '123456789012345', tag: 'cl-huge' }],
    [1, { value: '9007199254740993', tag: 'cl-huge' }],
    [1, { value: '1e2', tag: 'cl-exp' }],
    [1, { value: `${n} ${n}`, tag: 'cl-space-inside' }],
    [1, { value: `\u00b2`, tag: 'cl-junk' }],
  ]);
}

/** A chunked body for `payload`, valid or with a malformed part. */
function chunkedBody(r: Rng, payload: string, tags: string[]): string {
  const odd = r.chance(0.3);
  const parts: string[] = [];
  let rest = payload;
  while (rest.length > 0) {
    const n = Math.min(rest.length, r.range(1, Math.max(1, rest.length)));
    parts.push(rest.slice(0, n));
    rest = rest.slice(n);
  }
  let out = '';
  const sizeLine = (n: number): string => {
    if (!odd || !r.chance(0.3)) return n.toString(16);
    const v = r.pick([
      n.toString(16).toUpperCase(),
      `000${n.toString(16)}`,
      `${n.toString(16)};ext=1`,
      `${n.toString(16)};`,
      `${n.toString(16)} `,
      `${n.toString(16)}\t;a`,
      ` ${n.toString(16)}`,
      'zz',
      `-${n}`,
      'ffffffffffffffffff',
      `${n.toString(16)}\u0000`,
      `0x${n.toString(16)}`,
    ]);
    tags.push('chunk-size-odd');
    return v;
  };
  for (const p of parts) {
    let after = '\r\n';
    if (odd && r.chance(0.15)) {
      after = r.pick(['\n', '', 'XX', '\r\r\n', ' \r\n']);
      tags.push('chunk-data-end-odd');
    }
    out += `${sizeLine(p.length)}\r\n${p}${after}`;
  }
  // Last chunk, optional trailers, final CRLF.
  out += `${odd && r.chance(0.2) ? r.pick(['00', '0;x=1', '0 ', '000']) : '0'}\r\n`;
  if (r.chance(0.1)) {
    out += r.pick(['X-T: 1\r\n', 'X-T: 1\r\nX-U: 2\r\n', 'Bad Trailer\r\n', 'Content-Length: 5\r\n']);
    tags.push('chunk-trailer');
  }
  out += odd && r.chance(0.1) ? r.pick(['', '\n', 'junk']) : '\r\n';
  if (odd) tags.push('chunked-odd');
  return out;
}

/** A body payload of `n` bytes: plain letters, or any bytes. */
function payloadOf(r: Rng, n: number): string {
  if (n === 0) return '';
  if (r.chance(0.7)) {
    const ch = r.pick(['p', 'q', 'z', '0']);
    return ch.repeat(n);
  }
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(r.chance(0.8) ? r.range(0x61, 0x7a) : r.int(256));
  return s;
}

function bodySize(r: Rng, limits: Limits): number {
  return r.weighted<number>([
    [40, r.range(0, 40)],
    [15, r.range(41, 600)],
    [2, r.range(3000, 5000)],
    [1, r.range(16 * 1024 - 4, 16 * 1024 + 4)],
    [1, r.range(20_000, 66_000)],
    [0.4, 64 * 1024 + r.range(-1, 1)],
    [0.3, limits.maxBodyBytes + r.range(-1, 1)],
  ]);
}

/** Odd casing of a field name. */
function casing(r: Rng, name: string): string {
  return r.weighted<string>([
    [6, name],
    [1, name.toLowerCase()],
    [1, name.toUpperCase()],
    [1, [...name].map((c) => (r.chance(0.5) ? c.toUpperCase() : c.toLowerCase())).join('')],
  ]);
}

interface Generated {
  text: string;
  /**
   * Where the message ends as its framing says, in `text`: before bytes sent past its body, or
   * past the end of `text` when it announces more body than it sends (the next request's bytes
   * are then read as the rest of it).
   */
  framed: number;
  /** The bytes past the body are a whole request of their own (a smuggling attempt). */
  smuggled: boolean;
  method: string;
  tags: string[];
}

/**
 * One request. `odd` scales how many deviations it gets: 0 is a plain everyday request the lane
 * should take itself.
 */
function request(r: Rng, limits: Limits, odd: number): Generated {
  const tags: string[] = [];
  const dev = (p: number): boolean => odd > 0 && r.chance(Math.min(1, p * odd));

  // Method.
  let method: string = r.pick(CLEAN_METHODS);
  if (dev(0.07)) {
    method = r.pick(ODD_METHODS);
    tags.push('method-odd');
  }

  // Target.
  let target: string;
  if (dev(0.03)) {
    target = r.pick([
      '*',
      'http://example.test/svc/a',
      'HTTP://EXAMPLE.TEST/svc/a?x=1',
      'https://x/svc/b',
      'http://example.test',
      'svc/a',
      '//svc/a',
      'example.test:80',
      '/',
      '',
      'http://u@example.test/svc/a',
      'ftp://x/svc/a',
    ]);
    tags.push('target-form-odd');
  } else {
    const service = dev(0.1) ? r.pick(SERVICES) : 'svc';
    if (service !== 'svc') tags.push('service-odd');
    target = `/${service}`;
    if (r.chance(0.08)) {
      target += r.pick(STATUS_PATHS);
      tags.push('upstream-special');
    } else {
      const count = r.int(5);
      for (let i = 0; i < count; i++) {
        const seg = dev(0.25) ? r.pick(SEGMENTS) : r.pick(['a', 'b', 'items', '42', 'x-y', 'v1']);
        target += `/${seg}`;
      }
      if (count > 0 && SEGMENTS.includes(target.split('/').pop()!)) tags.push('segment-odd');
      if (r.chance(0.1)) target += '/';
    }
    target += dev(0.2) ? r.pick(QUERIES) : r.chance(0.2) ? '?page=2&sort=asc' : '';
    if (dev(0.02)) {
      target += r.pick([' ', '\u007f', '\u00e9', '\t', '\u0000', ' x', '%']);
      tags.push('target-bad-char');
    }
    if (dev(0.015)) {
      // Overlong: around the head limit, or past the router's 8 KiB target limit.
      const len = r.pick([
        limits.maxHeaderBytes - 64 + r.range(-40, 40),
        limits.maxHeaderBytes + r.range(0, 100),
        8 * 1024 + r.range(-2, 2),
      ]);
      target += `/${'l'.repeat(Math.max(0, len - target.length - 1))}`;
      tags.push('target-overlong');
    }
  }

  // Version and the request line.
  let version = 'HTTP/1.1';
  if (dev(0.05)) {
    version = r.pick([
      'HTTP/1.0',
      'HTTP/1.2',
      'HTTP/2.0',
      'http/1.1',
      'HTTP/1.10',
      'HTTP/01.1',
      'HTTP/1',
      'HTTP/1.1 ',
      'HTTP /1.1',
      'HTTP/9.9',
      'HTTP/1.1\t',
      'HTTPS/1.1',
      '',
    ]);
    tags.push(version === 'HTTP/1.0' ? 'http10' : 'version-odd');
  }
  let line = `${method} ${target} ${version}`;
  if (dev(0.02)) {
    line = r.pick([
      `${method}  ${target} ${version}`,
      `${method}\t${target}\t${version}`,
      ` ${line}`,
      `${method} ${target}`,
      `${method} ${target}  ${version}`,
      `${method}${target} ${version}`,
    ]);
    tags.push('request-line-odd');
  }

  // Line ends.
  const eolOdd = dev(0.02);
  if (eolOdd) tags.push('eol-odd');
  const eol = (): string => (eolOdd && r.chance(0.5) ? r.pick(['\n', '\r', '\n\r', '\r\r\n']) : '\r\n');

  // Fields.
  const fields: string[] = [];
  // Host.
  let hosts = 1;
  if (dev(0.05)) {
    hosts = r.pick([0, 2, 2, 3]);
    tags.push(hosts === 0 ? 'host-none' : 'host-duplicate');
  }
  for (let i = 0; i < hosts; i++) {
    let value = 'example.test';
    if (dev(0.05) || (i > 0 && r.chance(0.5))) {
      value = r.pick(HOSTS);
      tags.push('host-odd');
    }
    const name = dev(0.2) ? r.pick(['host', 'HOST', 'hOsT', 'Host ']) : 'Host';
    fields.push(`${name}:${dev(0.1) ? r.pick(['', '  ', '\t']) : ' '}${value}`);
  }
  const fieldCount = r.weighted<number>([
    [10, r.int(4)],
    [4, r.range(4, 10)],
    [0.5, r.range(40, 120)],
  ]);
  for (let i = 0; i < fieldCount; i++) {
    const [name0, values] = r.pick(FIELDS);
    let name = casing(r, name0);
    let value = r.pick(values);
    // Fields that change the framing or the connection are deviations: only in odd requests.
    if (
      odd === 0 &&
      /^(connection|keep-alive|proxy-connection|te|trailer|upgrade|expect|http2-settings)$/i.test(name0) &&
      !(name0 === 'Connection' && (value === 'keep-alive' || value === 'close'))
    )
      continue;
    if (odd === 0 && name0 === 'X-Request-Id' && value !== 'abc-123') continue;
    if (dev(0.04)) {
      name = r.pick(BAD_NAMES);
      tags.push('name-bad');
    }
    if (dev(0.04)) {
      value = r.pick(BAD_VALUES);
      tags.push('value-bad');
    }
    let sep = ': ';
    if (dev(0.08)) {
      sep = r.pick([':', ':  ', ':\t', ': \t ', ' :', ' : ', '::']);
      tags.push('separator-odd');
    }
    let trail = '';
    if (dev(0.05)) {
      trail = r.pick([' ', '\t', '  \t']);
      tags.push('value-trailing-ws');
    }
    fields.push(`${name}${sep}${value}${trail}`);
    if (dev(0.03)) {
      fields.push(`${name}${sep}${value}`);
      tags.push('field-duplicate');
    }
  }
  if (dev(0.02)) {
    // obs-fold: a continuation line, after some field.
    fields.splice(r.int(fields.length + 1), 0, r.pick([' folded', '\tfolded', ' ', '  more text']));
    tags.push('obs-fold');
  }
  if (dev(0.015)) {
    fields.splice(r.int(fields.length + 1), 0, r.pick(['NoColon', ':empty-name', ' ', 'X-Junk\u0000: 1', '\u0000']));
    tags.push('field-line-bad');
  }

  // Body framing.
  const bodyMethod = method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS' && method !== 'DELETE';
  let framing: string;
  if (dev(0.25)) {
    framing = r.weighted<string>([
      [6, 'length'],
      [5, 'chunked'],
      [2, 'length-odd'],
      [2, 'two-lengths-same'],
      [2, 'two-lengths-differ'],
      [2, 'length-and-chunked'],
      [1, 'chunked-and-length'],
      [2, 'te-odd'],
      [1, 'two-te'],
      [1, 'short-body'],
      [2, 'long-body'],
      [1, 'body-no-length'],
    ]);
  } else {
    framing = bodyMethod ? (r.chance(0.85) ? 'length' : 'none') : r.chance(0.05) ? 'length' : 'none';
  }
  const n = framing === 'none' ? 0 : bodySize(r, limits);
  const payload = payloadOf(r, n);
  let body = '';
  /** Bytes after the framed end of the message (read as the start of the next request). */
  let extra = '';
  /** Body bytes announced and not sent (read from what follows). */
  let missing = 0;
  const clName = (): string =>
    dev(0.15) ? r.pick(['content-length', 'CONTENT-LENGTH', 'Content-length', 'Content-Length ']) : 'Content-Length';
  const teName = (): string => (dev(0.15) ? r.pick(['transfer-encoding', 'TRANSFER-ENCODING', 'Transfer-encoding']) : 'Transfer-Encoding');
  switch (framing) {
    case 'none':
      break;
    case 'length':
      fields.push(`${clName()}: ${n}`);
      body = payload;
      tags.push(n === 0 ? 'cl-zero' : 'cl');
      break;
    case 'length-odd': {
      const v = lengthVariant(r, n);
      fields.push(`${clName()}: ${v.value}`);
      body = payload;
      tags.push(v.tag);
      break;
    }
    case 'two-lengths-same':
      fields.push(`${clName()}: ${n}`, `${clName()}: ${r.chance(0.3) ? `0${n}` : n}`);
      body = payload;
      tags.push('cl-duplicate');
      break;
    case 'two-lengths-differ':
      fields.push(`${clName()}: ${n}`, `${clName()}: ${n + r.range(1, 5)}`);
      body = payload;
      tags.push('cl-conflict');
      break;
    case 'length-and-chunked':
    case 'chunked-and-length': {
      const cl = `${clName()}: ${r.chance(0.5) ? n : 4}`;
      const te = `${teName()}: chunked`;
      fields.push(...(framing === 'length-and-chunked' ? [cl, te] : [te, cl]));
      body = chunkedBody(r, payload, tags);
      tags.push('cl-and-te');
      break;
    }
    case 'chunked':
      fields.push(`${teName()}: ${dev(0.1) ? r.pick(['Chunked', 'CHUNKED', ' chunked ', 'chunked ']) : 'chunked'}`);
      body = chunkedBody(r, payload, tags);
      tags.push('chunked');
      break;
    case 'te-odd': {
      const te = r.pick([
        'chunked, chunked',
        'gzip, chunked',
        'chunked, gzip',
        'identity',
        'gzip',
        'x',
        '',
        'chunked;q=1',
        'chunked,',
        ',chunked',
        'chunked , identity',
      ]);
      fields.push(`${teName()}: ${te}`);
      body = te.trim().endsWith('chunked') ? chunkedBody(r, payload, tags) : payload;
      tags.push('te-odd');
      break;
    }
    case 'two-te':
      fields.push(`${teName()}: chunked`, `${teName()}: ${r.pick(['chunked', 'gzip', 'identity'])}`);
      body = chunkedBody(r, payload, tags);
      tags.push('te-duplicate');
      break;
    case 'short-body':
      // Announces more than it sends: both parsers wait (the fuzzer sees nothing, or what came before).
      missing = r.range(1, 20);
      fields.push(`${clName()}: ${n + missing}`);
      body = payload;
      tags.push('body-short');
      break;
    case 'long-body':
      // Sends more than it announces: the rest is read as the next request.
      extra = r.pick(['x', 'junk\r\n\r\n', 'GET /svc/smuggled HTTP/1.1\r\nHost: example.test\r\n\r\n', '\r\n']);
      fields.push(`${clName()}: ${n}`);
      body = payload + extra;
      tags.push('body-long');
      break;
    case 'body-no-length':
      extra = r.pick(['x', 'abc\r\n\r\n', 'GET /svc/smuggled HTTP/1.1\r\nHost: example.test\r\n\r\n']);
      body = extra;
      tags.push('body-unframed');
      break;
  }

  // Head size around the limit: pad with one field so the head ends within a few bytes of it.
  if (dev(0.04) || (odd > 0 && r.chance(0.005))) {
    const headSoFar = line.length + 2 + fields.reduce((s, f) => s + f.length + 2, 0) + 2;
    const want = limits.maxHeaderBytes + r.range(-6, 6) - headSoFar - 'X-Pad: \r\n'.length;
    if (want > 0) {
      fields.splice(r.int(fields.length + 1), 0, `X-Pad: ${'p'.repeat(want)}`);
      tags.push('head-at-limit');
    }
  } else if (dev(0.01)) {
    fields.push(`X-Big: ${'y'.repeat(r.range(limits.maxHeaderBytes, limits.maxHeaderBytes * 3))}`);
    tags.push('head-over-limit');
  }

  const head = `${line}${eol()}${fields.map((f) => f + eol()).join('')}`;
  // The blank line: odd line ends sometimes here too; a truncated head rarely.
  let blank = '\r\n';
  if (eolOdd && r.chance(0.5)) blank = r.pick(['\n', '\r\n', '\r']);
  if (dev(0.005)) {
    blank = '';
    tags.push('head-truncated');
  }
  if (tags.length === 0) tags.push('plain');
  const text = head + blank + body;
  return { text, framed: text.length - extra.length + missing, smuggled: extra.startsWith('GET '), method, tags };
}

/** Generates case `index` of the run seeded `runSeed`. */
export function generateCase(runSeed: number, index: number, limits: Limits = LIMITS): FuzzCase {
  const seed = caseSeed(runSeed, index);
  const r = new Rng(seed);
  const count = r.weighted<number>([
    [45, 1],
    [20, 2],
    [15, 3],
    [8, 4],
    [6, 5],
    [3, r.range(6, 10)],
  ]);
  // About a third of the cases have no deviation at all, so the lane takes plenty; in the rest
  // each request may get some.
  const mode = r.weighted<number>([
    [30, 0],
    [40, 1],
    [20, 2],
    [10, 4],
  ]);
  const requests: string[] = [];
  const heads: boolean[] = [];
  const starts: number[] = [];
  const tags: string[] = [];
  let bytes = '';
  if (mode > 0 && r.chance(0.02)) {
    bytes += r.pick(['\r\n', '\r\n\r\n', '\n', ' ']);
    tags.push('leading-junk');
  }
  starts.push(0);
  for (let i = 0; i < count; i++) {
    const odd = mode === 0 ? 0 : r.chance(0.6) ? mode : 0;
    const g = request(r, limits, odd);
    requests.push(g.text);
    heads.push(g.method === 'HEAD');
    tags.push(...g.tags);
    starts.push(Math.max(starts[starts.length - 1]!, bytes.length + g.framed));
    if (g.smuggled) {
      // Its own part: the parsers answer it as one more request.
      heads.push(false);
      starts.push(Math.max(starts[starts.length - 1]!, bytes.length + g.text.length));
    }
    bytes += g.text;
    if (mode > 0 && i < count - 1 && r.chance(0.03)) {
      bytes += r.pick(['\r\n', '\r\n\r\n', 'junk\r\n', '\u0000']);
      tags.push('between-junk');
    }
  }
  if (count > 1) tags.push('pipelined');
  if (mode > 0 && r.chance(0.02)) {
    bytes += r.pick(['\r\n', 'GARBAGE', 'G', 'GET /svc/partial HTTP/1.1\r\nHost: example.test\r\n']);
    tags.push('trailing-junk');
  }

  // Cut into writes: one write, a few, or many small ones.
  const cuts = new Set<number>();
  const split = r.weighted<string>([
    [45, 'one'],
    [35, 'few'],
    [12, 'many'],
    [8, 'head-edge'],
  ]);
  if (split === 'few') for (let k = r.range(1, 3); k > 0; k--) cuts.add(1 + r.int(Math.max(1, bytes.length - 1)));
  if (split === 'many') for (let k = r.range(5, 20); k > 0; k--) cuts.add(1 + r.int(Math.max(1, bytes.length - 1)));
  if (split === 'head-edge') {
    // Right around a blank line: the lane then has the head but not (all of) the body, or not the whole head.
    const at = bytes.indexOf('\r\n\r\n');
    if (at > 0) cuts.add(Math.max(1, Math.min(bytes.length - 1, at + r.range(0, 6))));
  }
  const points = [...cuts].filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b);
  const chunks: string[] = [];
  let prev = 0;
  for (const p of points) {
    chunks.push(bytes.slice(prev, p));
    prev = p;
  }
  chunks.push(bytes.slice(prev));
  // Pauses: 0 (coalesced, usually) or a few ms (separate reads); the total stays small.
  const delays = chunks.slice(1).map(() => (r.chance(0.4) ? 0 : r.range(1, chunks.length > 8 ? 3 : 12)));
  if (split !== 'one') tags.push(`split-${split}`);
  return { index, seed, requests, bytes, chunks, delays, expected: heads.length, heads, starts, tags: [...new Set(tags)] };
}
