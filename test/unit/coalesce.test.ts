import test from 'ava';
import { pickIndex } from '../../proxy/clock.js';
import { createCoalescer, createLimiter } from '../../proxy/registry/coalesce.js';

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void } {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

test('pickIndex: 0 → first, 0.999 → last, 1 clamps to last, below 0 clamps to first', (t) => {
  t.is(
    pickIndex(() => 0, 3),
    0,
  );
  t.is(
    pickIndex(() => 0.4, 3),
    1,
  );
  t.is(
    pickIndex(() => 0.999, 3),
    2,
  );
  t.is(
    pickIndex(() => 1, 3),
    2,
  );
  t.is(
    pickIndex(() => -0.5, 3),
    0,
  );
  t.is(
    pickIndex(() => 0.5, 1),
    0,
  );
});

test('coalescer: one trigger runs the task once', async (t) => {
  let runs = 0;
  const c = createCoalescer(
    async () => {
      runs += 1;
    },
    (e) => t.fail(String(e)),
  );
  t.false(c.running);
  c.trigger();
  t.true(c.running);
  await c.idle();
  t.false(c.running);
  t.is(runs, 1);
});

test('coalescer: triggers during a run cause exactly one re-run, never an overlap', async (t) => {
  const gates = [deferred(), deferred()];
  let runs = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const c = createCoalescer(
    async () => {
      const gate = gates[runs]!;
      runs += 1;
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await gate.promise;
      inFlight -= 1;
    },
    (e) => t.fail(String(e)),
  );
  c.trigger();
  c.trigger();
  c.trigger();
  c.trigger();
  t.is(runs, 1, 'the first run started at once; the other triggers wait');
  gates[0]!.resolve();
  await waitFor(() => runs === 2);
  gates[1]!.resolve();
  await c.idle();
  t.is(runs, 2, 'three triggers during the run collapsed into one re-run');
  t.is(maxInFlight, 1);
  t.false(c.running);
});

test('coalescer: an error goes to onError and does not stop later runs', async (t) => {
  const errors: unknown[] = [];
  let runs = 0;
  const boom = new Error('boom');
  const c = createCoalescer(
    async () => {
      runs += 1;
      if (runs === 1) throw boom;
    },
    (e) => errors.push(e),
  );
  c.trigger();
  await c.idle();
  t.deepEqual(errors, [boom]);
  c.trigger();
  await c.idle();
  t.is(runs, 2);
  t.is(errors.length, 1);
});

test('coalescer: a trigger during a failing run still gets its re-run', async (t) => {
  const gate = deferred();
  const errors: unknown[] = [];
  let runs = 0;
  const c = createCoalescer(
    async () => {
      runs += 1;
      if (runs === 1) {
        await gate.promise;
        throw new Error('first run failed');
      }
    },
    (e) => errors.push(e),
  );
  c.trigger();
  c.trigger();
  gate.resolve();
  await c.idle();
  t.is(runs, 2);
  t.is(errors.length, 1);
});

/** Yields to the event loop until `cond` holds (microtask-driven; bounded). */
async function waitFor(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setImmediate(r));
  if (!cond()) throw new Error('condition never held');
}

test('limiter: at most max tasks run at once, the others start in order as slots free; failures free their slot', async (t) => {
  const limiter = createLimiter(2);
  const gates = Array.from({ length: 5 }, () => deferred());
  const started: number[] = [];
  let running = 0;
  let most = 0;
  const runs = gates.map((gate, i) =>
    limiter.run(async () => {
      started.push(i);
      running += 1;
      most = Math.max(most, running);
      try {
        await gate.promise;
        return i;
      } finally {
        running -= 1;
      }
    }),
  );
  await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(started, [0, 1]);
  gates[1]!.reject(new Error('boom'));
  await t.throwsAsync(runs[1]!, { message: 'boom' });
  await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(started, [0, 1, 2]);
  for (const gate of gates) gate.resolve();
  t.deepEqual(await Promise.all([runs[0], runs[2], runs[3], runs[4]]), [0, 2, 3, 4]);
  t.deepEqual(started, [0, 1, 2, 3, 4]);
  t.is(most, 2);
  t.is(await limiter.run(async () => 'free again'), 'free again');
});
