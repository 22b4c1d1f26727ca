/**
 * A service's traffic policy: the JSON document at `<policy path>/<service>` in ZooKeeper, checked
 * strictly when read (an unknown key or a wrong value refuses the whole document, with a reason
 * that names the field). Pure: parsing and validation only; the watcher is
 * registry/policies.ts, the routing that applies a policy is traffic/router.ts.
 *
 * ```json
 * {"balancer": "p2c",
 *  "sticky": {"header": "x-user"},
 *  "split": [{"match": {"metadata": {"track": "canary"}}, "percent": 5}],
 *  "zone": {"prefer": "local", "minHealthyPercent": 50},
 *  "upstreamTimeoutMs": 2000, "maxAttempts": 2, "stripPrefix": true, "explain": false}
 * ```
 */
import { BALANCER_NAMES, type BalancerName } from '../balancer/index.js';

export interface SplitRule {
  /** Instances whose metadata has every one of these entries. */
  readonly match: { readonly metadata: Readonly<Record<string, string>> };
  /** Share of the service's requests, 0–100 (fractions allowed). */
  readonly percent: number;
}

export type StickyKey = { readonly header: string } | { readonly cookie: string };

export interface ZonePreference {
  readonly prefer: 'local';
  /** Local instances are preferred while at least this share of them is healthy (default 50). */
  readonly minHealthyPercent: number;
}

export interface TrafficPolicy {
  readonly balancer?: BalancerName;
  readonly sticky?: StickyKey;
  readonly split?: readonly SplitRule[];
  readonly zone?: ZonePreference;
  readonly upstreamTimeoutMs?: number;
  readonly maxAttempts?: number;
  /** false: the upstream path keeps the `/<service>` segment. Default true. */
  readonly stripPrefix?: boolean;
  /** Responses carry Server-Timing and X-Puttu-Attempts. */
  readonly explain?: boolean;
}

/** A policy document is small; anything larger is refused unread. */
export const MAX_POLICY_BYTES = 64 * 1024;
const MAX_SPLIT_RULES = 16;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/;
const KEYS = ['balancer', 'sticky', 'split', 'zone', 'upstreamTimeoutMs', 'maxAttempts', 'stripPrefix', 'explain'] as const;

export type PolicyParse = { ok: true; policy: TrafficPolicy } | { ok: false; reason: string };

const show = (v: unknown) => (v === undefined ? 'nothing' : JSON.stringify(v)?.slice(0, 80));
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

class Invalid extends Error {}
function bad(message: string): never {
  throw new Invalid(message);
}

/** A policy document (znode data or a file) → the policy, or why it is refused. */
export function parsePolicy(data: Buffer | string): PolicyParse {
  const text = typeof data === 'string' ? data : data.toString('utf8');
  if (Buffer.byteLength(text) > MAX_POLICY_BYTES) return { ok: false, reason: `document is over ${MAX_POLICY_BYTES} bytes` };
  if (text.trim() === '') return { ok: false, reason: 'document is empty (expected a JSON object)' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return { ok: false, reason: `not valid JSON: ${(error as Error).message}` };
  }
  try {
    return { ok: true, policy: validatePolicy(parsed) };
  } catch (error) {
    if (error instanceof Invalid) return { ok: false, reason: error.message };
    throw error;
  }
}

function validatePolicy(doc: unknown): TrafficPolicy {
  if (!isObject(doc)) bad(`a policy is a JSON object, got ${show(doc)}`);
  for (const key of Object.keys(doc)) {
    if (!(KEYS as readonly string[]).includes(key)) bad(`unknown key "${key}" (known: ${KEYS.join(', ')})`);
  }
  const out: { -readonly [K in keyof TrafficPolicy]: TrafficPolicy[K] } = {};
  if (doc.balancer !== undefined) {
    if (typeof doc.balancer !== 'string' || !(BALANCER_NAMES as string[]).includes(doc.balancer))
      bad(`balancer must be one of ${BALANCER_NAMES.join(', ')}, got ${show(doc.balancer)}`);
    out.balancer = doc.balancer as BalancerName;
  }
  if (doc.sticky !== undefined) out.sticky = sticky(doc.sticky);
  if (doc.split !== undefined) out.split = split(doc.split);
  if (doc.zone !== undefined) out.zone = zone(doc.zone);
  if (doc.upstreamTimeoutMs !== undefined) out.upstreamTimeoutMs = int('upstreamTimeoutMs', doc.upstreamTimeoutMs, 1, 3_600_000);
  if (doc.maxAttempts !== undefined) out.maxAttempts = int('maxAttempts', doc.maxAttempts, 1, 10);
  for (const key of ['stripPrefix', 'explain'] as const) {
    if (doc[key] === undefined) continue;
    if (typeof doc[key] !== 'boolean') bad(`${key} must be true or false, got ${show(doc[key])}`);
    out[key] = doc[key];
  }
  return Object.freeze(out);
}

