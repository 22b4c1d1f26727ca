/**
 * The request path: route → snapshot lookup → pick → forward. Synchronous up to the dispatch:
 * it reads the registry's current in-memory snapshot and never waits on ZooKeeper.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import type { Balancer } from '../balancer/index.js';
import type { Registry } from '../registry/registry.js';
import type { Metrics, ServiceMetrics } from '../metrics/metrics.js';
import { UNKNOWN_SERVICE } from '../metrics/metrics.js';
import { parseTarget, upstreamPath, type Route } from '../forward/route.js';
import { upstreamRequestHeaders } from '../forward/headers.js';
import { sendError, type ForwardOutcome, type HttpForwarder } from '../forward/http-forwarder.js';
import {
  NoInstancesError,
  NotReadyError,
  PayloadTooLargeError,
  UnknownServiceError,
  toProxyError,
  type ProxyError,
} from '../forward/errors.js';

export interface ProxyHandlerDeps {
  registry: Registry;
  balancer: Balancer;
  forwarder: HttpForwarder;
  metrics: Metrics;
  clock: Clock;
  logger: Logger;
  /** 0: no limit. */
  maxBodyBytes: number;
  /** How clients reach this listener. */
  proto: 'http' | 'https';
}

interface RequestContext {
  metrics: ServiceMetrics;
  method: string;
  start: number;
}

export function createProxyHandler(deps: ProxyHandlerDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { registry, balancer, forwarder, metrics, clock, logger, maxBodyBytes, proto } = deps;
  const unknown = metrics.forService(UNKNOWN_SERVICE);

  const done = (ctx: RequestContext, outcome: ForwardOutcome): void => {
    if (outcome.error !== undefined) {
      ctx.metrics.upstreamError(outcome.error.code);
      if (logger.isLevelEnabled('debug')) logger.debug('upstream failed', { service: ctx.metrics.service, code: outcome.error.code });
    }
    ctx.metrics.observe(ctx.method, outcome.clientAborted ? 0 : outcome.status, (clock.monotonic() - ctx.start) / 1000);
  };

  function fail(res: ServerResponse, m: ServiceMetrics, method: string, start: number, error: ProxyError): void {
    sendError(res, error);
    m.observe(method, error.status, (clock.monotonic() - start) / 1000);
  }

  return function handle(req, res) {
    const start = clock.monotonic();
    const method = req.method ?? 'GET';
    let route: Route;
    try {
      route = parseTarget(req.url ?? '/');
    } catch (error) {
      return fail(res, unknown, method, start, toProxyError(error));
    }
    const snapshot = registry.get(route.service);
    if (snapshot === undefined) {
      return fail(res, unknown, method, start, registry.synced ? new UnknownServiceError() : new NotReadyError());
    }
    const m = metrics.forService(route.service);
    const instances = snapshot.instances;
    if (instances.length === 0) return fail(res, m, method, start, new NoInstancesError());
    const length = req.headers['content-length'];
    const hasBody = length !== undefined ? length !== '0' : req.headers['transfer-encoding'] !== undefined;
    if (maxBodyBytes > 0 && length !== undefined && Number(length) > maxBodyBytes) {
      res.shouldKeepAlive = false; // the unread body would otherwise be parsed as the next request
      return fail(res, m, method, start, new PayloadTooLargeError(`request body over ${maxBodyBytes} bytes`));
    }
    const instance = balancer.pick(instances);
    const headers = upstreamRequestHeaders(req.rawHeaders, {
      clientIp: req.socket.remoteAddress ?? '',
      proto,
      host: req.headers.host,
    });
    forwarder.forward(
      { req, res, instance, path: upstreamPath(instance.api, route.rest, route.query), headers, hasBody },
      { metrics: m, method, start },
      done,
    );
  };
}
