/**
 * One endpoint of a service, and the codecs between it and znode data.
 *
 * Reading accepts every format the tree may hold, mixed freely within one service (detection by
 * shape, in the order documented in formats/detect.ts):
 *
 * | format      | data                                                               | not routed when          |
 * |-------------|--------------------------------------------------------------------|--------------------------|
 * | `puttu`     | ours: `{"protocol","host","port","api","status","weight",…}`       | status ≠ UP, weight 0    |
 * | `ip`        | ours with `ip` for `host`, as older writers did                    | (as ours)                |
 * | `url`       | a plain URL string, the legacy form                                | never                    |
 * | `curator`   | Apache Curator / Spring Cloud Zookeeper `ServiceInstance`          | enabled false, Spring's instance_status ≠ UP |
 * | `serverset` | Finagle / Aurora `{"serviceEndpoint","additionalEndpoints","status","shard"}` | status ≠ ALIVE |
 * | `nerve`     | Airbnb Nerve `{"host","port","name","weight"}`                     | weight 0                 |
 *
 * A znode that fits none is reported with a reason, so the caller can isolate it instead of
 * failing its whole service. One that decodes but must get no traffic (draining, disabled, not
 * alive) is returned with `inactive` set to why. Unknown fields never break decoding.
 */
import { detectJsonFormat } from './formats/detect.js';
import { decodeCurator } from './formats/curator.js';
import { fail, isObject, MAX_WEIGHT, show } from './formats/endpoint.js';
import { decodeNerve } from './formats/nerve.js';
import { decodePuttu } from './formats/puttu.js';
import { decodeServerset } from './formats/serverset.js';
import { decodeUrl } from './formats/url.js';

export { isValidHost, makeInstance, normalizeApi, validateEndpoint, type InstanceExtras } from './formats/endpoint.js';

/** How instances are reached: HTTP/1.1 over TCP or TLS, or HTTP/2 over TCP (h2c) or TLS (h2). */
export type Protocol = 'http' | 'https' | 'h2c' | 'h2';
export type InstanceFormat = 'puttu' | 'ip' | 'url' | 'curator' | 'serverset' | 'nerve';

export interface NamedEndpoint {
  readonly host: string;
  readonly port: number;
}

export interface Instance {
  /** The znode's name, unique within its service. */
  readonly id: string;
  readonly service: string;
  /** Which format the znode was written in. */
  readonly format: InstanceFormat;
  readonly protocol: Protocol;
  readonly host: string;
  readonly port: number;
  /** Base path on the endpoint, normalised: '' or '/a/b' (never a trailing slash). */
  readonly api: string;
  /** `scheme://host:port` (http for h2c, https for h2), IPv6 hosts bracketed: the key of the connection pool. */
  readonly origin: string;
  /** `origin + api`. */
  readonly url: string;
  /** Relative share of traffic, 0–1000; 1 when the format has none. (Set by every decoder.) */
  readonly weight?: number;
  /** String labels: ours `metadata`, Spring's payload metadata, Nerve's labels. (Set by every decoder.) */
  readonly metadata?: Readonly<Record<string, string>>;
  /**
   * The writer's own word for its state, as written: ours UP / DRAINING, a serverset's ALIVE /
   * STARTING / …, Spring's instance_status; 'UP' for formats without one. (Set by every decoder.)
   */
  readonly status?: string;
  /** A serverset member's shard, when it has one. */
  readonly shard?: number;
  /** A serverset member's additional named endpoints (`http`, `health`, …), when it has any. */
  readonly endpoints?: Readonly<Record<string, NamedEndpoint>>;
}

/** What `register()` accepts, and the core of what we write. */
export interface EndpointData {
  protocol: Protocol;
  host: string;
  port: number;
  api: string;
}

/** Decoded; `inactive`, when set, says why this valid instance must get no traffic. */
export type DecodeResult = { ok: true; instance: Instance; inactive?: string } | { ok: false; reason: string };

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
    if (!isObject(parsed)) return fail('JSON is not an object');
    return fromObject(service, id, parsed);
  }
  if (text.startsWith('"')) {
    // A JSON-quoted URL string, as some writers serialise the legacy form.
    try {
      const inner: unknown = JSON.parse(text);
      if (typeof inner === 'string') return decodeUrl(service, id, inner);
    } catch {
      /* fall through */
    }
    return fail('not valid JSON');
  }
  return decodeUrl(service, id, text);
}

function fromObject(service: string, id: string, obj: Record<string, unknown>): DecodeResult {
  const format = detectJsonFormat(obj);
  switch (format) {
    case 'serverset':
      return decodeServerset(service, id, obj);
    case 'curator':
      return decodeCurator(service, id, obj);
    case 'nerve':
      return decodeNerve(service, id, obj);
    case 'puttu':
    case 'ip':
      return decodePuttu(service, id, obj, format);
  }
}

/** `UP` while serving; `DRAINING` once the library is shutting down (proxies stop routing to it). */
export type RegistrationStatus = 'UP' | 'DRAINING';

/** Our canonical znode data: the endpoint plus who wrote it, when, and in what state. */
export interface RegistrationRecord extends EndpointData {
  /** A random id per registration: lets a new session recognise (and delete) its own stale node. */
  id: string;
  registrationTimeUTC: number;
  status: RegistrationStatus;
  /** Relative share of traffic, 1–1000. */
  weight: number;
  metadata: Readonly<Record<string, string>>;
}

/** Every field, always, in a fixed order: a superset of what older readers of ours expect. */
export function encodeRegistration(record: RegistrationRecord): Buffer {
  const { protocol, host, port, api, id, registrationTimeUTC, status, weight, metadata } = record;
  return Buffer.from(JSON.stringify({ protocol, host, port, api, id, registrationTimeUTC, status, weight, metadata }));
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

/** Metadata a registration may carry, as JSON. */
export const MAX_METADATA_BYTES = 4 * 1024;

/** A registration's weight (default 1), or why it is unacceptable. 0 is for readers only. */
export function validateWeight(weight: unknown): number | string {
  if (weight === undefined) return 1;
  if (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 1 || weight > MAX_WEIGHT) {
    return `weight must be an integer from 1 to ${MAX_WEIGHT}, got ${show(weight)}`;
  }
  return weight;
}

/** A registration's metadata (default {}), frozen, or why it is unacceptable. */
export function validateMetadata(metadata: unknown): Readonly<Record<string, string>> | string {
  if (metadata === undefined) return Object.freeze({});
  if (!isObject(metadata) || (Object.getPrototypeOf(metadata) !== Object.prototype && Object.getPrototypeOf(metadata) !== null)) {
    return `metadata must be an object of strings, got ${show(metadata)}`;
  }
  const copy: Record<string, string> = {};
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string') return `metadata[${show(key)}] must be a string, got ${show(value)}`;
    copy[key] = value;
  }
  const bytes = Buffer.byteLength(JSON.stringify(copy));
  if (bytes > MAX_METADATA_BYTES) return `metadata is ${bytes} bytes as JSON, over ${MAX_METADATA_BYTES}`;
  return Object.freeze(copy);
}
