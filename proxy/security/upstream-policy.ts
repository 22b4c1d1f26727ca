/**
 * Which upstream addresses the proxy may dial: the defence against registry poisoning. Anyone who
 * can write a znode could otherwise point the proxy at a cloud metadata service or back at itself.
 *
 * - `deny` networks are never dialled; by default link-local and cloud metadata addresses
 *   (169.254.0.0/16 — where 169.254.169.254 lives —, fe80::/10, fd00:ec2::254, 100.100.100.200).
 * - `allow` networks, when given, are the only ones dialled.
 * - `ports`: allowed port ranges.
 * - The proxy's own listeners (on loopback, unspecified or local interface addresses) are refused,
 *   so a registration cannot make the proxy call itself in a loop.
 *
 * IP literals are checked when the registry reads an instance (refused instances are counted and
 * never routed); DNS names are checked on every resolution, before any connection is opened.
 */
import net from 'node:net';
import dns from 'node:dns';
import os from 'node:os';
import { UpstreamPolicyError } from '../errors.js';

export const DEFAULT_DENY = '169.254.0.0/16,fe80::/10,fd00:ec2::254/128,100.100.100.200/32';

export interface UpstreamPolicyOptions {
  /** Comma-separated CIDRs; empty: every network not denied. */
  allow: string;
  /** Comma-separated CIDRs never dialled. */
  deny: string;
  /** Comma-separated ports or ranges, e.g. "80,443,8000-8999"; empty: all. */
  ports: string;
}

export interface UpstreamPolicy {
  /** Why `host:port` is refused, or undefined when allowed. `host` may be a DNS name (checked later). */
  check(host: string, port: number): string | undefined;
  /** The same for an address a DNS name resolved to. */
  checkAddress(address: string, port: number): string | undefined;
  /** The proxy's own ports, once its listeners are bound. */
  setOwnPorts(ports: readonly number[]): void;
}

export function parseCidrs(list: string, key: string): net.BlockList {
  const block = new net.BlockList();
  for (const raw of list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [ip, prefix] = raw.split('/');
    const family = net.isIP(ip ?? '');
    const bits = prefix === undefined ? (family === 6 ? 128 : 32) : Number(prefix);
    if (family === 0 || !Number.isInteger(bits) || bits < 0 || bits > (family === 6 ? 128 : 32)) {
      throw new Error(`${key}: "${raw}" is not a network such as 10.0.0.0/8 or fd00::/8`);
    }
    block.addSubnet(ip!, bits, family === 6 ? 'ipv6' : 'ipv4');
  }
  return block;
}

export function parsePorts(list: string, key: string): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  for (const raw of list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(raw);
    const lo = Number(m?.[1]);
    const hi = m?.[2] === undefined ? lo : Number(m[2]);
    if (!m || lo < 1 || hi > 65535 || lo > hi) throw new Error(`${key}: "${raw}" is not a port or a range such as 8000-8999`);
    ranges.push([lo, hi]);
  }
  return ranges;
}

export function createUpstreamPolicy(options: UpstreamPolicyOptions): UpstreamPolicy {
  const allow = options.allow.trim() === '' ? undefined : parseCidrs(options.allow, 'allowNetworks');
  const deny = parseCidrs(options.deny, 'denyNetworks');
  const ports = parsePorts(options.ports, 'allowPorts');
  let own = new Set<number>();

  function checkAddress(address: string, port: number): string | undefined {
    const ip = unmap(address);
    const type = net.isIPv6(ip) ? 'ipv6' : 'ipv4';
    if (deny.check(ip, type)) return `address ${ip} is in a denied network`;
    if (allow && !allow.check(ip, type)) return `address ${ip} is outside the allowed networks`;
    if (own.has(port) && isLocal(ip)) return `${ip}:${port} is the proxy's own listener`;
    return undefined;
  }

  return {
    check(host, port) {
      if (ports.length > 0 && !ports.some(([lo, hi]) => port >= lo && port <= hi)) return `port ${port} is not allowed`;
      if (net.isIP(unmap(host)) !== 0) return checkAddress(host, port);
      if (own.has(port) && host.toLowerCase() === 'localhost') return `localhost:${port} is the proxy's own listener`;
      return undefined;
    },
    checkAddress,
    setOwnPorts(p) {
      own = new Set(p.filter((n) => n > 0));
    },
  };
}

/** `::ffff:169.254.169.254` is 169.254.169.254. */
function unmap(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

function isLocal(ip: string): boolean {
  if (ip === '0.0.0.0' || ip === '::' || ip === '::1' || ip.startsWith('127.')) return true;
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) if (a.address === ip) return true;
  return false;
}

/**
 * A `lookup` for sockets to upstreams: resolves as usual, then refuses (UpstreamPolicyError)
 * any address the policy forbids, so nothing is dialled.
 */
export function policyLookup(policy: UpstreamPolicy, port: number): net.LookupFunction {
  return ((
    hostname: string,
    options: dns.LookupOptions,
    callback: (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void,
  ) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const allowed = addresses.filter((a) => policy.checkAddress(a.address, port) === undefined);
      if (allowed.length === 0) {
        return callback(new UpstreamPolicyError(), '', 0);
      }
      if (options.all) callback(null, allowed);
      else callback(null, allowed[0]!.address, allowed[0]!.family);
    });
  }) as net.LookupFunction;
}
