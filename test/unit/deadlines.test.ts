/** The coarse deadline sweep, driven with explicit times (no waiting). */
import test from 'ava';
import { BODY, Deadlines, HEAD, PAUSED, UNTRACKED, type Phase, type Timed } from '../../proxy/forward/deadlines.js';

class Request implements Timed {
  headMs = 0;
  phase: Phase = UNTRACKED;
  since = 0;
  prevTimed: Timed | undefined = undefined;
  nextTimed: Timed | undefined = undefined;
  passed: Array<typeof HEAD | typeof BODY> = [];
  deadlinePassed(phase: typeof HEAD | typeof BODY): void {
    this.passed.push(phase);
  }
}

/** headMs 100, bodyMs 300: sweeps every 10 ms, so a deadline fires between limit+10 and limit+20. */
function setup(): Deadlines {
  const d = new Deadlines({ headMs: 100, bodyMs: 300 });
  d.sweep(1_000);
  return d;
}

test('the head deadline never fires early, and fires within two sweeps of the limit', (t) => {
  const d = setup();
  t.teardown(() => d.close());
  const r = new Request();
  d.track(r); // since = 1000 (the clock of the last sweep; the real start may be up to 10 ms later)
  d.sweep(1_109);
  t.deepEqual(r.passed, []);
  d.sweep(1_110);
  t.deepEqual(r.passed, [HEAD]);
  t.is(r.phase, UNTRACKED);
  t.is(d.size, 0);
  d.sweep(5_000);
  t.deepEqual(r.passed, [HEAD], 'told once');
});

test('the body deadline counts from the last chunk, and not at all while the client is not reading', (t) => {
  const d = setup();
  t.teardown(() => d.close());
  const r = new Request();
  d.track(r);
  d.headArrived(r);
  t.is(r.phase, BODY);
  d.sweep(1_200);
  d.bodyMoved(r); // a chunk at 1200
  d.sweep(1_500);
  t.deepEqual(r.passed, [], '300 ms after the last chunk is not yet past 300 + a sweep');
  d.paused(r);
  t.is(r.phase, PAUSED);
  d.sweep(60_000);
  t.deepEqual(r.passed, [], 'paused: no deadline');
  d.resumed(r);
  t.is(r.phase, BODY);
  d.sweep(60_000 + 310);
  t.deepEqual(r.passed, [BODY]);
});

test('an untracked request is never told', (t) => {
  const d = setup();
  t.teardown(() => d.close());
  const a = new Request();
  const b = new Request();
  d.track(a);
  d.track(b);
  d.untrack(a);
  d.sweep(2_000);
  t.deepEqual(a.passed, []);
  t.deepEqual(b.passed, [HEAD]);
});

test('the sweep runs on its own, every tenth of the shorter limit', async (t) => {
  const d = new Deadlines({ headMs: 50, bodyMs: 1_000 });
  t.teardown(() => d.close());
  const r = new Request();
  const started = performance.now();
  d.track(r);
  const deadline = Date.now() + 5_000;
  while (r.passed.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  const after = performance.now() - started;
  t.deepEqual(r.passed, [HEAD]);
  t.true(after >= 50, `fired after ${after.toFixed(1)} ms`);
});

test('the list holds through tracking, untracking in any order, and tracking again', (t) => {
  const d = setup();
  t.teardown(() => d.close());
  const all = Array.from({ length: 100 }, () => new Request());
  for (const r of all) d.track(r);
  t.is(d.size, 100);
  for (let i = 0; i < 100; i += 2) d.untrack(all[i]!); // first, middles, and so on
  d.untrack(all[0]!); // twice: no effect
  t.is(d.size, 50);
  d.track(all[1]!); // again: still once
  t.is(d.size, 50);
  d.sweep(2_000);
  t.deepEqual(
    all.map((r) => r.passed.length),
    all.map((_, i) => (i % 2 === 1 ? 1 : 0)),
  );
  t.is(d.size, 0);
  t.true(
    all.every((r) => r.prevTimed === undefined && r.nextTimed === undefined),
    'no request keeps another alive',
  );
});
