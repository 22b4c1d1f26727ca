import type { Random } from '../clock.js';
import type { Balancer } from './balancer.js';
import type { LoadSignals } from './balancer.js';
import { createP2cBalancer } from './p2c.js';
import { createRandomBalancer } from './random.js';
import { createRoundRobinBalancer } from './round-robin.js';

export type { Balancer } from './balancer.js';

export interface BalancerDeps {
  random: Random;
  inflight: LoadSignals;
}

/** Strategies by name: the one list `--balancer`, `--service-balancers` and config validation read. */
export const BALANCERS = {
  random: (deps: BalancerDeps): Balancer => createRandomBalancer(deps),
  'round-robin': (deps: BalancerDeps): Balancer => createRoundRobinBalancer(deps),
  p2c: (deps: BalancerDeps): Balancer => createP2cBalancer(deps),
} as const satisfies Record<string, (deps: BalancerDeps) => Balancer>;

export type BalancerName = keyof typeof BALANCERS;
export const BALANCER_NAMES = Object.keys(BALANCERS) as BalancerName[];

/** `svc=p2c,other=round-robin` → map; throws naming the bad entry. */
export function parseServiceBalancers(spec: string): Map<string, BalancerName> {
  const map = new Map<string, BalancerName>();
  for (const entry of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [service, name] = entry.split('=').map((s) => s.trim());
    if (!service || !name || !(BALANCER_NAMES as string[]).includes(name)) {
      throw new Error(`"${entry}" is not service=strategy with a strategy among ${BALANCER_NAMES.join(', ')}`);
    }
    map.set(service, name as BalancerName);
  }
  return map;
}
