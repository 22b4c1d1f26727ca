/**
 * Curator `ServiceInstance` JSON on the registration API: reading a PUT body (strictly, the reason
 * naming the field), the znode it becomes, and the JSON a GET answers with.
 *
 * The znode is what Curator's own `JsonInstanceSerializer` writes, field for field
 * (`name, id, address, port, sslPort, payload, registrationTimeUTC, serviceType, uriSpec`, and
 * `enabled` only when the client sent it: older Curator readers refuse the field), so Java's
 * `ServiceDiscovery.queryForInstances()` reads it as one of its own. What a Java reader cannot
 * read is refused here, because one unreadable instance fails that reader's whole query:
 *
 * - `payload` is null, a string, a number, a boolean or an object (Jackson reads an object without
 *   `@class` as a map); an array is refused.
 * - `uriSpec` may be Curator's template string (`"{scheme}://{address}:{port}/api"`) or Jackson's
 *   `{"parts": [...]}` form; it is stored in the parts form, which is the one Java reads.
 *
 * GET answers use curator-x-discovery-server's own shape (`JsonServiceInstanceMarshaller`: the
 * ports only when set, the payload without Jackson's `@class`), plus `uriSpec` and `enabled`.
 */
import { decodeCurator } from '../registry/formats/curator.js';
import { isObject, show } from '../registry/formats/endpoint.js';
import { MAX_ZNODE_DATA_BYTES } from '../registry/instance.js';

/** Instance ids: one znode name, no dot segments, nothing a URL path must escape beyond these. */
const INSTANCE_ID = /^[A-Za-z0-9._~:@+=-]{1,200}$/;

export function isValidInstanceId(id: string): boolean {
  return INSTANCE_ID.test(id) && id !== '.' && id !== '..';
}

/** The service types a client of this API may send: both mean "gone unless renewed" here. */
export const SERVICE_TYPES = ['STATIC', 'DYNAMIC'] as const;

export interface UriSpecPart {
  value: string;
  variable: boolean;
}

/** A registration as stored: the znode's fields in Curator's order. */
export interface CuratorRecord {
  name: string;
  id: string;
  address: string;
  port: number | null;
  sslPort: number | null;
  payload: unknown;
  registrationTimeUTC: number;
  serviceType: string;
  uriSpec: { parts: UriSpecPart[] } | null;
  enabled?: boolean;
}

export type BodyResult = { ok: true; record: CuratorRecord } | { ok: false; reason: string };

/**
 * Reads a PUT body for `/v1/service/{name}/{id}`. `now` fills `registrationTimeUTC` when absent.
 * Every refusal names the field and what was wrong with it; the record is one puttu's registry
 * routes (the same decoder checks it) and Curator's Java readers read.
 */
export function readInstanceBody(text: string, name: string, id: string, now: number): BodyResult {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    return bad(`body is not valid JSON: ${(error as Error).message}`);
  }
  if (!isObject(body)) return bad(`body must be a JSON object (a Curator ServiceInstance), got ${kind(body)}`);
  if (body.name !== name) return bad(`name must be the path's service ${JSON.stringify(name)}, got ${show(body.name)}`);
  if (body.id !== id) return bad(`id must be the path's instance id ${JSON.stringify(id)}, got ${show(body.id)}`);
  if (typeof body.address !== 'string' || body.address === '')
    return bad(`address must be an IP address or a DNS name, got ${show(body.address)}`);
  const port = optionalPort(body, 'port');
  if (typeof port === 'string') return bad(port);
  const sslPort = optionalPort(body, 'sslPort');
  if (typeof sslPort === 'string') return bad(sslPort);
  if (port === null && sslPort === null) return bad('port or sslPort must be set: puttu routes to one of them');
  const payload = body.payload ?? null;
  if (Array.isArray(payload)) return bad('payload must be an object, a string, a number, a boolean or null: Curator cannot read an array');
  if (isObject(payload) && payload['@class'] !== undefined && typeof payload['@class'] !== 'string') {
    return bad(`payload.@class must be a Java class name, got ${show(payload['@class'])}`);
  }
  let registrationTimeUTC = now;
  if (body.registrationTimeUTC !== undefined && body.registrationTimeUTC !== null) {
    const t = body.registrationTimeUTC;
    if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0) {
      return bad(`registrationTimeUTC must be milliseconds since the epoch, got ${show(t)}`);
    }
    registrationTimeUTC = t;
  }
  const serviceType = body.serviceType ?? 'STATIC';
  if (typeof serviceType !== 'string' || !(SERVICE_TYPES as readonly string[]).includes(serviceType)) {
    return bad(
      `serviceType must be ${SERVICE_TYPES.join(' or ')} (instances registered here live while they are renewed), got ${show(serviceType)}`,
    );
  }
  const uriSpec = readUriSpec(body.uriSpec);
  if (typeof uriSpec === 'string') return bad(uriSpec);
  if (body.enabled !== undefined && body.enabled !== null && typeof body.enabled !== 'boolean') {
    return bad(`enabled must be true or false, got ${show(body.enabled)}`);
  }
  const record: CuratorRecord = {
    name,
    id,
    address: body.address,
    port,
    sslPort,
    payload,
    registrationTimeUTC,
    serviceType,
    uriSpec,
    ...(typeof body.enabled === 'boolean' && { enabled: body.enabled }),
  };
  const size = encodeRecord(record).length;
  if (size > MAX_ZNODE_DATA_BYTES)
    return bad(`the instance is ${size} bytes as Curator JSON, over the ${MAX_ZNODE_DATA_BYTES} a znode may hold`);
  // The registry's own decoder: what it would reject, say so now rather than store a dead node.
  const decoded = decodeCurator(name, id, record as unknown as Record<string, unknown>);
  if (!decoded.ok) return bad(decoded.reason.replace(/^curator: /, ''));
  return { ok: true, record };
}

