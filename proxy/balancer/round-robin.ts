import { pickIndex, type Random } from '../clock.js';
import type { Balancer, Weighted } from './balancer.js';
import { createWeightCache, type WeightTable } from './weights.js';

/**
 * Each instance in turn; with unequal weights, smooth weighted round-robin (as nginx does): every
 * pick adds each instance's weight to its running score, the highest score wins and gives back the
 * total, so weights 1 and 3 go b b a b rather than a b b b, spread evenly over each round.
 *
 * The state belongs to the snapshot's array, so a registry change starts a new rotation; it starts
 * at a random place so many proxies do not hit the same instance first.
 */
export function createRoundRobinBalancer(options: { random?: Random } = {}): Balancer {
  const random = options.random ?? Math.random;
  const cursors = new WeakMap<readonly object[], number>();
  const smooth = new WeakMap<readonly object[], Smooth>();
  const tableOf = createWeightCache();
  return {
    pick<T extends Weighted>(instances: readonly T[]): T {
      const table = tableOf(instances);
      if (!table.uniform) {
        let state = smooth.get(instances);
        if (state === undefined) {
          state = { scores: new Float64Array(instances.length), start: pickIndex(random, instances.length) };
          smooth.set(instances, state);
        }
        return instances[smoothPick(table, state)]!;
      }
      const n = cursors.get(instances) ?? pickIndex(random, instances.length);
      cursors.set(instances, n + 1);
      return instances[n % instances.length]!;
    },
  };
}

interface Smooth {
  scores: Float64Array;
  /** Where ties start to be broken: a random place per list. */
  start: number;
}

function smoothPick(table: WeightTable, state: Smooth): number {
  const { scores, start } = state;
  const n = scores.length;
  let best = -1;
  let bestScore = -Infinity;
  for (let k = 0; k < n; k++) {
    const i = (start + k) % n;
    const score = scores[i]! + table.weights[i]!;
    scores[i] = score;
    if (score > bestScore) {
      bestScore = score;
      best = i;
    }
  }
  scores[best]! -= table.total;
  return best;
}