function int(key: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    bad(`${key} must be an integer from ${min} to ${max}, got ${show(v)}`);
  return v;
}

function sticky(v: unknown): StickyKey {
  if (!isObject(v)) bad(`sticky must be {"header": name} or {"cookie": name}, got ${show(v)}`);
  const keys = Object.keys(v);
  if (keys.length !== 1 || (keys[0] !== 'header' && keys[0] !== 'cookie'))
    bad(`sticky must have exactly one of "header" or "cookie", got ${show(v)}`);
  const kind = keys[0] as 'header' | 'cookie';
  const name = v[kind];
  if (typeof name !== 'string' || !TOKEN.test(name)) bad(`sticky.${kind} must be a ${kind} name (a token), got ${show(name)}`);
  return Object.freeze(kind === 'header' ? { header: name.toLowerCase() } : { cookie: name });
}

function split(v: unknown): readonly SplitRule[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_SPLIT_RULES)
    bad(`split must be a list of 1 to ${MAX_SPLIT_RULES} rules {"match": {"metadata": {…}}, "percent": n}, got ${show(v)}`);
  let total = 0;
  const rules = v.map((rule: unknown, i): SplitRule => {
    const at = `split[${i}]`;
    if (!isObject(rule)) bad(`${at} must be {"match": {"metadata": {…}}, "percent": n}, got ${show(rule)}`);
    for (const key of Object.keys(rule))
      if (key !== 'match' && key !== 'percent') bad(`${at}: unknown key "${key}" (known: match, percent)`);
    const match = rule.match;
    if (!isObject(match) || Object.keys(match).some((k) => k !== 'metadata') || !isObject(match.metadata))
      bad(`${at}.match must be {"metadata": {"key": "value", …}}, got ${show(match)}`);
    const entries = Object.entries(match.metadata);
    if (entries.length === 0) bad(`${at}.match.metadata must name at least one entry`);
    for (const [k, value] of entries)
      if (typeof value !== 'string') bad(`${at}.match.metadata["${k}"] must be a string, got ${show(value)}`);
    const percent = rule.percent;
    if (typeof percent !== 'number' || !Number.isFinite(percent) || percent < 0 || percent > 100)
      bad(`${at}.percent must be a number from 0 to 100, got ${show(percent)}`);
    total += percent;
    return Object.freeze({
      match: Object.freeze({ metadata: Object.freeze(Object.fromEntries(entries) as Record<string, string>) }),
      percent,
    });
  });
  if (total > 100 + 1e-9) bad(`split percents add up to ${total}, over 100`);
  return Object.freeze(rules);
}

function zone(v: unknown): ZonePreference {
  if (!isObject(v) || v.prefer !== 'local') bad(`zone must be {"prefer": "local"} (optionally "minHealthyPercent"), got ${show(v)}`);
  for (const key of Object.keys(v)) if (key !== 'prefer' && key !== 'minHealthyPercent') bad(`zone: unknown key "${key}"`);
  const min = v.minHealthyPercent === undefined ? 50 : v.minHealthyPercent;
  if (typeof min !== 'number' || !Number.isFinite(min) || min < 0 || min > 100)
    bad(`zone.minHealthyPercent must be a number from 0 to 100, got ${show(min)}`);
  return Object.freeze({ prefer: 'local', minHealthyPercent: min });
}
