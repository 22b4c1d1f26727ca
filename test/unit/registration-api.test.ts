/** The registration API's pure parts: reading a PUT body, the lease tracker (fake clock), the token. */
import test from 'ava';
import { encodeRecord, instanceJson, parseTemplate, readInstanceBody } from '../../proxy/registration-api/instance-body.js';
import { TtlTracker } from '../../proxy/registration-api/ttl.js';
import { registrationToken } from '../../proxy/registration-api/index.js';
import { decodeInstance } from '../../proxy/registry/instance.js';
import { fakeClock } from '../helpers/fakes.js';
import { loadConfig } from '../../proxy/config/load.js';

const noFiles = (file: string): string => {
  throw new Error(`no file ${file}`);
};

const NOW = 1_800_000_000_000;
const base = { name: 'svc', id: 'i-1', address: '127.0.0.1', port: 8080 };
const read = (body: unknown) => readInstanceBody(JSON.stringify(body), 'svc', 'i-1', NOW);

test('a minimal body is completed as Curator would store it, and puttu decodes the znode', (t) => {
  const r = read(base);
  if (!r.ok) return t.fail(r.reason);
  t.deepEqual(r.record, {
    name: 'svc',
    id: 'i-1',
    address: '127.0.0.1',
    port: 8080,
    sslPort: null,
    payload: null,
    registrationTimeUTC: NOW,
    serviceType: 'STATIC',
    uriSpec: null,
  });
  const decoded = decodeInstance('svc', 'i-1', encodeRecord(r.record));
  t.true(decoded.ok);
  if (decoded.ok) t.like(decoded.instance, { format: 'curator', host: '127.0.0.1', port: 8080, protocol: 'http' });
});

test('sslPort is what puttu dials; enabled false is kept and makes the instance inactive', (t) => {
  const r = read({ ...base, sslPort: 8443, enabled: false });
  if (!r.ok) return t.fail(r.reason);
  t.is(r.record.enabled, false);
  const decoded = decodeInstance('svc', 'i-1', encodeRecord(r.record));
  t.true(decoded.ok && decoded.instance.protocol === 'https' && decoded.instance.port === 8443 && decoded.inactive === 'enabled: false');
});

test('uriSpec: a template becomes Jackson parts; parts are kept; the api path is what puttu routes', (t) => {
  t.deepEqual(parseTemplate('{scheme}://{address}:{port}/v1'), [
    { value: 'scheme', variable: true },
    { value: '://', variable: false },
    { value: 'address', variable: true },
    { value: ':', variable: false },
    { value: 'port', variable: true },
    { value: '/v1', variable: false },
  ]);
  const r = read({ ...base, uriSpec: '{scheme}://{address}:{port}/v1' });
  if (!r.ok) return t.fail(r.reason);
  const decoded = decodeInstance('svc', 'i-1', encodeRecord(r.record));
  t.true(decoded.ok && decoded.instance.api === '/v1');
  const parts = read({ ...base, uriSpec: r.record.uriSpec });
  t.true(parts.ok && JSON.stringify(parts.record.uriSpec) === JSON.stringify(r.record.uriSpec));
});

test('every refusal names the field', (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ ...base, name: 'x' }, /^name must be the path's service "svc", got "x"$/],
    [{ ...base, id: 1 }, /^id must be the path's instance id "i-1", got 1$/],
    [{ ...base, address: '' }, /^address must be/],
    [{ ...base, address: 'bad host!' }, /^address must be an IP address or a DNS name, got "bad host!"$/],
    [{ ...base, port: 0 }, /^port must be an integer from 1 to 65535 or null, got 0$/],
    [{ ...base, port: 1.5 }, /^port must be/],
    [{ ...base, port: undefined }, /^port or sslPort must be set/],
    [{ ...base, payload: [] }, /^payload must be/],
    [{ ...base, payload: { '@class': 5 } }, /^payload.@class must be a Java class name, got 5$/],
    [{ ...base, registrationTimeUTC: -1 }, /^registrationTimeUTC must be/],
    [{ ...base, serviceType: 'DYNAMIC_SEQUENTIAL' }, /^serviceType must be STATIC or DYNAMIC/],
    [{ ...base, uriSpec: 42 }, /^uriSpec must be a template/],
    [{ ...base, uriSpec: '{scheme}://{address}:{port}/a/../b' }, /is not a usable base path/],
    [{ ...base, enabled: 0 }, /^enabled must be true or false, got 0$/],
    [null, /^body must be a JSON object \(a Curator ServiceInstance\), got null$/],
  ];
  for (const [body, reason] of cases) {
    const r = read(body);
    t.false(r.ok, JSON.stringify(body));
    if (!r.ok) t.regex(r.reason, reason);
  }
  const huge = read({ ...base, uriSpec: `${'{scheme}'.repeat(1_500)}://{address}:{port}` });
  t.true(!huge.ok && /^the instance is \d+ bytes as Curator JSON, over the 16384 a znode may hold$/.test(huge.reason));
  const notJson = readInstanceBody('{', 'svc', 'i-1', NOW);
  t.true(!notJson.ok && /^body is not valid JSON/.test(notJson.reason));
});

