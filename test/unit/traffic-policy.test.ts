/**
 * The pure parts of traffic policy: the document check (traffic/policy.ts), weighted rendezvous
 * hashing (balancer/hrw.ts) and the router that applies split, zone and sticky (traffic/router.ts),
 * with a seeded random source.
 */
import test from 'ava';
import { rendezvous, rendezvousOrder, unitOf } from '../../proxy/balancer/hrw.js';
import { createRandomBalancer } from '../../proxy/balancer/random.js';
import { Inflight } from '../../proxy/health/inflight.js';
import type { Instance } from '../../proxy/registry/instance.js';
import { parsePolicy } from '../../proxy/traffic/policy.js';
import { compilePolicy, cookieValue, type RouteDetail } from '../../proxy/traffic/router.js';
import { seeded } from '../helpers/fakes.js';

function inst(id: string, extra: { weight?: number; metadata?: Record<string, string> } = {}): Instance {
  const origin = `http://10.0.0.1:${1000 + id.length}`;
  return { id, service: 'svc', format: 'puttu', protocol: 'http', host: '10.0.0.1', port: 1000, api: '', origin, url: origin, ...extra };
}

const keys = Array.from({ length: 1000 }, (_, i) => `user-${i}`);

/** Compiles a document as the proxy does: checked first. */
function compile(doc: object, zone = '', random = seeded(1)) {
  const parsed = parsePolicy(JSON.stringify(doc));
  if (!parsed.ok) throw new Error(parsed.reason);
  return compilePolicy({ service: 'svc', policy: parsed.policy, version: 3 }, { random, inflight: new Inflight(), zone })!;
}

// --- The document ---------------------------------------------------------------------------------

test('parsePolicy: a full document is accepted and frozen; header names are lower-cased', (t) => {
  const r = parsePolicy(
    JSON.stringify({
      balancer: 'p2c',
      sticky: { header: 'X-User' },
      split: [{ match: { metadata: { track: 'canary' } }, percent: 5 }],
      zone: { prefer: 'local' },
      upstreamTimeoutMs: 2000,
      maxAttempts: 2,
      stripPrefix: false,
      explain: true,
    }),
  );
  if (!r.ok) return t.fail(r.reason);
  t.deepEqual(r.policy.sticky, { header: 'x-user' });
  t.deepEqual(r.policy.zone, { prefer: 'local', minHealthyPercent: 50 });
  t.true(Object.isFrozen(r.policy) && Object.isFrozen(r.policy.split));
  t.deepEqual(parsePolicy('{}'), { ok: true, policy: {} });
});

