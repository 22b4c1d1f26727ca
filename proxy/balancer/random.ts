import { pickIndex, type Random } from '../clock.js';
import type { Balancer, Weighted } from './balancer.js';
import { createWeightCache, weightedIndex } from './weights.js';

/**
 * Random choice in proportion to the weights: O(1) when they are all equal (the usual case), a
 * binary search over the list's cumulative weights otherwise. The default strategy.
 */
export function createRandomBalancer(options: { random?: Random } = {}): Balancer {
  const random = options.random ?? Math.random;
  const tableOf = createWeightCache();
  return {
    pick<T extends Weighted>(instances: readonly T[]): T {
      if (instances.length === 1) return instances[0]!;
      const table = tableOf(instances);
      return instances[table.uniform ? pickIndex(random, instances.length) : weightedIndex(table, random)]!;
    },
  };
}
