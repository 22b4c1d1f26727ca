/**
 * Apache Curator x-discovery `ServiceInstance` JSON, as Curator (and Spring Cloud Zookeeper, which
 * uses it) writes it at `<base>/<service>/<id>`:
 *
 * ```json
 * {"name":"billing","id":"6d4e…","address":"10.0.0.7","port":8080,"sslPort":null,
 *  "payload":{"@class":"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance",
 *             "id":"billing-1","name":"billing","metadata":{"instance_status":"UP"}},
 *  "registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC",
 *  "uriSpec":{"parts":[{"value":"scheme","variable":true},{"value":"://","variable":false}, …]},
 *  "enabled":true}
 * ```
 *
 * - `sslPort` means https, and is preferred when both ports are set (Curator's `{scheme}` is
 *   https whenever sslPort is set, too). `payload.metadata.protocol` "h2c" or "h2" means HTTP/2
 *   (over TLS when sslPort is the port used).
 * - `enabled: false` (Curator ≥ 4) and Spring's `payload.metadata.instance_status` other than
 *   `UP` (compared ignoring case; empty counts as UP, as Spring's own filter reads it) keep the
 *   instance out of routing.
 * - `payload.metadata.weight`, when numeric (a number, or digits as Spring's string metadata has
 *   it), is the instance's weight; 0 keeps it out of routing.
 * - `uriSpec` (a template string, or Jackson's `{"parts": [...]}` form) gives the api base path
 *   when it has a path after the authority: `{scheme}://{address}:{port}/api` → '/api'. Curator's
 *   own variables are filled in from the record; a path with any other variable cannot be built
 *   here and rejects the znode rather than route to the wrong path. Host, port and protocol always
 *   come from `address` and the ports.
 */
import type { DecodeResult } from '../instance.js';
import {
  checkPort,
  decoded,
  fail,
  isObject,
  lenientWeight,
  makeInstance,
  normalizeApi,
  show,
  stringEntries,
  validateEndpoint,
} from './endpoint.js';

export function decodeCurator(service: string, id: string, obj: Record<string, unknown>): DecodeResult {
  const hasSsl = obj.sslPort !== undefined && obj.sslPort !== null;
  const hasPort = obj.port !== undefined && obj.port !== null;
  if (!hasSsl && !hasPort) return fail('curator: neither port nor sslPort is set');
  const portField = hasSsl ? 'sslPort' : 'port';
  const port = checkPort(obj[portField]);
  if (typeof port === 'string') return fail(`curator: ${portField}${port.slice('port'.length)}`);
  const api = apiFromUriSpec(obj);
  if (typeof api === 'object') return fail(`curator: ${api.reason}`);
  // HTTP/2 instances say so in their metadata: `protocol` "h2c" (over the port) or "h2" (over TLS).
  const meta = isObject(obj.payload) && isObject(obj.payload.metadata) ? obj.payload.metadata : undefined;
  const h2 = meta?.protocol === 'h2c' || meta?.protocol === 'h2';
  const protocol = h2 ? (hasSsl ? 'h2' : 'h2c') : hasSsl ? 'https' : 'http';
  const checked = validateEndpoint({ protocol, host: obj.address, port, api });
  if (typeof checked === 'string') return fail(`curator: ${checked.replace(/^host/, 'address')}`);
  if (obj.enabled !== undefined && obj.enabled !== null && typeof obj.enabled !== 'boolean') {
    return fail(`curator: enabled must be true or false, got ${show(obj.enabled)}`);
  }
  const springMetadata = isObject(obj.payload) && isObject(obj.payload.metadata) ? obj.payload.metadata : undefined;
  const instanceStatus = springMetadata?.instance_status;
  if (instanceStatus !== undefined && instanceStatus !== null && typeof instanceStatus !== 'string') {
    return fail(`curator: payload.metadata.instance_status must be a string such as "UP", got ${show(instanceStatus)}`);
  }
  const status = typeof instanceStatus === 'string' && instanceStatus.trim() !== '' ? instanceStatus : 'UP';
  const weight = lenientWeight(springMetadata?.weight);
  const why = [
    obj.enabled === false && 'enabled: false',
    status.toUpperCase() !== 'UP' && `instance_status ${status}`,
    weight === 0 && 'weight 0',
  ].filter(Boolean);
  const instance = makeInstance(service, id, 'curator', checked, { metadata: stringEntries(springMetadata), status, weight });
  return decoded(instance, why.length > 0 ? why.join('; ') : undefined);
}

/** The api base path a uriSpec fixes ('' when it has none), or why it cannot be used. */
export function apiFromUriSpec(obj: Record<string, unknown>): string | { reason: string } {
  const template = uriSpecTemplate(obj.uriSpec);
  if (template === undefined) return '';
  const afterScheme = template.indexOf('://');
  if (afterScheme < 0) return '';
  const rest = template.slice(afterScheme + 3);
  const slash = rest.search(/[/?#]/);
  if (slash < 0 || rest[slash] !== '/') return '';
  const rawPath = rest.slice(slash).split(/[?#]/, 1)[0]!;
  const values = variables(obj);
  let unknown: string | undefined;
  const path = rawPath.replace(/\{([^{}]*)\}/g, (whole, name: string) => {
    const value = Object.hasOwn(values, name) ? values[name] : undefined;
    if (value === undefined) unknown ??= whole;
    return value ?? '';
  });
  if (unknown !== undefined) return { reason: `uriSpec path ${show(rawPath)} has a variable puttu cannot fill: ${unknown}` };
  const api = normalizeApi(path);
  if (api === undefined) return { reason: `uriSpec path ${show(rawPath)} is not a usable base path` };
  return api;
}

/** A uriSpec as one template string: either as written, or rebuilt from Jackson's parts. */
function uriSpecTemplate(spec: unknown): string | undefined {
  if (typeof spec === 'string') return spec;
  if (!isObject(spec) || !Array.isArray(spec.parts)) return undefined; // null, or a shape we do not know
  let template = '';
  for (const part of spec.parts) {
    if (!isObject(part) || typeof part.value !== 'string') return undefined;
    template += part.variable === true ? `{${part.value}}` : part.value;
  }
  return template;
}

/** Curator's built-in uriSpec variables (UriSpec.build), filled from the record. */
function variables(obj: Record<string, unknown>): Record<string, string | undefined> {
  const text = (v: unknown) => (typeof v === 'string' || typeof v === 'number' ? String(v) : undefined);
  const hasSsl = obj.sslPort !== undefined && obj.sslPort !== null;
  return {
    scheme: hasSsl ? 'https' : 'http',
    name: text(obj.name),
    id: text(obj.id),
    address: text(obj.address),
    port: text(obj.port),
    'ssl-port': text(obj.sslPort),
    'registration-time-utc': text(obj.registrationTimeUTC),
    'service-type': text(obj.serviceType)?.toLowerCase(),
  };
}
