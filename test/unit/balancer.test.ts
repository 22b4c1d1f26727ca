import { readdirSync, readFileSync } from 'node:fs';
import test from 'ava';
import { Inflight } from '../../proxy/health/inflight.js';
import { createRoundRobinBalancer } from '../../proxy/balancer/round-robin.js';
import { createP2cBalancer } from '../../proxy/balancer/p2c.js';
import { parseServiceBalancers } from '../../proxy/balancer/index.js';
import { seeded, sequence } from '../helpers/fakes.js';
import { BALANCERS, BALANCER_NAMES } from '../../proxy/balancer/index.js';
import { createRandomBalancer } from '../../proxy/balancer/random.js';
import type { Instance } from '../../proxy/registry/instance.js';

function instance(id: string, port: number): Instance {
  const origin = `http://10.0.0.1:${port}`;
  return { id, service: 'svc', format: 'puttu', protocol: 'http', host: '10.0.0.1', port, api: '', origin, url: origin };
}

const a = instance('a', 8001);
const b = instance('b', 8002);
const c = instance('c', 8003);

test('random balancer: the injected random pins the choice', (t) => {
  t.is(createRandomBalancer({ random: () => 0 }).pick([a, b, c]), a);
  t.is(createRandomBalancer({ random: () => 0.34 }).pick([a, b, c]), b);
  t.is(createRandomBalancer({ random: () => 0.5 }).pick([a, b]), b);
  t.is(createRandomBalancer({ random: () => 0.49 }).pick([a, b]), a);
  t.is(createRandomBalancer({ random: () => 0.99 }).pick([a, b]), b);
});

test('random balancer: a source that returns 1 (or below 0) by mistake still picks a member', (t) => {
  t.is(createRandomBalancer({ random: () => 1 }).pick([a, b, c]), c);
  t.is(createRandomBalancer({ random: () => -0.1 }).pick([a, b, c]), a);
});

test('random balancer: one instance is always chosen', (t) => {
  for (const r of [0, 0.5, 0.999999]) t.is(createRandomBalancer({ random: () => r }).pick([b]), b);
});

test('random balancer: random is called once per pick and the balancer keeps no state', (t) => {
  const values = [0.9, 0.1, 0.9, 0.5];
  let calls = 0;
  const balancer = createRandomBalancer({ random: () => values[calls++]! });
  const picks = values.map(() => balancer.pick([a, b, c]));
  t.deepEqual(picks, [c, a, c, b]);
  t.is(calls, 4);
});

test('random balancer: without an injected source it still returns a member of the list', (t) => {
  const balancer = createRandomBalancer();
  const list = [a, b, c];
  for (let i = 0; i < 200; i++) t.true(list.includes(balancer.pick(list)));
});

test('BALANCERS: every name builds a balancer that uses the injected random', (t) => {
  t.deepEqual(BALANCER_NAMES, Object.keys(BALANCERS));
  t.deepEqual([...BALANCER_NAMES].sort(), ['p2c', 'random', 'round-robin']);
  for (const name of BALANCER_NAMES) {
    const low = BALANCERS[name]({ random: () => 0, inflight: new Inflight() });
    t.is(typeof low.pick, 'function', name);
    t.true([a, b, c].includes(low.pick([a, b, c])), name);
    t.is(BALANCERS[name]({ random: () => 0, inflight: new Inflight() }).pick([c]), c, name);
  }
});

test('BALANCERS.random pins like createRandomBalancer', (t) => {
  t.is(BALANCERS.random({ random: () => 0, inflight: new Inflight() }).pick([a, b, c]), a);
  t.is(BALANCERS.random({ random: () => 0.99, inflight: new Inflight() }).pick([a, b, c]), c);
});

test('round-robin: each instance in turn from a random start, a new rotation per snapshot array', (t) => {
  const rr = createRoundRobinBalancer({ random: () => 0.5 });
  const list = [a, b, c];
  t.deepEqual(
    [1, 2, 3, 4, 5, 6].map(() => rr.pick(list)),
    [b, c, a, b, c, a],
  );
  const next = [a, b];
  t.deepEqual(
    [1, 2, 3].map(() => rr.pick(next)),
    [b, a, b],
  );
});

