import test from 'ava';
import { OUTLIER_DEFAULTS, OutlierDetector } from '../../proxy/health/outliers.js';
import { makeInstance, type Instance } from '../../proxy/registry/instance.js';
import { silentLogger } from '../../proxy/logger.js';
import { fakeClock } from '../helpers/fakes.js';

function instances(n: number, service = 'svc'): Instance[] {
  return Array.from({ length: n }, (_, i) =>
    makeInstance(service, `svc${i}`, 'puttu', { protocol: 'http', host: '127.0.0.1', port: 1000 + i, api: '' }),
  );
}

function detector(options = {}) {
  const clock = fakeClock();
  const changes: string[] = [];
  const d = new OutlierDetector({ ...OUTLIER_DEFAULTS, consecutiveFailures: 3, baseEjectionMs: 1_000, ...options }, clock, silentLogger);
  d.onChange = (i, state) => changes.push(`${i.id}:${state}`);
  return { d, clock, changes };
}

test('an instance is ejected after N consecutive failures and readmitted after the backoff', (t) => {
  const { d, clock, changes } = detector();
  const all = instances(4);
  d.failure(all[0]!, all);
  d.failure(all[0]!, all);
  t.is(d.routable('svc', all), all, 'two failures: nothing ejected (the same array, no copy)');
  d.failure(all[0]!, all);
  t.deepEqual(d.routable('svc', all), all.slice(1));
  t.is(d.state(all[0]!), 'ejected');
  clock.advance(999);
  t.deepEqual(d.routable('svc', all), all.slice(1));
  clock.advance(1);
  t.is(d.routable('svc', all).length, 4);
  t.deepEqual(changes, ['svc0:ejected', 'svc0:healthy']);
});

test('a success resets the consecutive count', (t) => {
  const { d } = detector();
  const all = instances(3);
  d.failure(all[0]!, all);
  d.failure(all[0]!, all);
  d.success(all[0]!);
  d.failure(all[0]!, all);
  d.failure(all[0]!, all);
  t.is(d.state(all[0]!), 'healthy');
});

test('repeated ejections back off exponentially up to the cap', (t) => {
  const { d, clock } = detector({ maxEjectionMs: 3_000 });
  const all = instances(4);
  const lengths: number[] = [];
  for (let round = 0; round < 4; round++) {
    for (let k = 0; k < 3; k++) d.failure(all[0]!, all);
    let waited = 0;
    while (d.routable('svc', all).length < 4) {
      clock.advance(100);
      waited += 100;
    }
    lengths.push(waited);
  }
  t.deepEqual(lengths, [1_000, 2_000, 3_000, 3_000]);
});

test('at most maxEjectedPercent of a service is ejected, and never the only instance', (t) => {
  const { d } = detector({ maxEjectedPercent: 50 });
  const all = instances(4);
  for (const i of all) for (let k = 0; k < 3; k++) d.failure(i, all);
  t.is(all.filter((i) => d.state(i) === 'ejected').length, 2);
  const single = instances(1, 'one');
  for (let k = 0; k < 10; k++) d.failure(single[0]!, single);
  t.is(d.state(single[0]!), 'healthy');
});

test('panic mode: below panicPercent routable, route to every instance', (t) => {
  const { d } = detector({ maxEjectedPercent: 100, panicPercent: 50 });
  const all = instances(4);
  for (const i of all.slice(0, 2)) for (let k = 0; k < 3; k++) d.failure(i, all);
  t.is(d.routable('svc', all).length, 2, 'half routable is not panic');
  for (let k = 0; k < 3; k++) d.failure(all[2]!, all);
  t.is(d.routable('svc', all).length, 4, '1 of 4 routable: panic routes to all');
});

test('removed instances leave the ejected set', (t) => {
  const { d } = detector();
  const all = instances(3);
  for (let k = 0; k < 3; k++) d.failure(all[0]!, all);
  t.is(d.routable('svc', all).length, 2);
  d.removed([all[0]!]);
  const rest = all.slice(1);
  t.deepEqual(d.routable('svc', rest), rest);
  t.is(d.state(all[0]!), 'healthy');
});