test('parsePolicy: every wrong field is refused with a reason that names it', (t) => {
  const cases: Array<[string, RegExp]> = [
    ['', /empty/],
    ['[]', /a policy is a JSON object/],
    ['{"x": 1}', /unknown key "x"/],
    ['{"balancer": 3}', /balancer must be one of/],
    ['{"sticky": {"header": "a b"}}', /sticky.header must be a header name/],
    ['{"sticky": {}}', /exactly one of "header" or "cookie"/],
    ['{"sticky": "x-user"}', /sticky must be/],
    ['{"split": []}', /split must be a list of 1 to 16 rules/],
    ['{"split": [{"match": {"metadata": {}}, "percent": 5}]}', /split\[0\]\.match\.metadata must name at least one entry/],
    ['{"split": [{"match": {"metadata": {"track": 1}}, "percent": 5}]}', /split\[0\]\.match\.metadata\["track"\] must be a string/],
    ['{"split": [{"match": {"labels": {}}, "percent": 5}]}', /split\[0\]\.match must be \{"metadata"/],
    ['{"split": [{"match": {"metadata": {"a": "b"}}, "percent": 5, "x": 1}]}', /split\[0\]: unknown key "x"/],
    [
      '{"split": [{"match": {"metadata": {"a": "b"}}, "percent": 60}, {"match": {"metadata": {"a": "c"}}, "percent": 50}]}',
      /add up to 110, over 100/,
    ],
    ['{"zone": {"prefer": "remote"}}', /zone must be \{"prefer": "local"\}/],
    ['{"zone": {"prefer": "local", "minHealthyPercent": 101}}', /minHealthyPercent must be a number from 0 to 100/],
    ['{"upstreamTimeoutMs": 0}', /upstreamTimeoutMs must be an integer from 1 to 3600000, got 0/],
    ['{"maxAttempts": 1.5}', /maxAttempts must be an integer from 1 to 10/],
    ['{"stripPrefix": "no"}', /stripPrefix must be true or false/],
    ['{"explain": 1}', /explain must be true or false/],
    [`{"x": "${'a'.repeat(70_000)}"}`, /over 65536 bytes/],
  ];
  for (const [doc, reason] of cases) {
    const r = parsePolicy(doc);
    t.false(r.ok, doc.slice(0, 60));
    if (!r.ok) t.regex(r.reason, reason, doc.slice(0, 60));
  }
});

// --- Rendezvous hashing ---------------------------------------------------------------------------

test('HRW: the same key always reaches the same instance, whatever the list order', (t) => {
  const list = ['a', 'b', 'c', 'd', 'e'].map((id) => inst(id));
  for (const key of keys.slice(0, 100)) {
    t.is(rendezvous(list, key), rendezvous([...list].reverse(), key));
  }
});

for (const n of [4, 10]) {
  test(`HRW: adding or removing one of ${n} instances moves at most 1.5/${n} of 1,000 keys`, (t) => {
    const list = Array.from({ length: n }, (_, i) => inst(`node-${i}`));
    const before = keys.map((k) => rendezvous(list, k));
    const removed = list.slice(1);
    const afterRemove = keys.map((k) => rendezvous(removed, k));
    const movedOnRemove = keys.filter((_, i) => afterRemove[i] !== before[i]).length;
    // Only the removed instance's keys move, to the next in their own order.
    t.true(keys.every((_, i) => before[i] === list[0] || afterRemove[i] === before[i]));
    const added = [...list, inst(`node-${n}`)];
    const afterAdd = keys.map((k) => rendezvous(added, k));
    const movedOnAdd = keys.filter((_, i) => afterAdd[i] !== before[i]).length;
    t.true(
      keys.every((_, i) => afterAdd[i] === before[i] || afterAdd[i] === added[n]),
      'keys move only to the new instance',
    );
    t.log(`moved: removing ${movedOnRemove}, adding ${movedOnAdd} of 1000 (1/N = ${Math.round(1000 / n)})`);
    t.true(movedOnRemove <= (1.5 / n) * 1000, `${movedOnRemove} moved on removal`);
    t.true(movedOnAdd <= (1.5 / (n + 1)) * 1000 + 1, `${movedOnAdd} moved on addition`);
    t.true(movedOnRemove > 0 && movedOnAdd > 0);
  });
}

test('HRW is weight-aware: weights 1 and 3 own about 25 % and 75 % of the keys', (t) => {
  const list = [inst('light', { weight: 1 }), inst('heavy', { weight: 3 })];
  const light = keys.filter((k) => rendezvous(list, k)!.id === 'light').length;
  t.true(Math.abs(light - 250) <= 40, `light owns ${light}`);
  t.is(rendezvous([inst('zero', { weight: 0 }), inst('one')], 'k')!.id, 'one', 'weight 0 never wins over a weighted one');
});

test('HRW: with the winner skipped (tried, ejected) the next in the key’s own order wins', (t) => {
  const list = ['a', 'b', 'c', 'd'].map((id) => inst(id));
  for (const key of keys.slice(0, 50)) {
    const order = rendezvousOrder(list, key);
    t.is(rendezvous(list, key), order[0]);
    t.is(rendezvous(list, key, [order[0]!]), order[1]);
    t.is(rendezvous(list, key, [order[0]!, order[1]!]), order[2]);
    t.is(
      rendezvous(
        list.filter((i) => i !== order[0]),
        key,
      ),
      order[1],
      'gone: the same as skipped',
    );
  }
  t.is(rendezvous(list, 'k', list), undefined);
});

test('unitOf: a key has one point per salt, spread over [0, 1)', (t) => {
  t.is(unitOf('abc', 1), unitOf('abc', 1));
  const points = keys.map((k) => unitOf(k, 7));
  t.true(points.every((p) => p >= 0 && p < 1));
  const low = points.filter((p) => p < 0.1).length;
  t.true(Math.abs(low - 100) <= 35, `${low} of 1000 below 0.1`);
});

// --- The router -------------------------------------------------------------------------------------

const canary = inst('canary-1', { metadata: { track: 'canary' } });
const stable = ['s1', 's2', 's3'].map((id) => inst(id, { metadata: { track: 'stable' } }));
const service = [canary, ...stable];
const fallback = createRandomBalancer({ random: seeded(9) });
const splitPolicy = { split: [{ match: { metadata: { track: 'canary' } }, percent: 5 }] };

test('split: 5 % to the canary over 20,000 requests, within 1 point', (t) => {
  const policy = compile(splitPolicy, '', seeded(42));
  let hits = 0;
  for (let i = 0; i < 20_000; i++) if (policy.route(service, service, undefined, fallback) === canary) hits++;
  t.log(`canary: ${(hits / 200).toFixed(2)} %`);
  t.true(Math.abs(hits / 20_000 - 0.05) <= 0.01, `${hits}`);
});

test('split + sticky: a key stays on its side of the split, and about the split share of keys is on the canary side', (t) => {
  const policy = compile({ ...splitPolicy, sticky: { header: 'x-user' } });
  const side = new Map<string, boolean>();
  for (const key of keys) side.set(key, policy.route(service, service, key, fallback) === canary);
  for (let round = 0; round < 3; round++)
    for (const key of keys) t.is(policy.route(service, service, key, fallback) === canary, side.get(key)!);
  const onCanary = [...side.values()].filter(Boolean).length;
  t.true(onCanary >= 25 && onCanary <= 80, `${onCanary} of 1000 keys on the canary`);
  // The stable side is sticky too: a key keeps its stable instance when the canary leaves.
  const without = stable;
  for (const key of keys) {
    if (side.get(key)) continue;
    t.is(policy.route(without, without, key, fallback), policy.route(service, service, key, fallback));
  }
});

test('split: an empty side sends its share to the rest; an empty rest to every routable instance', (t) => {
  const policy = compile({ split: [{ match: { metadata: { track: 'canary' } }, percent: 100 }] });
  t.is(policy.route(service, service, undefined, fallback), canary);
  t.true(stable.includes(policy.route(stable, stable, undefined, fallback)!), 'no canary: the rest');
  const none = compile({ split: [{ match: { metadata: { track: 'canary' } }, percent: 0 }] });
  t.is(none.route([canary], [canary], undefined, fallback), canary, 'only canaries: they serve');
});

test('zone: local instances get the traffic while enough of them are healthy, then every zone does', (t) => {
  const a1 = inst('a1', { metadata: { zone: 'a' } });
  const a2 = inst('a2', { metadata: { zone: 'a' } });
  const b1 = inst('b1', { metadata: { zone: 'b' } });
  const all = [a1, a2, b1];
  const policy = compile({ zone: { prefer: 'local', minHealthyPercent: 60 } }, 'a', seeded(5));
  const detail: RouteDetail = { rules: [] };
  policy.route(all, all, 'k', fallback, undefined, detail);
  t.deepEqual(detail.zone, { zone: 'a', local: true, healthyPercent: 100 });
  for (let i = 0; i < 200; i++) t.not(policy.route(all, all, undefined, fallback), b1);
  // a2 ejected: 50 % of zone a healthy, below 60: every zone.
  const routable = [a1, b1];
  const seen = new Set(Array.from({ length: 200 }, () => policy.route(routable, all, undefined, fallback)));
  t.true(seen.has(b1) && seen.has(a1));
  // No --zone: no preference.
  const unzoned = compile({ zone: { prefer: 'local' } }, '');
  t.true(new Set(Array.from({ length: 200 }, () => unzoned.route(all, all, undefined, fallback))).has(b1));
});

test('router: retries never repeat a tried instance while another is left; undefined once all were tried', (t) => {
  const policy = compile({ sticky: { cookie: 'sid' } });
  const first = policy.route(service, service, 'k1', fallback)!;
  const second = policy.route(service, service, 'k1', fallback, [first])!;
  t.not(second, first);
  t.is(second, rendezvousOrder(service, 'k1')[1]!);
  t.is(policy.route(service, service, 'k1', fallback, service), undefined);
});

test('sticky keys come from the named header or cookie; requests without one use the balancer', (t) => {
  const byHeader = compile({ sticky: { header: 'X-User' } });
  t.is(byHeader.keyOf(['Host', 'h', 'x-USER', 'alice']), 'alice');
  t.is(byHeader.keyOf(['Host', 'h']), undefined);
  t.is(byHeader.keyOf(['X-User', '']), undefined, 'an empty value is no key');
  const byCookie = compile({ sticky: { cookie: 'sid' } });
  t.is(byCookie.keyOf(['Cookie', 'a=1; sid=s-42; b=2']), 's-42');
  t.is(byCookie.keyOf(['cookie', 'a=1', 'Cookie', 'sid="q"']), 'q');
  t.is(byCookie.keyOf(['Cookie', 'sidx=1']), undefined);
  t.is(cookieValue(' sid = v ', 'sid'), 'v');
  const detail: RouteDetail = { rules: [] };
  t.is(byCookie.route(service, service, undefined, fallback, undefined, detail), undefined, 'explained, not drawn');
  t.deepEqual(detail.rules, ['balancer']);
  t.is(detail.candidates, service);
});
