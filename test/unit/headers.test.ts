import test from 'ava';
import {
  bytesDecimal,
  clientResponseHeaders,
  connectionTokens,
  DROP,
  DROP_NAMING,
  RELAY,
  RELAY_CONTENT_LENGTH,
  RELAY_DATE,
  requestIdOf,
  responseField,
  upstreamRequestHeaders,
  type ForwardInfo,
} from '../../proxy/forward/headers.js';

const info: ForwardInfo = { clientIp: '203.0.113.7', proto: 'http', host: 'proxy.example', requestId: 'rid-1' };
const RID = ['x-request-id', 'rid-1'];

/** All values of a header (case-insensitive name) in a flat raw array. */
function all(raw: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) values.push(raw[i + 1]!);
  return values;
}

function names(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) out.push(raw[i]!.toLowerCase());
  return out;
}

test('request: hop-by-hop fields, host, expect and client X-Forwarded-Proto/-Host are removed', (t) => {
  const raw = [
    'Host',
    'proxy.example',
    'Connection',
    'keep-alive',
    'Keep-Alive',
    'timeout=5',
    'Proxy-Connection',
    'keep-alive',
    'Transfer-Encoding',
    'chunked',
    'TE',
    'trailers',
    'Trailer',
    'X-Checksum',
    'Upgrade',
    'websocket',
    'Expect',
    '100-continue',
    'X-Forwarded-Proto',
    'https',
    'X-Forwarded-Host',
    'evil.example',
    'Accept',
    'application/json',
  ];
  const out = upstreamRequestHeaders(raw, info);
  for (const dropped of [
    'connection',
    'keep-alive',
    'proxy-connection',
    'transfer-encoding',
    'te',
    'trailer',
    'upgrade',
    'host',
    'expect',
  ]) {
    t.deepEqual(all(out, dropped), [], dropped);
  }
  t.deepEqual(all(out, 'x-forwarded-proto'), ['http']);
  t.deepEqual(all(out, 'x-forwarded-host'), ['proxy.example']);
  t.deepEqual(all(out, 'accept'), ['application/json']);
});

test('request: end-to-end fields pass through with their original name case, order and duplicates', (t) => {
  const raw = ['Accept', 'text/html', 'X-Custom', 'a', 'Cookie', 'a=1', 'x-custom', 'b', 'Content-Length', '3'];
  const out = upstreamRequestHeaders(raw, info);
  t.deepEqual(out.slice(0, raw.length), raw);
});

test('request: every field named in Connection is removed, case-insensitively', (t) => {
  const raw = ['Connection', 'close, X-Foo', 'x-foo', '1', 'X-Bar', '2', 'connection', ' X-BAR ,,', 'X-Keep', '3'];
  const out = upstreamRequestHeaders(raw, info);
  t.deepEqual(all(out, 'x-foo'), []);
  t.deepEqual(all(out, 'x-bar'), []);
  t.deepEqual(all(out, 'x-keep'), ['3']);
  t.deepEqual(all(out, 'connection'), []);
});

test('request: X-Forwarded-For is appended to the existing chain; several fields are joined', (t) => {
  t.deepEqual(all(upstreamRequestHeaders(['X-Forwarded-For', '198.51.100.1'], info), 'x-forwarded-for'), ['198.51.100.1, 203.0.113.7']);
  const several = ['X-Forwarded-For', '198.51.100.1, 198.51.100.2', 'x-forwarded-for', '198.51.100.3'];
  t.deepEqual(all(upstreamRequestHeaders(several, info), 'x-forwarded-for'), ['198.51.100.1, 198.51.100.2, 198.51.100.3, 203.0.113.7']);
});

test('request: without a client X-Forwarded-For, ours is just the client address', (t) => {
  t.deepEqual(all(upstreamRequestHeaders([], info), 'x-forwarded-for'), ['203.0.113.7']);
});