/** The znode data: Curator's JSON serialization of the record. */
export function encodeRecord(record: CuratorRecord): Buffer {
  return Buffer.from(JSON.stringify(record));
}

/** A znode's data as curator-x-discovery-server answers it; undefined when it is not a Curator instance. */
export function instanceJson(data: Buffer): Record<string, unknown> | undefined {
  let obj: unknown;
  try {
    obj = JSON.parse(data.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isObject(obj) || typeof obj.name !== 'string' || typeof obj.id !== 'string' || Object.hasOwn(obj, 'host')) return undefined;
  if (!Object.hasOwn(obj, 'address')) return undefined;
  let payload = obj.payload ?? null;
  if (isObject(payload) && Object.hasOwn(payload, '@class')) {
    const { '@class': _ignored, ...rest } = payload;
    payload = rest;
  }
  return {
    name: obj.name,
    id: obj.id,
    address: obj.address,
    ...(obj.port !== undefined && obj.port !== null && { port: obj.port }),
    ...(obj.sslPort !== undefined && obj.sslPort !== null && { sslPort: obj.sslPort }),
    registrationTimeUTC: obj.registrationTimeUTC,
    serviceType: obj.serviceType,
    payload,
    uriSpec: obj.uriSpec ?? null,
    enabled: obj.enabled !== false,
  };
}

function optionalPort(body: Record<string, unknown>, field: 'port' | 'sslPort'): number | null | string {
  const v = body[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535)
    return `${field} must be an integer from 1 to 65535 or null, got ${show(v)}`;
  return v;
}

/** Curator's template string or Jackson's parts, as parts; a string is the reason it is neither. */
function readUriSpec(spec: unknown): { parts: UriSpecPart[] } | null | string {
  if (spec === undefined || spec === null) return null;
  if (typeof spec === 'string') return { parts: parseTemplate(spec) };
  if (!isObject(spec) || !Array.isArray(spec.parts)) {
    return `uriSpec must be a template such as "{scheme}://{address}:{port}/api" or {"parts":[...]}, got ${show(spec)}`;
  }
  const parts: UriSpecPart[] = [];
  for (const [i, part] of spec.parts.entries()) {
    if (!isObject(part) || typeof part.value !== 'string' || typeof part.variable !== 'boolean') {
      return `uriSpec.parts[${i}] must be {"value": string, "variable": boolean}, got ${show(part)}`;
    }
    parts.push({ value: part.value, variable: part.variable });
  }
  return { parts };
}

/** Curator's UriSpec parsing: `{name}` is a variable, everything between is literal. */
export function parseTemplate(template: string): UriSpecPart[] {
  const parts: UriSpecPart[] = [];
  const re = /\{([^{}]*)\}/g;
  let last = 0;
  for (let m = re.exec(template); m !== null; m = re.exec(template)) {
    if (m.index > last) parts.push({ value: template.slice(last, m.index), variable: false });
    parts.push({ value: m[1]!, variable: true });
    last = m.index + m[0].length;
  }
  if (last < template.length) parts.push({ value: template.slice(last), variable: false });
  return parts;
}

function kind(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
}

function bad(reason: string): BodyResult {
  return { ok: false, reason };
}

/** The address and port the proxy would dial for a record (sslPort wins, as in the registry). */
export function dialTarget(record: CuratorRecord): { host: string; port: number } {
  return { host: record.address, port: record.sslPort ?? record.port! };
}
