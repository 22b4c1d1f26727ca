/**
 * Applies a service's traffic policy to one request: split (canary) → zone preference → sticky
 * rendezvous or the policy's balancer. Everything that depends only on the policy and the list of
 * instances (the split's groups, the local subsets) is computed once per list and policy version
 * and kept by list identity; a request computes its key and walks a few cached arrays.
 *
 * Services without a policy never come here (forward/resolve.ts): they cost nothing.
 */
import type { Balancer } from '../balancer/balancer.js';
import { BALANCERS, type BalancerDeps, type BalancerName } from '../balancer/index.js';
import { rendezvous, unitOf } from '../balancer/hrw.js';
import type { Random } from '../clock.js';
import type { Instance } from '../registry/instance.js';
import type { PolicyState } from '../registry/policies.js';
import type { SplitRule, StickyKey, TrafficPolicy } from './policy.js';

/** Salt of the canary side a sticky key lands on (independent of its instance order). */
const SPLIT_SALT = 0x5b117;

/** What routing decided and why: filled in when asked for (explain), never on the plain path. */
export interface RouteDetail {
  /** The rules that shaped the choice, in order: split, zone, sticky (or balancer). */
  rules: string[];
  split?: { side: string; point: number | null; byKey: boolean };
  zone?: { zone: string; local: boolean; healthyPercent: number | null };
  sticky?: { key: string | undefined };
  /** Instances left to choose from after split and zone. */
  candidates?: readonly Instance[];
}

export interface CompiledPolicy {
  readonly version: number | undefined;
  readonly policy: TrafficPolicy;
  /** The policy's own strategy; undefined: the flags'. */
  readonly balancer: Balancer | undefined;
  readonly upstreamTimeoutMs: number | undefined;
  readonly maxAttempts: number | undefined;
  readonly stripPrefix: boolean;
  readonly explain: boolean;
  /** The request's sticky key from its raw header list, when the policy is sticky and the request has one. */
  keyOf(rawHeaders: readonly string[]): string | undefined;
  /**
   * The instance for a request: `routable` (outlier detection's list), `all` (the snapshot),
   * never one of `tried` while another is left. Undefined when every instance was tried.
   * With `detail` (an explanation) nothing is drawn: without a key the result is undefined and
   * `detail.candidates` holds what a request would choose among.
   */
  route(
    routable: readonly Instance[],
    all: readonly Instance[],
    key: string | undefined,
    fallback: Balancer,
    tried?: readonly Instance[],
    detail?: RouteDetail,
  ): Instance | undefined;
}

interface Prepared {
  /** One list per split rule, then the rest. */
  groups: Instance[][];
  /** The local-zone members of each group. */
  local: Instance[][];
  /** Local instances in the routable list. */
  localRoutable: number;
}

export interface CompileDeps extends BalancerDeps {
  /** The proxy's own zone (`--zone`); '' when unset. */
  zone: string;
  random: Random;
}

/** The zone an instance says it is in: its metadata `zone` (ours, Spring's, Nerve's labels). */
export const zoneOf = (i: Instance): string | undefined => i.metadata?.zone;

