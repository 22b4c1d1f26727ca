import test from 'ava';
import {
  decodeInstance,
  encodeRegistration,
  MAX_ZNODE_DATA_BYTES,
  normalizeApi,
  registrationIdOf,
  validateMetadata,
  validateWeight,
  type DecodeResult,
  type Instance,
} from '../../proxy/registry/instance.js';

const decode = (data: string | Buffer): DecodeResult =>
  decodeInstance('warehouse', 'warehouse0000000007', typeof data === 'string' ? Buffer.from(data) : data);

function ok(t: { fail(msg: string): void }, result: DecodeResult): Instance {
  if (!result.ok) {
    t.fail(`expected a valid instance, got: ${result.reason}`);
    throw new Error(result.reason);
  }
  return result.instance;
}

function reason(result: DecodeResult): string {
  return result.ok ? `<accepted ${result.instance.url}>` : result.reason;
}

test('our JSON decodes to a frozen instance', (t) => {
  const i = ok(
    t,
    decode(JSON.stringify({ protocol: 'https', host: '10.0.0.5', port: 10001, api: '/warehouse/v1', id: 'x', registrationTimeUTC: 1 })),
  );
  t.like(i, {
    id: 'warehouse0000000007',
    service: 'warehouse',
    format: 'puttu',
    protocol: 'https',
    host: '10.0.0.5',
    port: 10001,
    api: '/warehouse/v1',
    origin: 'https://10.0.0.5:10001',
    url: 'https://10.0.0.5:10001/warehouse/v1',
  });
  t.true(Object.isFrozen(i));
});

test('our JSON: protocol defaults to http, api to "", a DNS name is a host, a trailing slash is dropped', (t) => {
  t.like(ok(t, decode('{"host":"billing.internal","port":80}')), { protocol: 'http', api: '', url: 'http://billing.internal:80' });
  t.is(ok(t, decode('{"host":"h","port":1,"api":"/a/b/"}')).api, '/a/b');
  t.is(ok(t, decode('{"host":"h","port":"8080"}')).port, 8080, 'a numeric string port is accepted');
  t.is(ok(t, decode('  {"host":"h","port":8080}\n')).port, 8080, 'surrounding whitespace is ignored');
});

test('JSON with `ip` instead of `host` (older writers)', (t) => {
  t.like(ok(t, decode('{"ip":"10.0.0.9","port":9000,"api":"/billing"}')), {
    format: 'ip',
    host: '10.0.0.9',
    url: 'http://10.0.0.9:9000/billing',
  });
});

test('legacy URL string', (t) => {
  t.like(ok(t, decode('https://10.0.0.5:10001/warehouse/v1')), {
    format: 'url',
    protocol: 'https',
    host: '10.0.0.5',
    port: 10001,
    api: '/warehouse/v1',
    url: 'https://10.0.0.5:10001/warehouse/v1',
  });
  t.like(ok(t, decode('http://10.0.0.5')), { port: 80, api: '' }, 'default http port');
  t.like(ok(t, decode('https://10.0.0.5/')), { port: 443, api: '' }, 'default https port');
});

test('JSON-quoted URL string', (t) => {
  t.like(ok(t, decode('"http://10.0.0.5:8080/a/b"')), { format: 'url', host: '10.0.0.5', port: 8080, api: '/a/b' });
});

test('IPv6 hosts are bracketed in origin and url, bare in host', (t) => {
  t.like(ok(t, decode('{"host":"::1","port":8080,"api":"/x"}')), { host: '::1', origin: 'http://[::1]:8080', url: 'http://[::1]:8080/x' });
  t.like(ok(t, decode('http://[fe80::1]:8080/x')), { host: 'fe80::1', origin: 'http://[fe80::1]:8080' });
});

test('a percent-encoded legacy URL path is kept as written, not decoded', (t) => {
  // Regression: the URL form used to decode its path, so '%20' became a space (rejected) and
  // '%2F' a real slash (a different path) while the JSON form keeps the same bytes verbatim.
  t.is(ok(t, decode('http://10.0.0.5:8080/a%20b/c')).api, '/a%20b/c');
  t.is(ok(t, decode('{"host":"10.0.0.5","port":8080,"api":"/a%20b/c"}')).api, '/a%20b/c');
  t.false(decode('http://10.0.0.5:8080/a%2Fb').ok, 'an encoded slash inside a segment');
});

const malformed: Array<[name: string, data: string | Buffer, reason: RegExp]> = [
  ['empty', '', /empty/],
  ['not JSON', '{"host": "10.0.0.5", port: }', /not valid JSON/],
  ['a quoted string that is not JSON', '"http://x', /not valid JSON/],
  ['neither JSON nor a URL', 'garbage', /neither JSON nor a URL/],
  ['a JSON array', '[1,2]', /neither JSON nor a URL/],
  ['missing port', '{"host":"10.0.0.5"}', /port .*nothing/],
  ['port 0', '{"host":"10.0.0.5","port":0}', /port must be an integer from 1 to 65535, got 0/],
  ['port 65536', '{"host":"10.0.0.5","port":65536}', /port .*65536/],
  ['port "abc"', '{"host":"10.0.0.5","port":"abc"}', /port .*"abc"/],
  ['fractional port', '{"host":"10.0.0.5","port":80.5}', /port/],
  [
    'unknown protocol ftp (JSON)',
    '{"protocol":"ftp","host":"10.0.0.5","port":21}',
    /protocol must be "http", "https", "h2c" or "h2", got "ftp"/,
  ],
  ['unknown protocol ftp (URL)', 'ftp://10.0.0.5:21/files', /protocol .*"ftp"/],
  ['host of the wrong type', '{"host":5,"port":80}', /host .*got 5/],
  ['missing host and ip', '{"port":80}', /host .*nothing/],
  ['a host that is no host name', '{"host":"a b","port":80}', /host/],
  ['port of the wrong type', '{"host":"h","port":true}', /port .*true/],
  ['api of the wrong type', '{"host":"h","port":80,"api":7}', /api .*7/],
  ['protocol of the wrong type', '{"host":"h","port":80,"protocol":1}', /protocol/],
  ['relative api', '{"host":"h","port":80,"api":"warehouse"}', /api/],
  ['api with ..', '{"host":"h","port":80,"api":"/a/../b"}', /api .*\.\./],
  ['api with %2e%2e', '{"host":"h","port":80,"api":"/a/%2e%2e/b"}', /api .*%2e%2e/],
  ['api with ?query', '{"host":"h","port":80,"api":"/a?x=1"}', /api .*\?x=1/],
  ['api with a backslash', '{"host":"h","port":80,"api":"/a\\\\b"}', /api/],
  ['URL with a query', 'http://10.0.0.5:80/a?x=1', /query or fragment/],
  ['URL with credentials', 'http://user:pw@10.0.0.5:80/a', /credentials/],
  ['oversized', Buffer.alloc(MAX_ZNODE_DATA_BYTES + 1, 0x20), /over 16384/],
];

