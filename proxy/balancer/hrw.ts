/**
 * Weighted rendezvous hashing (highest random weight, Thaler & Ravishankar; weighted as in
 * Schindelhauer & Schomaker): every instance scores a key with `-weight / ln(u)`, u a hash of
 * (key, instance id) in (0, 1), and the highest score wins. A key keeps its instance while that
 * instance is there; when one of N leaves or joins only the keys it wins or won move (about 1/N),
 * and a key whose instance is unavailable goes to the next in its own order, never to an error.
 * Pure: the instances' ids and weights are all it reads.
 */
import { weightOf, type Weighted } from './weights.js';

export interface Keyed extends Weighted {
  readonly id: string;
}

/** FNV-1a over a string's UTF-16 code units: a 32-bit seed. */
export function hashString(s: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** murmur3's finaliser: every input bit reaches every output bit. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A key's point in [0, 1) for `salt`: the same key always lands on the same point (canary sides). */
export function unitOf(key: string, salt: number): number {
  return mix(hashString(key) ^ Math.imul(salt, 0x9e3779b1)) / 4294967296;
}

const idHashes = new WeakMap<object, number>();

function idHash(instance: Keyed): number {
  let h = idHashes.get(instance);
  if (h === undefined) {
    h = hashString(instance.id);
    idHashes.set(instance, h);
  }
  return h;
}

/** The instance's score for a key hash (higher wins). */
export function score(keyHash: number, instance: Keyed): number {
  const a = mix(keyHash ^ Math.imul(idHash(instance), 0x9e3779b1));
  const b = mix(a ^ 0x27d4eb2f);
  // 52 bits of (0, 1): never 0 or 1, so the logarithm is finite and negative.
  const u = ((a >>> 6) * 67108864 + (b >>> 6) + 0.5) / 4503599627370496;
  const w = weightOf(instance);
  return w === 0 ? -Infinity : -w / Math.log(u);
}

/** The winner for `key` among `instances`, skipping `skip` (tried ones); undefined when none is left. */
export function rendezvous<T extends Keyed>(instances: readonly T[], key: string, skip?: readonly T[]): T | undefined {
  const keyHash = hashString(key);
  let best: T | undefined;
  let bestScore = -Infinity;
  for (const instance of instances) {
    if (skip?.includes(instance)) continue;
    const s = score(keyHash, instance);
    if (best === undefined || s > bestScore) {
      best = instance;
      bestScore = s;
    }
  }
  return best;
}

/** Every instance in the key's order, best first (for explanations). */
export function rendezvousOrder<T extends Keyed>(instances: readonly T[], key: string): T[] {
  const keyHash = hashString(key);
  return instances
    .map((i) => ({ i, s: score(keyHash, i) }))
    .sort((x, y) => y.s - x.s)
    .map((x) => x.i);
}