export function compilePolicy(state: PolicyState, deps: CompileDeps): CompiledPolicy | undefined {
  const policy = state.policy;
  if (policy === undefined) return undefined;
  const { random } = deps;
  const localZone = policy.zone !== undefined && deps.zone !== '' ? deps.zone : undefined;
  const minHealthy = policy.zone?.minHealthyPercent ?? 50;
  const split = policy.split;
  const prepared = new WeakMap<readonly Instance[], Prepared>();
  const localCounts = new WeakMap<readonly Instance[], number>();
  const balancer = policy.balancer === undefined ? undefined : buildBalancer(policy.balancer, deps);

  function prepare(routable: readonly Instance[]): Prepared {
    let p = prepared.get(routable);
    if (p !== undefined) return p;
    const groups: Instance[][] = split === undefined ? [routable as Instance[]] : splitGroups(split, routable);
    const local = groups.map((g) => (localZone === undefined ? [] : g.filter((i) => zoneOf(i) === localZone)));
    p = { groups, local, localRoutable: localZone === undefined ? 0 : routable.filter((i) => zoneOf(i) === localZone).length };
    prepared.set(routable, p);
    return p;
  }

  function localCount(all: readonly Instance[]): number {
    let n = localCounts.get(all);
    if (n === undefined) {
      n = all.filter((i) => zoneOf(i) === localZone).length;
      localCounts.set(all, n);
    }
    return n;
  }

  const keyOf = stickyKeyReader(policy.sticky);

  return {
    version: state.version,
    policy,
    balancer,
    upstreamTimeoutMs: policy.upstreamTimeoutMs,
    maxAttempts: policy.maxAttempts,
    stripPrefix: policy.stripPrefix ?? true,
    explain: policy.explain ?? false,
    keyOf,
    route(routable, all, key, fallback, tried, detail) {
      const p = prepare(routable);
      let g = 0;
      // An explanation without a key draws nothing: it shows the candidates a draw chooses among.
      const dry = detail !== undefined && key === undefined;
      if (split !== undefined && dry) {
        g = -1;
        detail.rules.push('split');
        detail.split = { side: 'a random draw per request', point: null, byKey: false };
      } else if (split !== undefined) {
        const point = (key !== undefined ? unitOf(key, SPLIT_SALT) : random()) * 100;
        let edge = 0;
        g = split.length; // the rest
        for (let r = 0; r < split.length; r++) {
          edge += split[r]!.percent;
          if (point < edge) {
            g = r;
            break;
          }
        }
        const chosen = g;
        // An empty side sends its share to the rest; an empty rest to every routable instance.
        if (p.groups[g]!.length === 0) g = p.groups[split.length]!.length > 0 ? split.length : -1;
        if (detail) {
          detail.rules.push('split');
          detail.split = { side: sideName(chosen, split.length, g), point: Math.round(point * 1000) / 1000, byKey: key !== undefined };
        }
      }
      let list: readonly Instance[] = g === -1 ? routable : p.groups[g]!;
      if (localZone !== undefined) {
        const local = g === -1 ? routable.filter((i) => zoneOf(i) === localZone) : p.local[g]!;
        const inZone = localCount(all);
        const healthy = inZone === 0 ? 0 : (p.localRoutable * 100) / inZone;
        const useLocal = local.length > 0 && healthy >= minHealthy;
        if (useLocal) list = local;
        if (detail) {
          detail.rules.push('zone');
          detail.zone = { zone: localZone, local: useLocal, healthyPercent: inZone === 0 ? null : Math.round(healthy * 10) / 10 };
        }
      }
      if (tried !== undefined && tried.length > 0) {
        let left = list.filter((i) => !tried.includes(i));
        if (left.length === 0) left = routable.filter((i) => !tried.includes(i));
        if (left.length === 0) left = all.filter((i) => !tried.includes(i));
        if (left.length === 0) return undefined;
        list = left;
      }
      if (detail) detail.candidates = list;
      if (key !== undefined) {
        if (detail) {
          detail.rules.push('sticky');
          detail.sticky = { key };
        }
        return rendezvous(list, key);
      }
      if (detail) {
        detail.rules.push('balancer');
        if (policy.sticky) detail.sticky = { key: undefined };
        return undefined; // the balancer's choice is made per request, among the candidates
      }
      return (balancer ?? fallback).pick(list);
    },
  };
}

function sideName(chosen: number, rules: number, used: number): string {
  const name = (g: number) => (g === rules ? 'rest' : g === -1 ? 'all' : `split[${g}]`);
  return chosen === used ? name(chosen) : `${name(chosen)} (empty: ${name(used)})`;
}

/** Each instance in the first rule it matches, the others in the rest. */
function splitGroups(rules: readonly SplitRule[], routable: readonly Instance[]): Instance[][] {
  const groups: Instance[][] = rules.map(() => []);
  const rest: Instance[] = [];
  for (const i of routable) {
    const r = rules.findIndex((rule) => matches(rule, i));
    (r === -1 ? rest : groups[r]!).push(i);
  }
  groups.push(rest);
  return groups;
}

function matches(rule: SplitRule, i: Instance): boolean {
  const md = i.metadata ?? {};
  for (const k in rule.match.metadata) if (md[k] !== rule.match.metadata[k]) return false;
  return true;
}

const built = new WeakMap<BalancerDeps, Map<BalancerName, Balancer>>();

/** One balancer per strategy name and dependencies, shared by every policy that names it. */
function buildBalancer(name: BalancerName, deps: BalancerDeps): Balancer {
  let byName = built.get(deps);
  if (byName === undefined) built.set(deps, (byName = new Map()));
  let b = byName.get(name);
  if (b === undefined) byName.set(name, (b = BALANCERS[name](deps)));
  return b;
}

/** Reads the sticky key from a raw header list: the named header's first value, or the named cookie. */
function stickyKeyReader(sticky: StickyKey | undefined): (raw: readonly string[]) => string | undefined {
  if (sticky === undefined) return () => undefined;
  if ('header' in sticky) {
    const name = sticky.header;
    return (raw) => {
      for (let i = 0; i < raw.length; i += 2) {
        if (raw[i]!.length === name.length && raw[i]!.toLowerCase() === name) return raw[i + 1]! === '' ? undefined : raw[i + 1]!;
      }
      return undefined;
    };
  }
  const name = sticky.cookie;
  return (raw) => {
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.length !== 6 || raw[i]!.toLowerCase() !== 'cookie') continue;
      const value = cookieValue(raw[i + 1]!, name);
      if (value !== undefined) return value;
    }
    return undefined;
  };
}

/** The value of cookie `name` in a Cookie header (RFC 6265 §4.2: `a=1; b=2`). */
export function cookieValue(header: string, name: string): string | undefined {
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() !== name) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    return value === '' ? undefined : value;
  }
  return undefined;
}