test('p2c: of two distinct random instances the less loaded wins', (t) => {
  const inflight = new Inflight();
  // random 0 picks index 0, then 0.6 of the remaining 2 → index 1 (+1 skip) = 2: a vs c.
  const p2c = createP2cBalancer({ random: sequence([0, 0.6]), inflight });
  t.is(p2c.pick([a, b, c]), a, 'tie: the first choice');
  inflight.inc(a);
  t.is(p2c.pick([a, b, c]), c, 'a busier than c');
  inflight.inc(c);
  inflight.inc(c);
  t.is(p2c.pick([a, b, c]), a);
  inflight.dec(c);
  inflight.dec(c);
  inflight.dec(c);
  t.is(inflight.get(c), 0, 'never below zero');
  t.is(createP2cBalancer({ inflight }).pick([b]), b, 'a single instance');
});

test('p2c never compares an instance with itself', (t) => {
  const inflight = new Inflight();
  for (const r of [0, 0.3, 0.5, 0.99]) {
    const seen: unknown[] = [];
    const p2c = createP2cBalancer({ random: sequence([r, r]), inflight });
    inflight.inc(a);
    seen.push(p2c.pick([a, b]));
    t.is(seen[0], b, `r=${r}: with a busier, b must win (two distinct choices)`);
    inflight.dec(a);
  }
});

test('per-service strategies parse, and a bad entry names itself', (t) => {
  t.deepEqual(
    [...parseServiceBalancers('cart=p2c, search = round-robin')],
    [
      ['cart', 'p2c'],
      ['search', 'round-robin'],
    ],
  );
  t.is(parseServiceBalancers('').size, 0);
  t.throws(() => parseServiceBalancers('cart=fastest'), { message: /"cart=fastest"/ });
  t.throws(() => parseServiceBalancers('cart'), { message: /"cart"/ });
});

test('p2c: a tie in flight goes to the instance that has been answering faster', (t) => {
  const inflight = new Inflight();
  const p2c = createP2cBalancer({ random: sequence([0, 0.6]), inflight }); // a vs c
  inflight.observe(a, 50);
  inflight.observe(c, 1);
  t.is(p2c.pick([a, b, c]), c, 'both idle: the faster one');
  inflight.inc(c);
  t.is(p2c.pick([a, b, c]), a, 'fewer in flight still comes first');
  inflight.dec(c);
  // The average follows the newest answers: a turns fast, c slow.
  for (let i = 0; i < 20; i++) {
    inflight.observe(a, 1);
    inflight.observe(c, 80);
  }
  t.is(p2c.pick([a, b, c]), a);
  t.true(inflight.latency(c) > 60 && inflight.latency(a) < 5);
});

