/**
 * Every registry format's decoder, from the shared fixtures (test/fixtures/registry) plus the
 * cases a fixture file cannot express well: detection order, Curator's ports and uriSpec forms.
 */
import test from 'ava';
import { decodeInstance, type DecodeResult, type Instance } from '../../proxy/registry/instance.js';
import { detectJsonFormat } from '../../proxy/registry/formats/detect.js';
import { allFixtures, loadFixtures, znodeData } from '../fixtures/registry/fixtures.js';

const decode = (data: string | object, id = 'n1', service = 'orders'): DecodeResult =>
  decodeInstance(service, id, Buffer.from(typeof data === 'string' ? data : JSON.stringify(data)));

function ok(t: { fail(msg: string): void }, result: DecodeResult): Instance {
  if (!result.ok) {
    t.fail(`expected a valid instance, got: ${result.reason}`);
    throw new Error(result.reason);
  }
  return result.instance;
}

const describe = (r: DecodeResult) =>
  r.ok ? `accepted ${r.instance.url}${r.inactive ? ` (inactive: ${r.inactive})` : ''}` : `rejected: ${r.reason}`;

const files = loadFixtures();

test('every format has fixtures: routable, malformed, and inactive where the format has a state', (t) => {
  for (const f of files) {
    t.true(f.routable.length >= 2, `${f.format}: routable`);
    t.true(f.malformed.length >= 2, `${f.format}: malformed`);
    if (f.format !== 'url') t.true(f.inactive.length >= 1, `${f.format}: inactive`);
  }
});

for (const fixture of allFixtures(files)) {
  const title = `${fixture.format} ${fixture.group}: ${fixture.name}`;
  test(title, (t) => {
    const result = decodeInstance('orders', 'n1', znodeData(fixture, 8080));
    if (fixture.group === 'malformed') {
      t.false(result.ok, describe(result));
      if (!result.ok) t.regex(result.reason, new RegExp(fixture.reason!));
      return;
    }
    const instance = ok(t, result);
    t.is(instance.format, fixture.format);
    t.like(instance, { id: 'n1', service: 'orders', host: '127.0.0.1', port: 8080, ...fixture.expect });
    if (fixture.expect?.metadata) t.deepEqual(instance.metadata, fixture.expect.metadata, 'metadata exactly');
    t.true(Object.isFrozen(instance) && Object.isFrozen(instance.metadata), 'frozen');
    t.is(instance.url, `${instance.origin}${instance.api}`);
    if (fixture.group === 'routable') t.is(result.ok && result.inactive, undefined, 'routable');
    else t.is(result.ok && result.inactive, fixture.reason);
  });
}

test('detection order: the field that carries the address decides, unknown extras never switch formats', (t) => {
  t.is(detectJsonFormat({ serviceEndpoint: {}, host: 'h' }), 'serverset');
  t.is(detectJsonFormat({ host: 'h', port: 1, name: 'n' }), 'nerve');
  t.is(detectJsonFormat({ host: 'h', port: 1, name: 'n', weight: 3, labels: {} }), 'nerve');
  t.is(detectJsonFormat({ host: 'h', port: 1, name: 'n', protocol: 'http' }), 'puttu', 'our own field: ours');
  t.is(detectJsonFormat({ host: 'h', port: 1, name: 'n', status: 'UP' }), 'puttu');
  t.is(detectJsonFormat({ host: 'h', port: 1, name: 7 }), 'puttu', 'a name that is no string is not Nerve');
  t.is(detectJsonFormat({ host: 'h', port: 1, address: 'a', sslPort: 1 }), 'puttu', 'Curator never has a top-level host');
  t.is(detectJsonFormat({ address: 'a', port: 1, ip: 'x' }), 'curator');
  t.is(detectJsonFormat({ ip: '10.0.0.1', port: 1 }), 'ip');
  t.is(detectJsonFormat({ port: 1, sslPort: 2 }), 'curator', 'a Curator record without its address');
  t.is(detectJsonFormat({ port: 1, uriSpec: null }), 'curator');
  t.is(detectJsonFormat({ additionalEndpoints: {} }), 'serverset');
  t.is(detectJsonFormat({ port: 1 }), 'puttu');
  t.is(detectJsonFormat({}), 'puttu');
});

