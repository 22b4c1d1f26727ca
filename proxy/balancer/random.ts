import { pickIndex, type Random } from '../clock.js';
import type { Balancer } from './balancer.js';

/** Uniform random choice: O(1), stateless; the default strategy. */
export function createRandomBalancer(options: { random?: Random } = {}): Balancer {
  const random = options.random ?? Math.random;
  return { pick: <T extends object>(instances: readonly T[]): T => instances[pickIndex(random, instances.length)]! };
}