test('balancers are pure choices: no module under proxy/balancer imports the registry or the health state', (t) => {
  const dir = new URL('../../../proxy/balancer/', import.meta.url);
  const imports = readdirSync(dir)
    .filter((f) => f.endsWith('.ts'))
    .flatMap((f) => [...readFileSync(new URL(f, dir), 'utf8').matchAll(/from '([^']+)'/g)].map((m) => `${f}: ${m[1]}`));
  t.true(imports.length > 5);
  t.deepEqual(
    imports.filter((i) => /\/(registry|health)\//.test(i)),
    [],
  );
});

// --- Weights ------------------------------------------------------------------------------------

const w1 = { ...instance('w1', 9001), weight: 1 };
const w3 = { ...instance('w3', 9003), weight: 3 };

function shares(balancer: { pick(list: readonly Instance[]): Instance }, list: readonly Instance[], n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const id = balancer.pick(list).id;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

for (const name of BALANCER_NAMES) {
  test(`${name}: weights 1 and 3 split 4,000 picks within 3 points of 25/75`, (t) => {
    const balancer = BALANCERS[name]({ random: seeded(7), inflight: new Inflight() });
    const counts = shares(balancer, [w1, w3], 4000);
    const share = (counts.get('w1') ?? 0) / 4000;
    t.true(Math.abs(share - 0.25) <= 0.03, `${name}: w1 got ${(share * 100).toFixed(1)} %`);
  });

  test(`${name}: equal weights other than 1 still split evenly`, (t) => {
    const list = [
      { ...a, weight: 5 },
      { ...b, weight: 5 },
    ];
    const counts = shares(BALANCERS[name]({ random: seeded(3), inflight: new Inflight() }), list, 2000);
    t.true(Math.abs((counts.get('a') ?? 0) - 1000) <= 100, JSON.stringify([...counts]));
  });
}

test('weighted random: the injected draw picks by cumulative weight', (t) => {
  const random = createRandomBalancer({ random: sequence([0, 0.24, 0.25, 0.99]) });
  const list = [w1, w3];
  t.deepEqual(
    [1, 2, 3, 4].map(() => random.pick(list).id),
    ['w1', 'w1', 'w3', 'w3'],
  );
});

test('smooth weighted round-robin: weights 1, 3 give each round of 4 one a and three b, never a twice running', (t) => {
  const rr = createRoundRobinBalancer({ random: () => 0 });
  const list = [w1, w3];
  const picks = Array.from({ length: 40 }, () => rr.pick(list).id);
  for (let r = 0; r < 40; r += 4) {
    t.is(picks.slice(r, r + 4).filter((id) => id === 'w1').length, 1, picks.slice(r, r + 4).join(','));
  }
  t.deepEqual(picks.slice(0, 4), ['w3', 'w1', 'w3', 'w3']);
  const weighted = [
    { ...a, weight: 5 },
    { ...b, weight: 1 },
    { ...c, weight: 1 },
  ];
  // nginx's example: weights 5, 1, 1 go a a b a c a a (a spread out, not a burst of five).
  t.deepEqual(
    Array.from({ length: 7 }, () => rr.pick(weighted).id),
    ['a', 'a', 'b', 'a', 'c', 'a', 'a'],
  );
});

test('weighted p2c: two distinct draws by weight; the second wins only if lighter per weight with the request added', (t) => {
  const inflight = new Inflight();
  // 0 draws w1 first; the second draw excludes w1, so it is w3 whatever the source says.
  const p2c = createP2cBalancer({ random: sequence([0, 0]), inflight });
  t.is(p2c.pick([w1, w3]), w1, 'both idle: the first drawn');
  inflight.inc(w1);
  t.is(p2c.pick([w1, w3]), w3, 'w1 at 1/1; w3 with this request 1/3');
  inflight.inc(w3);
  inflight.inc(w3);
  t.is(p2c.pick([w1, w3]), w1, 'w3 with this request 3/3 is not below 1/1');
  inflight.dec(w3);
  t.is(p2c.pick([w1, w3]), w3, 'w3 with this request 2/3');
  // 0.99 draws w3 first; w1 with this request (1/1) must be below w3's load per weight.
  const fromW3 = createP2cBalancer({ random: sequence([0.99, 0]), inflight: new Inflight() });
  t.is(fromW3.pick([w1, w3]), w3);
});

test('weight tables: weight 0 among others is never picked; a list of only zeros falls back to equal shares', (t) => {
  const zero = { ...c, weight: 0 };
  for (const name of BALANCER_NAMES) {
    const balancer = BALANCERS[name]({ random: seeded(11), inflight: new Inflight() });
    const counts = shares(balancer, [w1, zero, w3], 400);
    t.is(counts.get('c'), undefined, name);
    const all = shares(BALANCERS[name]({ random: seeded(5), inflight: new Inflight() }), [{ ...a, weight: 0 }, zero], 200);
    t.true((all.get('a') ?? 0) > 50 && (all.get('c') ?? 0) > 50, `${name}: ${JSON.stringify([...all])}`);
  }
});
