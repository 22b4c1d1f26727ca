/**
 * The REST registration API, curator-x-discovery-server's `DiscoveryResource` on puttu's tree:
 *
 *   PUT    /v1/service/{name}/{id}   register or renew a ServiceInstance (JSON body)  201, no body
 *   DELETE /v1/service/{name}/{id}   remove it                                         200, no body
 *   GET    /v1/service/{name}/{id}   one instance                                      200 | 404
 *   GET    /v1/service/{name}        the service's instances: a JSON array             200
 *   GET    /v1/anyservice/{name}     one instance chosen at random                     200 | 404
 *   GET    /v1/service               the service names: [{"name": ...}], sorted         200
 *   GET    /v1/services              the same (an alias)
 *
 * Status codes and JSON shapes are Curator's; where Curator answers an error with an empty body,
 * puttu's JSON error (code and reason) is sent. Writes need `Authorization: Bearer <token>`
 * (compared in constant time; 401 with WWW-Authenticate otherwise); reads need none. A PUT is
 * checked by the upstream policy before anything is written: an address the proxy would refuse
 * to dial is refused here (403) with the policy's reason.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pickIndex, type Clock, type Random } from '../clock.js';
import type { Logger } from '../logger.js';
import {
  BadPathError,
  errorBody,
  InternalError,
  InvalidRegistrationError,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  PuttuError,
  RegistrationRefusedError,
  UnauthorizedError,
  UnsupportedMediaTypeError,
} from '../errors.js';
import { isValidServiceName } from '../registry/paths.js';
import type { UpstreamPolicy } from '../security/upstream-policy.js';
import { dialTarget, isValidInstanceId, readInstanceBody } from './instance-body.js';
import type { RestRegistrations } from './store.js';

/** Larger than any instance puttu's registry reads (16 KiB znodes). */
export const MAX_BODY_BYTES = 16 * 1024;

export interface RegistrationHandlerDeps {
  store: RestRegistrations;
  policy: UpstreamPolicy;
  token: string;
  clock: Clock;
  random: Random;
  logger: Logger;
}

type Route =
  | { kind: 'names' }
  | { kind: 'service'; name: string }
  | { kind: 'any'; name: string }
  | { kind: 'instance'; name: string; id: string };

const ALLOW: Record<Route['kind'], string> = {
  names: 'GET, HEAD',
  service: 'GET, HEAD',
  any: 'GET, HEAD',
  instance: 'GET, HEAD, PUT, DELETE',
};

const ENDPOINTS = 'registration endpoints: /v1/service, /v1/service/{name}, /v1/service/{name}/{id}, /v1/anyservice/{name}';

