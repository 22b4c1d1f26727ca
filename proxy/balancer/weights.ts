/**
 * Instance weights as the balancers read them: `weight` (0–1000, default 1) scales an instance's
 * share. The table of a list is computed once per array (snapshot or routable list) and reused
 * for every pick from it; a list whose weights are all equal is marked uniform, so the pickers
 * keep their unweighted O(1) paths and a service without weights pays one identity check.
 */
import type { Random } from '../clock.js';

/** What a balancer reads of an instance: its relative share (absent: 1). */
export interface Weighted {
  readonly weight?: number;
}

export interface WeightTable {
  /** Every weight equal: pick uniformly. */
  readonly uniform: boolean;
  /** Sum of the weights. */
  readonly total: number;
  /** cumulative[i] = weight[0] + … + weight[i]. */
  readonly cumulative: Float64Array;
  readonly weights: Float64Array;
}

/** An instance's effective weight (default 1, never negative). */
export function weightOf(instance: Weighted): number {
  const w = instance.weight;
  return w === undefined ? 1 : Math.max(w, 0);
}

export function buildWeightTable(instances: readonly Weighted[]): WeightTable {
  const n = instances.length;
  const weights = new Float64Array(n);
  const cumulative = new Float64Array(n);
  let total = 0;
  let uniform = true;
  for (let i = 0; i < n; i++) {
    const w = weightOf(instances[i]!);
    weights[i] = w;
    total += w;
    cumulative[i] = total;
    if (w !== weights[0]) uniform = false;
  }
  // All zero (every instance unroutable by weight, as the registry never publishes): equal shares.
  if (total === 0) return buildWeightTable(instances.map(() => ({ weight: 1 })));
  return { uniform, total, cumulative, weights };
}

/**
 * Weight tables by list identity. The last list asked for is kept beside the WeakMap: the usual
 * request asks for the same list as the one before it.
 */
export function createWeightCache(): (instances: readonly Weighted[]) => WeightTable {
  const tables = new WeakMap<readonly Weighted[], WeightTable>();
  let lastList: readonly Weighted[] | undefined;
  let lastTable: WeightTable | undefined;
  return (instances) => {
    if (instances === lastList) return lastTable!;
    let table = tables.get(instances);
    if (table === undefined) {
      table = buildWeightTable(instances);
      tables.set(instances, table);
    }
    lastList = instances;
    lastTable = table;
    return table;
  };
}

/** The index whose cumulative range holds `x` (0 ≤ x < total): binary search. */
export function indexAt(table: WeightTable, x: number): number {
  const c = table.cumulative;
  let lo = 0;
  let hi = c.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (x < c[mid]!) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** An index drawn with probability weight/total. */
export function weightedIndex(table: WeightTable, random: Random): number {
  const x = random() * table.total;
  return indexAt(table, x < 0 ? 0 : x >= table.total ? table.total - Number.EPSILON * table.total : x);
}

/** An index other than `skip`, drawn with probability weight/(total - weight[skip]). */
export function weightedIndexExcept(table: WeightTable, random: Random, skip: number): number {
  const rest = table.total - table.weights[skip]!;
  if (rest <= 0) return skip === 0 ? 1 : 0;
  let x = random() * rest;
  if (x < 0) x = 0;
  if (x >= rest) x = rest * (1 - Number.EPSILON);
  // The range of `skip` is cut out: what lies past it moves up by its weight.
  const start = skip === 0 ? 0 : table.cumulative[skip - 1]!;
  if (x >= start) x += table.weights[skip]!;
  const i = indexAt(table, x);
  return i === skip ? (skip + 1 < table.weights.length ? skip + 1 : skip - 1) : i;
}
