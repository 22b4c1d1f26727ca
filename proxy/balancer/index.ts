import type { Random } from '../clock.js';
import type { Balancer } from './balancer.js';
import { createRandomBalancer } from './random.js';

export type { Balancer } from './balancer.js';

export interface BalancerDeps {
  random: Random;
}

/** Strategies by name (STYLE.md §5); config validates against these names. */
export const BALANCERS = {
  random: (deps: BalancerDeps): Balancer => createRandomBalancer(deps),
} as const satisfies Record<string, (deps: BalancerDeps) => Balancer>;

export type BalancerName = keyof typeof BALANCERS;
export const BALANCER_NAMES = Object.keys(BALANCERS) as BalancerName[];