test('detection reaches each decoder: reasons name the format', (t) => {
  t.regex(describe(decode({ port: 1, sslPort: 2 })), /curator: address/);
  t.regex(describe(decode({ additionalEndpoints: {}, status: 'ALIVE' })), /serverset: serviceEndpoint/);
  t.regex(describe(decode({ host: 'h', name: 'n' })), /nerve: port/);
  t.regex(describe(decode({ port: 80 })), /^rejected: host must be/);
  t.regex(describe(decode('[{"host":"h"}]')), /neither JSON nor a URL/);
  t.regex(describe(decode('{"serviceEndpoint":')), /not valid JSON/);
});

const curator = (fields: Record<string, unknown>) => ({
  name: 'orders',
  id: 'c1',
  address: '127.0.0.1',
  port: null,
  sslPort: null,
  payload: null,
  registrationTimeUTC: 1700000000000,
  serviceType: 'DYNAMIC',
  uriSpec: null,
  ...fields,
});

test('curator: sslPort means https and is preferred over port', (t) => {
  t.like(ok(t, decode(curator({ sslPort: 8443 }))), { protocol: 'https', port: 8443, origin: 'https://127.0.0.1:8443' });
  t.like(ok(t, decode(curator({ port: 8080, sslPort: 8443 }))), { protocol: 'https', port: 8443 });
  t.like(ok(t, decode(curator({ port: 8080 }))), { protocol: 'http', port: 8080, url: 'http://127.0.0.1:8080' });
  t.like(ok(t, decode(curator({ address: 'orders-7.internal', port: '8080' }))), { host: 'orders-7.internal', port: 8080 });
  t.like(ok(t, decode(curator({ address: '::1', port: 8080 }))), { origin: 'http://[::1]:8080' });
});

test('curator: the uriSpec path, string or Jackson parts; Curator variables filled from the record', (t) => {
  const api = (uriSpec: unknown, extra: Record<string, unknown> = {}) => ok(t, decode(curator({ port: 8080, uriSpec, ...extra }))).api;
  t.is(api('{scheme}://{address}:{port}'), '');
  t.is(api('{scheme}://{address}:{port}/'), '');
  t.is(api('{scheme}://{address}:{port}/api/v1/'), '/api/v1');
  t.is(api('https://lb.example.com/orders'), '/orders', 'a literal authority: the path still counts');
  t.is(api('{scheme}://{address}:{ssl-port}/x', { sslPort: 8443 }), '/x');
  t.is(api('{scheme}://{address}:{port}/{name}/{id}/{service-type}'), '/orders/c1/dynamic');
  t.is(api('{scheme}://{address}:{port}/api#frag'), '/api');
  t.is(api('{scheme}://{address}:{port}?q=1/not/a/path'), '', 'a query right after the authority: no path');
  t.is(api('no scheme here /x'), '', 'not a URI template');
  t.is(api(42), '', 'a uriSpec shape we do not know is ignored');
  t.is(api({ parts: 'nope' }), '');
  t.is(
    api({ parts: [{ value: 'scheme', variable: true }, { value: '://h/', variable: false }, { value: 7 }] }),
    '',
    'a broken part: ignored',
  );
  t.is(
    api({
      parts: [
        { value: 'scheme', variable: true },
        { value: '://', variable: false },
        { value: 'address', variable: true },
        { value: '/v2', variable: false },
      ],
    }),
    '/v2',
  );
  for (const bad of [
    '{scheme}://{address}:{port}/{constructor}',
    '{scheme}://{address}:{port}/{__proto__}',
    '{scheme}://{address}:{port}/{}',
  ]) {
    const r = decode(curator({ port: 8080, uriSpec: bad }));
    t.false(r.ok, bad);
    t.regex(describe(r), /cannot fill/, bad);
  }
  t.regex(describe(decode(curator({ port: 8080, uriSpec: '{scheme}://{address}:{port}/a%2Fb' }))), /not a usable base path/);
});

