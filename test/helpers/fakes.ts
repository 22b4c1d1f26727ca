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

/** A seeded source (mulberry32): the same draws on every run, so shares measured over it cannot flake. */
export function seeded(seed: number): Random {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
