import test from 'ava';
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
  t.true(BALANCER_NAMES.includes('random'));
  for (const name of BALANCER_NAMES) {
    const low = BALANCERS[name]({ random: () => 0 });
    t.is(typeof low.pick, 'function', name);
    t.true([a, b, c].includes(low.pick([a, b, c])), name);
    t.is(BALANCERS[name]({ random: () => 0 }).pick([c]), c, name);
  }
});

test('BALANCERS.random pins like createRandomBalancer', (t) => {
  t.is(BALANCERS.random({ random: () => 0 }).pick([a, b, c]), a);
  t.is(BALANCERS.random({ random: () => 0.99 }).pick([a, b, c]), c);
});
