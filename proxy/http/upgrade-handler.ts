/**
 * Upgrade requests. WebSocket upgrades to `/<service>/...` go to a live instance with the same
 * routing, path and header rules as HTTP (plus the Connection/Upgrade pair the handshake needs).
 * Node hands every request carrying `Upgrade` here once an 'upgrade' listener exists; other
 * protocols (h2c) are not upgraded: a body-less request is served as plain HTTP/1.1 on a
 * connection that then closes, anything else is refused.
 */
import http, { type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Clock } from '../clock.js';
import type { Balancer } from '../balancer/balancer.js';
import type { OutlierDetector } from '../health/outliers.js';
import type { RegistryView } from '../registry/view.js';
import type { Metrics } from '../metrics/metrics.js';
import { UNKNOWN_SERVICE } from '../metrics/metrics.js';
import { upstreamPath } from '../forward/route.js';
import { isResolved, pickInstance, resolveTarget } from '../forward/resolve.js';
import { duplicateHost, requestIdOf, upstreamRequestHeaders } from '../forward/headers.js';
import { BadRequestError, type PuttuError } from '../errors.js';
import { endWithError } from './raw-error.js';
import type { WsForwarder } from '../forward/ws-forwarder.js';
import { randomUUID } from 'node:crypto';
import type { CompiledPolicy } from '../traffic/router.js';

export interface UpgradeDeps {
  registry: RegistryView;
  balancerFor: (service: string) => Balancer;
  outliers: OutlierDetector;
  ws: WsForwarder;
  metrics: Metrics;
  clock: Clock;
  proto: 'http' | 'https';
  /** A service's traffic policy, if it has one: the same choice as for HTTP. */
  policyFor?: (service: string) => CompiledPolicy | undefined;
  /** The plain HTTP handler, for upgrade requests that are not WebSockets. */
  http: (req: IncomingMessage, res: http.ServerResponse) => void;
}

export function createUpgradeHandler(deps: UpgradeDeps): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const { registry, outliers, ws, metrics, clock, proto } = deps;

  function refuse(socket: Duplex, error: PuttuError, service: string, start: number): void {
    endWithError(socket, error);
    metrics.forService(service).observe('GET', error.status, (clock.monotonic() - start) / 1000);
  }

  return function handleUpgrade(req, socket, head) {
    const start = clock.monotonic();
    socket.on('error', () => socket.destroy());
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return servePlain(req, socket, deps.http);
    if (req.method !== 'GET') return refuse(socket, new BadRequestError('WebSocket upgrades use GET'), UNKNOWN_SERVICE, start);
    if (duplicateHost(req.rawHeaders))
      return refuse(socket, new BadRequestError('a request must not have more than one Host header'), UNKNOWN_SERVICE, start);
    const resolved = resolveTarget(registry, req.url ?? '/');
    if (!isResolved(resolved)) return refuse(socket, resolved.error, resolved.service ?? UNKNOWN_SERVICE, start);
    const { route, snapshot } = resolved;
    const policy = deps.policyFor?.(route.service);
    const key = policy?.keyOf(req.rawHeaders);
    const instance = pickInstance(deps.balancerFor(route.service), outliers, route.service, snapshot.instances, undefined, policy, key)!;
    const rest = policy === undefined || policy.stripPrefix ? route.rest : `/${route.service}${route.rest}`;
    const requestId = requestIdOf(req.headers['x-request-id'], randomUUID);
    const list = upstreamRequestHeaders(req.rawHeaders, {
      clientIp: req.socket.remoteAddress ?? '',
      proto,
      host: req.headers.host,
      requestId,
    });
    const headers: Record<string, string> = { connection: 'Upgrade', upgrade: 'websocket' };
    for (let i = 0; i < list.length; i += 2) {
      const name = list[i]!.toLowerCase();
      headers[name] = headers[name] === undefined ? list[i + 1]! : `${headers[name]}, ${list[i + 1]!}`;
    }
    const m = metrics.forService(route.service);
    ws.forward(req, socket, head, instance, upstreamPath(instance.api, rest, route.query), headers, (status, error) => {
      if (error) {
        m.upstreamError(error.code);
        if (error.upstream) outliers.failure(instance, snapshot.instances);
      }
      m.observe('GET', status, (clock.monotonic() - start) / 1000);
    });
  };
}

/** Serves a non-WebSocket upgrade request as plain HTTP on its (detached) socket, then closes it. */
function servePlain(req: IncomingMessage, socket: Duplex, handler: UpgradeDeps['http']): void {
  const hasBody = (req.headers['content-length'] ?? '0') !== '0' || req.headers['transfer-encoding'] !== undefined;
  if (hasBody) return endWithError(socket, new BadRequestError('upgrade requests with a body are not accepted'));
  const res = new http.ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket as Socket);
  res.once('finish', () => {
    res.detachSocket(socket as Socket);
    socket.end();
  });
  req.push(null);
  handler(req, res);
}
