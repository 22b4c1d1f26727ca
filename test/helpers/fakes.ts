/** Fakes for injected dependencies (clock, random): never for the system under test. */
import type { Clock, Random } from '../../proxy/clock.js';

export interface FakeClock extends Clock {
  advance(ms: number): void;
}

export function fakeClock(start = 1_000_000): FakeClock {
  let t = start;
  return {
    now: () => t,
    monotonic: () => t,
    advance(ms) {
      t += ms;
    },
  };
}

/** A random source that replays `values` in a loop. */
export function sequence(values: readonly number[]): Random {
  let i = 0;
  return () => values[i++ % values.length]!;
}
