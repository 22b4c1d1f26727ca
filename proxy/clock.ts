/** Time, passed in (not read from globals) where behaviour depends on it, so tests can pin it. */
export interface Clock {
  /** Milliseconds since the epoch (wall clock): for timestamps shown to people. */
  now(): number;
  /** Monotonic milliseconds: for durations and staleness; never goes backwards. */
  monotonic(): number;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
};

/** A random source in [0, 1), injected so tests can pin choices. */
export type Random = () => number;

/** An index in [0, n) chosen uniformly; clamps a source that returns 1 by mistake. */
export function pickIndex(random: Random, n: number): number {
  const i = Math.floor(random() * n);
  return Math.min(n - 1, Math.max(0, i));
}
