/**
 * The request path: route → snapshot lookup → pick → forward. Synchronous up to the dispatch:
 * it reads the registry's current in-memory snapshot and never waits on ZooKeeper.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import type { Registry } from '../registry/registry.js';
import type { Metrics, ServiceMetrics } from '../metrics/metrics.js';
import { UNKNOWN_SERVICE } from '../metrics/metrics.js';
import { parseTarget, type Route } from '../forward/route.js';
import { upstreamRequestHeaders } from '../forward/headers.js';
import { Exchange, sendError, type ForwarderDeps } from '../forward/http-forwarder.js';
import {
  BadRequestError,
  NoInstancesError,
  NotReadyError,
  PayloadTooLargeError,
  UnknownServiceError,
  toProxyError,
  type ProxyError,
} from '../forward/errors.js';

export interface ProxyHandlerDeps {
  registry: Registry;
  forwarder: Omit<ForwarderDeps, 'onDone' | 'onAttemptFailed'>;
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
  start: number;
}

export function createProxyHandler(deps: ProxyHandlerDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { registry, metrics, clock, logger, maxBodyBytes, proto } = deps;
  const unknown = metrics.forService(UNKNOWN_SERVICE);
  const forwarder: ForwarderDeps = {
    ...deps.forwarder,
    onDone(exchange) {
      const ctx = exchange.context as RequestContext;
      if (exchange.attempts > 1) ctx.metrics.retried(exchange.attempts - 1);
      ctx.metrics.observe(exchange.method, exchange.clientGone ? 0 : exchange.status, (clock.monotonic() - ctx.start) / 1000);
    },
    onAttemptFailed(exchange, error) {
      (exchange.context as RequestContext).metrics.upstreamError(error.code);
      if (logger.isLevelEnabled('debug')) logger.debug('upstream attempt failed', { service: exchange.service, id: exchange.instance?.id, attempt: exchange.attempts, code: error.code });
    },
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
    const te = req.headers['transfer-encoding'];
    // Node decodes only `chunked`; any other transfer coding would reach the upstream undeclared.
    if (te !== undefined && te.trim().toLowerCase() !== 'chunked') {
      res.shouldKeepAlive = false;
      return fail(res, m, method, start, new BadRequestError('only the chunked transfer coding is accepted'));
    }
    const hasBody = length !== undefined ? length !== '0' : te !== undefined;
    if (maxBodyBytes > 0 && length !== undefined && Number(length) > maxBodyBytes) {
      res.shouldKeepAlive = false; // the unread body would otherwise be parsed as the next request
      return fail(res, m, method, start, new PayloadTooLargeError(`request body over ${maxBodyBytes} bytes`));
    }
    const headers = upstreamRequestHeaders(req.rawHeaders, {
      clientIp: req.socket.remoteAddress ?? '',
      proto,
      host: req.headers.host,
    });
    const exchange = new Exchange(forwarder, { req, res, service: route.service, instances, rest: route.rest, query: route.query, headers, hasBody });
    exchange.context = { metrics: m, start } satisfies RequestContext;
    exchange.start();
  };
}