test('request: "Connection: X-Forwarded-For" strips the client chain but ours still arrives', (t) => {
  const raw = ['Connection', 'X-Forwarded-For', 'X-Forwarded-For', '10.0.0.1'];
  const out = upstreamRequestHeaders(raw, info);
  t.deepEqual(all(out, 'x-forwarded-for'), ['203.0.113.7']);
});

test('request: "Connection: Via" or naming X-Forwarded-Proto/-Host cannot suppress the ones we set', (t) => {
  const raw = ['Connection', 'via, x-forwarded-proto, x-forwarded-host', 'Via', '1.0 evil'];
  const out = upstreamRequestHeaders(raw, { clientIp: '::1', proto: 'https', host: 'h', requestId: 'r' });
  t.deepEqual(all(out, 'via'), ['1.1 puttu']);
  t.deepEqual(all(out, 'x-forwarded-proto'), ['https']);
  t.deepEqual(all(out, 'x-forwarded-host'), ['h']);
});

test('request: X-Forwarded-Proto and -Host are set by us, once each', (t) => {
  const out = upstreamRequestHeaders(['x-forwarded-proto', 'https', 'X-FORWARDED-HOST', 'a', 'x-forwarded-host', 'b'], {
    ...info,
    proto: 'https',
    host: 'shop.example:8080',
  });
  t.deepEqual(all(out, 'x-forwarded-proto'), ['https']);
  t.deepEqual(all(out, 'x-forwarded-host'), ['shop.example:8080']);
});

test('request: without a Host, no X-Forwarded-Host is sent (not even the client one)', (t) => {
  const out = upstreamRequestHeaders(['X-Forwarded-Host', 'evil.example'], { ...info, host: undefined });
  t.deepEqual(all(out, 'x-forwarded-host'), []);
});

test('request: Via gets "1.1 puttu", appended to an existing Via chain', (t) => {
  t.deepEqual(all(upstreamRequestHeaders([], info), 'via'), ['1.1 puttu']);
  t.deepEqual(all(upstreamRequestHeaders(['Via', '1.1 edge', 'via', '1.0 cache'], info), 'via'), ['1.1 edge, 1.0 cache, 1.1 puttu']);
});

test('request: the output is a well-formed flat array and the input is left untouched', (t) => {
  const raw = ['Host', 'h', 'Connection', 'x-a', 'X-A', '1', 'Accept', '*/*'];
  const copy = [...raw];
  const out = upstreamRequestHeaders(raw, info);
  t.deepEqual(raw, copy);
  t.is(out.length % 2, 0);
  t.deepEqual(names(out), ['accept', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'via', 'x-request-id']);
});

const buffers = (raw: string[]) => raw.map((s) => Buffer.from(s, 'latin1'));

test('response: hop-by-hop fields and fields named in Connection are dropped', (t) => {
  const raw = buffers([
    'Connection',
    'keep-alive, X-Internal',
    'Keep-Alive',
    'timeout=5',
    'Transfer-Encoding',
    'chunked',
    'Proxy-Connection',
    'close',
    'Trailer',
    'X-Sum',
    'Upgrade',
    'h2c',
    'TE',
    'trailers',
    'x-internal',
    'secret',
    'Content-Type',
    'text/plain',
  ]);
  t.deepEqual(clientResponseHeaders(raw, 'rid-1'), ['Content-Type', 'text/plain', ...RID]);
});

test('response: everything else is kept in order, including duplicate Set-Cookie', (t) => {
  const raw = ['Set-Cookie', 'a=1; Path=/', 'Content-Length', '5', 'set-cookie', 'b=2', 'Via', '1.1 upstream', 'Cache-Control', 'no-store'];
  t.deepEqual(clientResponseHeaders(buffers(raw), 'rid-1'), [...raw, ...RID]);
});

