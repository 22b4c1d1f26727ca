/**
 * What every format decoder shares: checking an endpoint (protocol, host, port, api), building the
 * frozen Instance, and the small field readers behind the per-format rules.
 *
 * Fields that decide where or whether traffic goes (host, port, protocol, api, status, enabled,
 * weight) are checked strictly: a wrong one rejects the znode with a reason. Descriptive fields
 * (metadata, shard, a serverset's additional endpoints) are read leniently: a malformed one is
 * left out, never a reason to drop a live endpoint. Unknown fields are ignored everywhere.
 */
import net from 'node:net';
import type { DecodeResult, EndpointData, Instance, InstanceFormat, NamedEndpoint } from '../instance.js';

/** Checks and normalises endpoint data; returns a reason string when it is unacceptable. */
export function validateEndpoint(d: { protocol: unknown; host: unknown; port: unknown; api: unknown }): EndpointData | string {
  if (d.protocol !== 'http' && d.protocol !== 'https' && d.protocol !== 'h2c' && d.protocol !== 'h2') {
    return `protocol must be "http", "https", "h2c" or "h2", got ${show(d.protocol)}`;
  }
  if (typeof d.host !== 'string' || !isValidHost(d.host)) return `host must be an IP address or a DNS name, got ${show(d.host)}`;
  const port = checkPort(d.port);
  if (typeof port === 'string') return port;
  const api = normalizeApi(d.api);
  if (api === undefined) return `api must be a path such as "/warehouse/v1", got ${show(d.api)}`;
  return { protocol: d.protocol, host: d.host, port, api };
}

/** The URL scheme of a protocol: HTTP/2 over TCP is http, over TLS https. */
export function schemeOf(protocol: EndpointData['protocol']): 'http' | 'https' {
  return protocol === 'h2c' || protocol === 'http' ? 'http' : 'https';
}

/** A port number (a numeric string too, as some writers store it), or why not. */
export function checkPort(value: unknown): number | string {
  const port = typeof value === 'string' && /^\d{1,5}$/.test(value) ? Number(value) : value;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    return `port must be an integer from 1 to 65535, got ${show(value)}`;
  }
  return port;
}

/** '' | '/' → ''; '/a/b/' → '/a/b'; rejects anything that is not a plain absolute path. */
export function normalizeApi(api: unknown): string | undefined {
  if (typeof api !== 'string') return undefined;
  if (api === '' || api === '/') return '';
  if (!api.startsWith('/') || api.length > 1024) return undefined;
  // No query, fragment, backslash, control or space characters; no dot segments.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
  if (/[?#\\\s\x00-\x1f\x7f]/.test(api)) return undefined;
  const segments = api.split('/').filter((s) => s !== '');
  for (const s of segments) {
    const d = decodeURIComponentSafe(s); // percent-encoded dots and slashes are dots and slashes too
    if (d === '.' || d === '..' || d.includes('/') || d.includes('\\')) return undefined;
  }
  return '/' + segments.join('/');
}

const DNS_NAME = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

export function isValidHost(host: string): boolean {
  return net.isIP(host) !== 0 || DNS_NAME.test(host);
}

/** What a format may know beyond the endpoint itself. */
export interface InstanceExtras {
  weight?: number;
  metadata?: Readonly<Record<string, string>>;
  status?: string;
  shard?: number;
  endpoints?: Readonly<Record<string, NamedEndpoint>>;
}

const NO_METADATA: Readonly<Record<string, string>> = Object.freeze({});

export function makeInstance(service: string, id: string, format: InstanceFormat, d: EndpointData, extras: InstanceExtras = {}): Instance {
  const origin = `${schemeOf(d.protocol)}://${bracketed(d.host)}:${d.port}`;
  return Object.freeze({
    id,
    service,
    format,
    protocol: d.protocol,
    host: d.host,
    port: d.port,
    api: d.api,
    origin,
    url: origin + d.api,
    weight: extras.weight ?? 1,
    metadata: extras.metadata ?? NO_METADATA,
    status: extras.status ?? 'UP',
    ...(extras.shard !== undefined && { shard: extras.shard }),
    ...(extras.endpoints !== undefined && { endpoints: extras.endpoints }),
  });
}

export function bracketed(host: string): string {
  return net.isIPv6(host) ? `[${host}]` : host;
}

/** A decoded instance, routable unless `inactive` says why it must get no traffic. */
export function decoded(instance: Instance, inactive: string | undefined): DecodeResult {
  return inactive === undefined ? { ok: true, instance } : { ok: true, instance, inactive };
}

export function fail(reason: string): DecodeResult {
  return { ok: false, reason };
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export const MAX_WEIGHT = 1000;

/**
 * A weight as read from the tree: absent → 1; an integer 0–1000 otherwise. 0 is valid and means
 * "no new traffic", as HAProxy reads a server weight of 0 (Nerve's weight ends up there).
 */
export function readWeight(value: unknown): number | string {
  if (value === undefined || value === null) return 1;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_WEIGHT) {
    return `weight must be an integer from 0 to ${MAX_WEIGHT}, got ${show(value)}`;
  }
  return value;
}

/**
 * A weight a format carries as a descriptive field (Curator/Spring metadata, where every value is a
 * string, or a serverset's optional `weight`): used when it is an integer 0–1000, as a number or
 * in digits; anything else is not a weight and leaves the default, 1.
 */
export function lenientWeight(value: unknown): number {
  const n = typeof value === 'string' && /^\s*\d{1,4}\s*$/.test(value) ? Number(value) : value;
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= MAX_WEIGHT ? n : 1;
}

/** The string-valued entries of an object (others left out); an empty map for anything else. */
export function stringEntries(value: unknown): Readonly<Record<string, string>> {
  if (!isObject(value)) return NO_METADATA;
  const out: Record<string, string> = {};
  let any = false;
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === 'string') {
      out[k] = v;
      any = true;
    }
  }
  return any ? Object.freeze(out) : NO_METADATA;
}

export function show(v: unknown): string {
  const s = typeof v === 'string' ? JSON.stringify(v) : v === undefined ? 'nothing' : (JSON.stringify(v) ?? String(v));
  return s.length > 60 ? s.slice(0, 57) + '...' : s;
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