test("GET's shape: ports only when set, payload without Jackson's @class; other formats are not instances", (t) => {
  const java = Buffer.from(
    JSON.stringify({
      name: 's',
      id: 'j',
      address: '10.0.0.1',
      port: 1,
      sslPort: null,
      payload: { '@class': 'java.util.LinkedHashMap', a: 'b' },
      registrationTimeUTC: 5,
      serviceType: 'DYNAMIC',
      uriSpec: null,
    }),
  );
  t.deepEqual(instanceJson(java), {
    name: 's',
    id: 'j',
    address: '10.0.0.1',
    port: 1,
    registrationTimeUTC: 5,
    serviceType: 'DYNAMIC',
    payload: { a: 'b' },
    uriSpec: null,
    enabled: true,
  });
  t.is(instanceJson(Buffer.from(JSON.stringify({ protocol: 'http', host: '10.0.0.1', port: 1, api: '' }))), undefined);
  t.is(instanceJson(Buffer.from('http://10.0.0.1:80/')), undefined);
});

test('a lease lapses only after ttlMs without renewal, oldest first', (t) => {
  const clock = fakeClock();
  const ttl = new TtlTracker<string>(1_000, clock);
  ttl.renew('a');
  clock.advance(400);
  ttl.renew('b');
  clock.advance(600);
  t.deepEqual(ttl.takeLapsed(), [], 'exactly ttlMs is not lapsed yet');
  t.is(ttl.remainingMs('a'), 0);
  t.is(ttl.remainingMs('b'), 400);
  clock.advance(1);
  t.deepEqual(ttl.takeLapsed(), ['a']);
  t.false(ttl.has('a'));
  ttl.renew('b'); // renewal moves b's lease on
  clock.advance(999);
  t.deepEqual(ttl.takeLapsed(), []);
  ttl.renew('c');
  clock.advance(2);
  t.deepEqual(ttl.takeLapsed(), ['b']);
  ttl.forget('c');
  clock.advance(10_000);
  t.deepEqual(ttl.takeLapsed(), []);
  t.is(ttl.size, 0);
  t.throws(() => new TtlTracker(0, clock), { message: /ttlMs must be a positive integer/ });
});

test('the token: one of token or file, long enough; errors name the key', (t) => {
  const long = 'abcdefghijklmnopqrstuvwxyz';
  t.is(registrationToken({ registrationToken: long, registrationTokenFile: '' }), long);
  t.is(
    registrationToken({ registrationToken: '', registrationTokenFile: '/tok' }, () => `${long}\n`),
    long,
  );
  t.throws(() => registrationToken({ registrationToken: '', registrationTokenFile: '' }), {
    message: /registrationToken .*is required with registrationPort/,
  });
  t.throws(() => registrationToken({ registrationToken: long, registrationTokenFile: '/tok' }), { message: /both set/ });
  t.throws(() => registrationToken({ registrationToken: 'short', registrationTokenFile: '' }), { message: /at least 16 characters/ });
  t.throws(
    () =>
      registrationToken({ registrationToken: '', registrationTokenFile: '/nope' }, () => {
        throw new Error('ENOENT: no such file');
      }),
    { message: /registrationTokenFile .*cannot be read: ENOENT/ },
  );
});

test('the configuration refuses a registration port without a token before anything starts', (t) => {
  t.throws(() => loadConfig(['--registration-port', '0'], {}, noFiles), {
    message: /registrationToken .*or registrationTokenFile is required/,
  });
  t.is(loadConfig(['--registration-port', '0'], { PUTTU_REGISTRATION_TOKEN_FILE: '/run/secrets/t' }, noFiles).config.registrationPort, 0);
  t.is(loadConfig([], {}, noFiles).config.registrationPort, -1, 'off by default');
});
