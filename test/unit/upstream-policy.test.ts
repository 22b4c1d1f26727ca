import test from 'ava';
import { createUpstreamPolicy, DEFAULT_DENY, parseCidrs, parsePorts, policyLookup } from '../../proxy/security/upstream-policy.js';

const defaults = () => createUpstreamPolicy({ allow: '', deny: DEFAULT_DENY, ports: '' });

test('by default link-local and cloud metadata addresses are refused', (t) => {
  const p = defaults();
  for (const host of ['169.254.169.254', '169.254.0.1', 'fe80::1', 'fd00:ec2::254', '100.100.100.200', '::ffff:169.254.169.254']) {
    t.regex(p.check(host, 80) ?? '', /denied network/, host);
  }
  for (const host of ['10.0.0.5', '127.0.0.1', '192.168.1.2', '::1', '2001:db8::1', 'warehouse.internal'])
    t.is(p.check(host, 80), undefined, host);
});

test('an allow list admits only its networks', (t) => {
  const p = createUpstreamPolicy({ allow: '10.0.0.0/8, fd00::/8', deny: DEFAULT_DENY, ports: '' });
  t.is(p.check('10.1.2.3', 80), undefined);
  t.is(p.check('fd12::1', 80), undefined);
  t.regex(p.check('127.0.0.1', 80)!, /outside the allowed networks/);
  t.regex(p.check('192.168.0.1', 80)!, /outside the allowed networks/);
});

test('deny wins over allow', (t) => {
  const p = createUpstreamPolicy({ allow: '169.254.0.0/16', deny: DEFAULT_DENY, ports: '' });
  t.regex(p.check('169.254.169.254', 80)!, /denied network/);
});

test('ports outside the allowed ranges are refused, DNS names included', (t) => {
  const p = createUpstreamPolicy({ allow: '', deny: '', ports: '80,443,8000-8999' });
  t.is(p.check('10.0.0.1', 8080), undefined);
  t.is(p.check('10.0.0.1', 443), undefined);
  t.regex(p.check('10.0.0.1', 22)!, /port 22 is not allowed/);
  t.regex(p.check('db.internal', 5432)!, /port 5432/);
});

test("the proxy's own listeners are refused on local addresses only", (t) => {
  const p = defaults();
  p.setOwnPorts([8080, 9090]);
  for (const host of ['127.0.0.1', '127.0.0.2', '::1', '0.0.0.0', 'localhost']) t.regex(p.check(host, 9090) ?? '', /own listener/, host);
  t.is(p.check('10.99.99.99', 8080), undefined, 'another machine on the same port is fine');
  t.is(p.check('127.0.0.1', 8081), undefined);
});

test('bad networks and ports are reported with the key', (t) => {
  t.throws(() => parseCidrs('10.0.0.0/33', 'allowNetworks'), { message: /allowNetworks: "10.0.0.0\/33"/ });
  t.throws(() => parseCidrs('nonsense', 'denyNetworks'), { message: /denyNetworks/ });
  t.throws(() => parsePorts('90-80', 'allowPorts'), { message: /allowPorts: "90-80"/ });
  t.throws(() => parsePorts('70000', 'allowPorts'));
});

test('the lookup refuses names that resolve only to refused addresses, without connecting', async (t) => {
  const p = createUpstreamPolicy({ allow: '10.0.0.0/8', deny: '', ports: '' });
  const lookup = policyLookup(p, 80);
  const error = await new Promise<NodeJS.ErrnoException | null>((resolve) => lookup('localhost', {}, (err) => resolve(err)));
  t.is(error?.code, 'PUTTU_UPSTREAM_POLICY');
  const open = policyLookup(defaults(), 80);
  const address = await new Promise<string>((resolve, reject) =>
    open('localhost', {}, (err, a) => (err ? reject(err) : resolve(a as string))),
  );
  t.regex(address, /^(127\.0\.0\.1|::1)$/);
});
