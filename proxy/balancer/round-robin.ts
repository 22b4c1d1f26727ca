import { pickIndex, type Random } from '../clock.js';
import type { Balancer } from './balancer.js';

/**
 * Each instance in turn. The cursor belongs to the snapshot's array, so a registry change starts a
 * new rotation; it starts at a random place so many proxies do not hit the same instance first.
 */
export function createRoundRobinBalancer(options: { random?: Random } = {}): Balancer {
  const random = options.random ?? Math.random;
  const cursors = new WeakMap<readonly object[], number>();
  return {
    pick<T extends object>(instances: readonly T[]): T {
      const n = cursors.get(instances) ?? pickIndex(random, instances.length);
      cursors.set(instances, n + 1);
      return instances[n % instances.length]!;
    },
  };
}