test('response: the declared Content-Length is noted when it is a plain decimal', (t) => {
  const facts = { contentLength: 7 };
  clientResponseHeaders(buffers(['Content-Type', 'text/plain', 'content-length', '35']), 'rid-1', facts);
  t.is(facts.contentLength, 35);
  clientResponseHeaders(buffers(['Content-Type', 'text/plain']), 'rid-1', facts);
  t.is(facts.contentLength, -1, 'absent');
  for (const odd of ['35, 35', '+35', '0x23', '', '1234567890123456']) {
    clientResponseHeaders(buffers(['Content-Length', odd]), 'rid-1', facts);
    t.is(facts.contentLength, -1, odd);
  }
});

test('response: header values are read as latin1 (byte-preserving)', (t) => {
  const out = clientResponseHeaders([Buffer.from('X-Name'), Buffer.from([0x63, 0x61, 0x66, 0xe9])], 'rid-1');
  t.deepEqual(out, ['X-Name', 'caf\u00e9', ...RID]);
  t.deepEqual(Buffer.from(out[1]!, 'latin1'), Buffer.from([0x63, 0x61, 0x66, 0xe9]));
});

test('connectionTokens lower-cases and trims, ignores close/keep-alive/empty, and is undefined without tokens', (t) => {
  t.is(connectionTokens([]), undefined);
  t.is(connectionTokens(['Connection', 'close']), undefined);
  t.is(connectionTokens(['Connection', ' Keep-Alive , ,']), undefined);
  t.deepEqual(connectionTokens(['CONNECTION', ' X-A ,x-b', 'Accept', 'x-c', 'connection', 'Upgrade']), new Set(['x-a', 'x-b', 'upgrade']));
});

test('request id: a sane client X-Request-Id is kept, anything else replaced; one id goes upstream', (t) => {
  const gen = () => 'generated';
  t.is(requestIdOf('abc-123', gen), 'abc-123');
  t.is(requestIdOf(undefined, gen), 'generated');
  t.is(requestIdOf('', gen), 'generated');
  t.is(requestIdOf('has space', gen), 'generated');
  t.is(requestIdOf('x'.repeat(129), gen), 'generated');
  t.is(requestIdOf(['a', 'b'], gen), 'generated');
  const out = upstreamRequestHeaders(['X-Request-Id', 'client-id', 'traceparent', '00-abc-def-01', 'tracestate', 'k=v'], info);
  t.deepEqual(all(out, 'x-request-id'), ['rid-1'], 'exactly one, ours');
  t.deepEqual(all(out, 'traceparent'), ['00-abc-def-01'], 'trace context untouched');
  t.deepEqual(all(out, 'tracestate'), ['k=v']);
});

test('response: an upstream X-Request-Id is replaced by ours', (t) => {
  t.deepEqual(clientResponseHeaders(buffers(['X-Request-Id', 'theirs', 'A', '1']), 'rid-1'), ['A', '1', ...RID]);
});

test('responseField: the one response-header policy both writers apply, on raw bytes in any case', (t) => {
  const b = (s: string) => Buffer.from(s, 'latin1');
  for (const name of ['Connection', 'keep-alive', 'Proxy-Connection', 'Transfer-Encoding', 'TE', 'Trailer', 'Upgrade', 'X-Request-Id']) {
    t.is(responseField(b(name), b('close')), DROP, name);
  }
  t.is(responseField(b('connection'), b('Keep-Alive')), DROP);
  t.is(responseField(b('Connection'), b('x-secret')), DROP_NAMING, 'a Connection naming fields: they go too');
  t.is(responseField(b('Content-Length'), b('12')), RELAY_CONTENT_LENGTH);
  t.is(responseField(b('DATE'), b('Sun, 06 Dec 2026 10:00:00 GMT')), RELAY_DATE);
  t.is(responseField(b('content-type'), b('text/plain')), RELAY);
  t.is(responseField(b('x-request'), b('1')), RELAY, 'a prefix of a dropped name is relayed');
  t.is(bytesDecimal(b('0012')), 12);
  t.is(bytesDecimal(b('1e3')), -1);
});