for (const [name, data, expected] of malformed) {
  test(`malformed: ${name} is rejected with a reason`, (t) => {
    const result = decode(data);
    t.false(result.ok);
    t.regex(reason(result), expected);
  });
}

test('an oversized but otherwise valid JSON is still rejected (size is checked first)', (t) => {
  const padded = JSON.stringify({ host: 'h', port: 80, pad: 'x'.repeat(MAX_ZNODE_DATA_BYTES) });
  t.regex(reason(decode(padded)), /bytes, over/);
});

test('normalizeApi', (t) => {
  t.is(normalizeApi(''), '');
  t.is(normalizeApi('/'), '');
  t.is(normalizeApi('/a/b/'), '/a/b');
  t.is(normalizeApi('//a//b'), '/a/b');
  t.is(normalizeApi('/a.b/c..d/~e'), '/a.b/c..d/~e', 'dots inside a segment are fine');
  t.is(normalizeApi('/a%20b'), '/a%20b');
  for (const bad of [
    'a',
    'a/b',
    '/a/../b',
    '/a/./b',
    '/..',
    '/a/%2e%2e',
    '/a/%2E%2e/b',
    '/a/%2e',
    '/a%2Fb',
    '/a%5Cb',
    '/a?x',
    '/a#f',
    '/a\\b',
    '/a b',
    '/a\tb',
    '/a\u0000',
    '/' + 'x'.repeat(1024),
  ]) {
    t.is(normalizeApi(bad), undefined, JSON.stringify(bad));
  }
  for (const notString of [undefined, null, 7, ['/a'], { api: '/a' }]) t.is(normalizeApi(notString), undefined);
});

test('encodeRegistration writes the canonical superset, every field in a fixed order, and it decodes back', (t) => {
  const record = {
    protocol: 'https' as const,
    host: '10.0.0.5',
    port: 10001,
    api: '/warehouse/v1',
    id: 'a2c4',
    registrationTimeUTC: 1700000000000,
    status: 'UP' as const,
    weight: 7,
    metadata: { zone: 'eu-1a' },
  };
  const data = encodeRegistration(record);
  t.is(
    data.toString(),
    '{"protocol":"https","host":"10.0.0.5","port":10001,"api":"/warehouse/v1","id":"a2c4","registrationTimeUTC":1700000000000,"status":"UP","weight":7,"metadata":{"zone":"eu-1a"}}',
  );
  t.is(registrationIdOf(data), 'a2c4');
  const back = decode(data);
  t.true(back.ok && back.inactive === undefined);
  t.like(ok(t, back), {
    format: 'puttu',
    url: 'https://10.0.0.5:10001/warehouse/v1',
    weight: 7,
    status: 'UP',
    metadata: { zone: 'eu-1a' },
  });
  const draining = decode(encodeRegistration({ ...record, status: 'DRAINING' }));
  t.true(draining.ok, 'a draining registration is valid');
  t.is(draining.ok ? draining.inactive : undefined, 'status DRAINING', 'but gets no traffic');
});

test('registration weight: an integer from 1 to 1000, default 1', (t) => {
  t.is(validateWeight(undefined), 1);
  t.is(validateWeight(1), 1);
  t.is(validateWeight(1000), 1000);
  for (const bad of [0, -1, 1001, 1.5, NaN, '5', null, true])
    t.regex(String(validateWeight(bad)), /^weight must be an integer from 1 to 1000/, String(bad));
});

test('registration metadata: an object of strings, at most 4 KiB as JSON, copied and frozen', (t) => {
  t.deepEqual(validateMetadata(undefined), {});
  const source = { zone: 'eu-1a', 'build.sha': 'abc' };
  const checked = validateMetadata(source);
  t.deepEqual(checked, source);
  t.not(checked, source, 'a copy');
  t.true(Object.isFrozen(checked));
  t.deepEqual(validateMetadata({ big: 'x'.repeat(4096 - '{"big":""}'.length) }), { big: 'x'.repeat(4086) }, 'exactly 4 KiB is fine');
  t.regex(String(validateMetadata({ big: 'x'.repeat(4087) })), /^metadata is 4097 bytes as JSON, over 4096$/);
  t.regex(String(validateMetadata({ n: 1 })), /^metadata\["n"\] must be a string, got 1$/);
  for (const bad of [null, 'a=b', ['a'], new Map([['a', 'b']]), 5])
    t.regex(String(validateMetadata(bad)), /^metadata must be an object of strings/, String(bad));
});
