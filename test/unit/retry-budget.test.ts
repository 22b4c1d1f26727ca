import test from 'ava';
import { RetryBudget } from '../../proxy/forward/retry-budget.js';
import { fakeClock } from '../helpers/fakes.js';

test('retries are limited to the ratio of requests plus the per-second floor', (t) => {
  const clock = fakeClock();
  const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 1, windowMs: 10_000 }, clock);
  for (let i = 0; i < 100; i++) budget.request();
  // 100 requests × 0.2 + 1/s × 10 s = 30 retries in the window.
  let granted = 0;
  for (let i = 0; i < 100; i++) if (budget.tryRetry()) granted++;
  t.is(granted, 30);
});

test('with no traffic only the floor is available, and the window refills it', (t) => {
  const clock = fakeClock();
  const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 1, windowMs: 10_000 }, clock);
  let granted = 0;
  for (let i = 0; i < 50; i++) if (budget.tryRetry()) granted++;
  t.is(granted, 10);
  t.false(budget.tryRetry());
  clock.advance(10_000);
  t.true(budget.tryRetry(), 'a full window later the budget is back');
});

test('a zero budget never retries', (t) => {
  const budget = new RetryBudget({ ratio: 0, minPerSecond: 0 }, fakeClock());
  for (let i = 0; i < 10; i++) budget.request();
  t.false(budget.tryRetry());
});
