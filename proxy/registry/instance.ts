/**
 * One live endpoint of a service, and the codecs between it and znode data.
 *
 * Reading accepts every format the tree may hold (ours; JSON with `ip` for `host`, as older
 * writers did; a plain URL string, the legacy form). A znode that fits none is reported with a
 * reason, so the caller can isolate it instead of failing its whole service.
 */
import net from 'node:net';

export type Protocol = 'http' | 'https';
export type InstanceFormat = 'puttu' | 'ip' | 'url';

export interface Instance {
  /** The znode's name, unique within its service. */
  readonly id: string;
  readonly service: string;
  readonly format: InstanceFormat;
  readonly protocol: Protocol;
  readonly host: string;
  readonly port: number;
  /** Base path on the endpoint, normalised: '' or '/a/b' (never a trailing slash). */
  readonly api: string;
  /** `protocol://host:port`, IPv6 hosts bracketed: the key of the connection pool. */
  readonly origin: string;
  /** `origin + api`. */
  readonly url: string;
}

/** What `register()` accepts, and the core of what we write. */
export interface EndpointData {
  protocol: Protocol;
  host: string;
  port: number;
  api: string;
}

export type DecodeResult = { ok: true; instance: Instance } | { ok: false; reason: string };

/** ZooKeeper allows 1 MiB; no endpoint description needs more than this. */
export const MAX_ZNODE_DATA_BYTES = 16 * 1024;

export function decodeInstance(service: string, id: string, data: Buffer | undefined): DecodeResult {
  if (data === undefined || data.length === 0) return fail('empty data');
  if (data.length > MAX_ZNODE_DATA_BYTES) return fail(`data is ${data.length} bytes, over ${MAX_ZNODE_DATA_BYTES}`);
  const text = data.toString('utf8').trim();
  if (text.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return fail('not valid JSON');
    }
    return fromJson(service, id, parsed as Record<string, unknown>);
  }
  if (text.startsWith('"')) {
    // A JSON-quoted URL string, as some writers serialise the legacy form.
    try {
      const inner: unknown = JSON.parse(text);
      if (typeof inner === 'string') return fromUrl(service, id, inner);
    } catch {
      /* fall through */
    }
    return fail('not valid JSON');
  }
  return fromUrl(service, id, text);
}

function fromJson(service: string, id: string, obj: Record<string, unknown>): DecodeResult {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return fail('JSON is not an object');
  const hasHost = obj.host !== undefined;
  const host = hasHost ? obj.host : obj.ip;
  const format: InstanceFormat = hasHost ? 'puttu' : 'ip';
  const checked = validateEndpoint({
    protocol: obj.protocol ?? 'http',
    host,
    port: obj.port,
    api: obj.api ?? '',
  });
  if (typeof checked === 'string') return fail(checked);
  return { ok: true, instance: makeInstance(service, id, format, checked) };
}

function fromUrl(service: string, id: string, text: string): DecodeResult {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail('neither JSON nor a URL');
  }
  if (url.username || url.password) return fail('URL carries credentials');
  if (url.search || url.hash) return fail('URL carries a query or fragment');
  const protocol = url.protocol.slice(0, -1);
  const port = url.port === '' ? (protocol === 'https' ? 443 : 80) : Number(url.port);
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  // The path stays percent-encoded, as the JSON form stores it: decoding would turn '%2F' into a
  // real slash (another path) and '%20' into a space (rejected). normalizeApi still checks each
  // decoded segment for dot segments and encoded slashes.
  const checked = validateEndpoint({ protocol, host, port, api: url.pathname });
  if (typeof checked === 'string') return fail(checked);
  return { ok: true, instance: makeInstance(service, id, 'url', checked) };
}

/** Checks and normalises endpoint data; returns a reason string when it is unacceptable. */
export function validateEndpoint(d: { protocol: unknown; host: unknown; port: unknown; api: unknown }): EndpointData | string {
  if (d.protocol !== 'http' && d.protocol !== 'https') return `protocol must be "http" or "https", got ${show(d.protocol)}`;
  if (typeof d.host !== 'string' || !isValidHost(d.host)) return `host must be an IP address or a DNS name, got ${show(d.host)}`;
  const port = typeof d.port === 'string' && /^\d{1,5}$/.test(d.port) ? Number(d.port) : d.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    return `port must be an integer from 1 to 65535, got ${show(d.port)}`;
  }
  const api = normalizeApi(d.api);
  if (api === undefined) return `api must be a path such as "/warehouse/v1", got ${show(d.api)}`;
  return { protocol: d.protocol, host: d.host, port, api };
}

/** '' | '/' → ''; '/a/b/' → '/a/b'; rejects anything that is not a plain absolute path. */
export function normalizeApi(api: unknown): string | undefined {
  if (typeof api !== 'string') return undefined;
  if (api === '' || api === '/') return '';
  if (!api.startsWith('/') || api.length > 1024) return undefined;
  // No query, fragment, backslash, control or space characters; no dot segments.
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

export function makeInstance(service: string, id: string, format: InstanceFormat, d: EndpointData): Instance {
  const hostPart = net.isIPv6(d.host) ? `[${d.host}]` : d.host;
  const origin = `${d.protocol}://${hostPart}:${d.port}`;
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
  });
}

/** Our canonical znode data: the endpoint plus who wrote it and when. */
export interface RegistrationRecord extends EndpointData {
  /** A random id per registration: lets a new session recognise (and delete) its own stale node. */
  id: string;
  registrationTimeUTC: number;
}

export function encodeRegistration(record: RegistrationRecord): Buffer {
  const { protocol, host, port, api, id, registrationTimeUTC } = record;
  return Buffer.from(JSON.stringify({ protocol, host, port, api, id, registrationTimeUTC }));
}

/** The registration id inside znode data we wrote, if any (used to find our own stale nodes). */
export function registrationIdOf(data: Buffer | undefined): string | undefined {
  if (!data || data.length > MAX_ZNODE_DATA_BYTES) return undefined;
  try {
    const obj: unknown = JSON.parse(data.toString('utf8'));
    const id = (obj as { id?: unknown } | null)?.id;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}

function fail(reason: string): DecodeResult {
  return { ok: false, reason };
}

function show(v: unknown): string {
  const s = typeof v === 'string' ? JSON.stringify(v) : v === undefined ? 'nothing' : JSON.stringify(v) ?? String(v);
  return s.length > 60 ? s.slice(0, 57) + '...' : s;
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