export function createRegistrationHandler(deps: RegistrationHandlerDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { store, policy, clock, random, logger } = deps;
  const tokenDigest = digest(deps.token);

  function authorized(req: IncomingMessage): 'ok' | 'missing' | 'invalid' {
    const header = req.headers.authorization;
    if (header === undefined) return 'missing';
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (!m) return 'invalid';
    // Digests of equal length: the comparison's time says nothing about the token.
    return timingSafeEqual(digest(m[1]!), tokenDigest) ? 'ok' : 'invalid';
  }

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const route = parseRoute((req.url ?? '/').split('?', 1)[0]!);
    if (route instanceof PuttuError) return fail(res, route);
    const method = req.method ?? 'GET';
    if (!ALLOW[route.kind].split(', ').includes(method)) {
      res.setHeader('allow', ALLOW[route.kind]);
      return fail(res, new MethodNotAllowedError(`${method} is not allowed here; allowed: ${ALLOW[route.kind]}`));
    }
    if (method === 'PUT' || method === 'DELETE') {
      const auth = authorized(req);
      if (auth !== 'ok') {
        res.setHeader('www-authenticate', `Bearer realm="puttu-registration"${auth === 'invalid' ? ', error="invalid_token"' : ''}`);
        return fail(
          res,
          new UnauthorizedError(
            auth === 'missing' ? 'a bearer token is required to change registrations' : 'the bearer token is not valid',
          ),
        );
      }
    }
    switch (route.kind) {
      case 'names':
        return json(
          res,
          200,
          (await store.names()).map((name) => ({ name })),
        );
      case 'service':
        return json(res, 200, await store.instances(route.name));
      case 'any': {
        const usable = (await store.instances(route.name)).filter((i) => i.enabled !== false);
        if (usable.length === 0) return fail(res, new NotFoundError(`service "${route.name}" has no enabled instance`));
        return json(res, 200, usable[pickIndex(random, usable.length)]);
      }
      case 'instance':
        break;
    }
    const { name, id } = route;
    if (method === 'DELETE') {
      await store.delete(name, id);
      return empty(res, 200);
    }
    if (method !== 'PUT') {
      const instance = await store.instance(name, id);
      return instance ? json(res, 200, instance) : fail(res, new NotFoundError(`no instance "${id}" of service "${name}"`));
    }
    const type = (req.headers['content-type'] ?? 'application/json').split(';', 1)[0]!.trim().toLowerCase();
    if (type !== 'application/json' && !type.endsWith('+json')) {
      return fail(res, new UnsupportedMediaTypeError(`the body must be application/json, got ${JSON.stringify(type)}`));
    }
    const text = await readBody(req);
    const read = readInstanceBody(text, name, id, clock.now());
    if (!read.ok) return fail(res, new InvalidRegistrationError(read.reason));
    const target = dialTarget(read.record);
    const refused = policy.check(target.host, target.port);
    if (refused) {
      logger.warn('REST registration refused by the upstream policy', { service: name, id, reason: refused });
      return fail(res, new RegistrationRefusedError(`the upstream policy refuses ${target.host}:${target.port}: ${refused}`));
    }
    await store.put(read.record);
    res.setHeader('x-puttu-ttl-ms', String(store.ttlMs));
    return empty(res, 201);
  }

  return function handle(req, res) {
    serve(req, res).catch((error: unknown) => {
      const e = error instanceof PuttuError ? error : new InternalError();
      if (!(error instanceof PuttuError)) logger.error('registration API request failed', { error });
      if (res.headersSent) return void res.destroy();
      if (e instanceof PayloadTooLargeError) res.setHeader('connection', 'close');
      fail(res, e);
    });
  };
}

function parseRoute(path: string): Route | PuttuError {
  const raw = path.split('/').slice(1);
  let parts: string[];
  try {
    parts = raw.map((p) => decodeURIComponent(p));
  } catch {
    return new BadPathError(`the path ${JSON.stringify(path)} has a malformed percent-encoding`);
  }
  if (parts[0] !== 'v1') return new NotFoundError(ENDPOINTS);
  const [, resource, name, id, ...rest] = parts;
  if (rest.length > 0 || name === '' || id === '') return new NotFoundError(ENDPOINTS);
  if ((resource === 'service' || resource === 'services') && name === undefined) return { kind: 'names' };
  if (resource !== 'service' && !(resource === 'anyservice' && id === undefined)) return new NotFoundError(ENDPOINTS);
  if (!isValidServiceName(name!)) {
    return new BadPathError(`service name ${JSON.stringify(name)} is not valid: letters, digits and . _ ~ - , at most 128, not . or ..`);
  }
  if (resource === 'anyservice') return { kind: 'any', name: name! };
  if (id === undefined) return { kind: 'service', name: name! };
  if (!isValidInstanceId(id)) {
    return new BadPathError(
      `instance id ${JSON.stringify(id)} is not valid: letters, digits and . _ ~ : @ + = - , at most 200, not . or ..`,
    );
  }
  return { kind: 'instance', name: name!, id };
}

/** The request body as text, at most MAX_BODY_BYTES (413 beyond, before reading it). */
function readBody(req: IncomingMessage): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) {
    req.resume();
    return Promise.reject(new PayloadTooLargeError(`the body is ${declared} bytes; at most ${MAX_BODY_BYTES} are accepted`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        // The rest is read and dropped; the answer closes the connection.
        req.removeAllListeners('data');
        req.resume();
        reject(new PayloadTooLargeError(`the body is over ${MAX_BODY_BYTES} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function json(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, JSON.stringify(value));
}

/** A JSON body as Curator's server types it (no charset parameter). */
function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

function empty(res: ServerResponse, status: number): void {
  res.writeHead(status, { 'content-length': 0 });
  res.end();
}

function fail(res: ServerResponse, error: PuttuError): void {
  send(res, error.status, errorBody(error));
}