test('curator: Spring instance_status is compared ignoring case; enabled null counts as enabled', (t) => {
  const spring = (status: unknown) => ({
    '@class': 'org.springframework.cloud.zookeeper.discovery.ZookeeperInstance',
    id: 'a',
    name: 'orders',
    metadata: { instance_status: status },
  });
  const up = decode(curator({ port: 8080, payload: spring('up') }));
  t.true(up.ok && up.inactive === undefined);
  const nullStatus = decode(curator({ port: 8080, payload: spring(null), enabled: null }));
  t.true(nullStatus.ok && nullStatus.inactive === undefined);
  const starting = decode(curator({ port: 8080, payload: spring('STARTING') }));
  t.true(starting.ok && starting.inactive === 'instance_status STARTING');
  t.is(ok(t, starting).status, 'STARTING');
  const payloadString = decode(curator({ port: 8080, payload: 'just a string' }));
  t.true(payloadString.ok && payloadString.inactive === undefined, 'a payload of any other type is the application’s business');
});

test('serverset: shard and well-formed additional endpoints are kept; a bad shard is ignored; status compared ignoring case', (t) => {
  const member = (fields: Record<string, unknown>) => ({ serviceEndpoint: { host: '10.0.0.7', port: 31337 }, status: 'ALIVE', ...fields });
  const i = ok(
    t,
    decode(member({ shard: 3, additionalEndpoints: { http: { host: '10.0.0.7', port: 8080 }, bad: { host: 'x y', port: 1 }, worse: 5 } })),
  );
  t.is(i.shard, 3);
  t.deepEqual(i.endpoints, { http: { host: '10.0.0.7', port: 8080 } });
  t.is(ok(t, decode(member({ shard: -1 }))).shard, undefined);
  t.is(ok(t, decode(member({ shard: 'zero' }))).shard, undefined);
  t.false('endpoints' in ok(t, decode(member({ additionalEndpoints: {} }))));
  const alive = decode(member({ status: 'alive' }));
  t.true(alive.ok && alive.inactive === undefined);
  const blank = decode(member({ status: '  ' }));
  t.false(blank.ok);
});

test('ours: status compared ignoring case; weight from 0 to 1000; metadata keeps strings only', (t) => {
  const ours = (fields: Record<string, unknown>) => ({ protocol: 'http', host: '10.0.0.5', port: 80, api: '', ...fields });
  const up = decode(ours({ status: 'Up', weight: 1000 }));
  t.true(up.ok && up.inactive === undefined);
  t.is(ok(t, up).weight, 1000);
  t.regex(describe(decode(ours({ weight: 1001 }))), /weight must be an integer from 0 to 1000, got 1001/);
  t.regex(describe(decode(ours({ weight: 1.5 }))), /weight .*1\.5/);
  t.regex(describe(decode(ours({ status: '' }))), /status must be a string/);
  t.deepEqual(ok(t, decode(ours({ metadata: 'not an object' }))).metadata, {});
  t.deepEqual(ok(t, decode(ours({ metadata: { a: 'b', c: null, d: ['x'] } }))).metadata, { a: 'b' });
  const both = decode(ours({ status: 'DRAINING', weight: 0 }));
  t.true(both.ok && both.inactive === 'status DRAINING', 'the status is the reason first');
});

test('weights: Curator/Spring metadata weight when numeric, a serverset weight where present, Nerve and ours as written', (t) => {
  const spring = (weight: unknown) => curator({ port: 8080, payload: { '@class': 'x', metadata: { instance_status: 'UP', weight } } });
  t.is(ok(t, decode(spring('3'))).weight, 3, 'Spring metadata values are strings');
  t.is(ok(t, decode(spring(7))).weight, 7, 'a number works too');
  t.is(ok(t, decode(spring('heavy'))).weight, 1, 'not numeric: the default');
  t.is(ok(t, decode(spring('2000'))).weight, 1, 'out of range: the default');
  const zero = decode(spring('0'));
  t.true(zero.ok && zero.inactive === 'weight 0', describe(zero));
  const member = (extra: object) => ({ serviceEndpoint: { host: '127.0.0.1', port: 31337 }, status: 'ALIVE', ...extra });
  t.is(ok(t, decode(member({ weight: 4 }))).weight, 4);
  t.is(ok(t, decode(member({}))).weight, 1);
  const off = decode(member({ weight: 0 }));
  t.true(off.ok && off.inactive === 'weight 0', describe(off));
  t.is(ok(t, decode({ host: '127.0.0.1', port: 1, name: 'x', weight: 5 })).weight, 5, 'nerve');
  t.is(ok(t, decode({ protocol: 'http', host: '127.0.0.1', port: 1, api: '', weight: 9 })).weight, 9, 'puttu');
});
