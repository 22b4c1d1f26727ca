import { randomUUID } from 'node:crypto';
/**
 * The request path: route → snapshot lookup → pick → forward. Synchronous up to the dispatch:
 * it reads the registry's current in-memory snapshot and never waits on ZooKeeper.
 */
import type { ClientRequest, ClientResponse } from '../forward/client.js';
import type { LaneHandler } from './fast-lane.js';
import type { Readable } from 'node:stream';
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import type { RegistryView } from '../registry/view.js';
import type { Metrics, ServiceMetrics } from '../metrics/metrics.js';
import { UNKNOWN_SERVICE } from '../metrics/metrics.js';
import { isResolved, resolveTarget } from '../forward/resolve.js';
import { duplicateHost, requestIdOf, upstreamRequestHeaders } from '../forward/headers.js';
import { Exchange, sendError, type ForwarderDeps } from '../forward/http-forwarder.js';
import { BadRequestError, PayloadTooLargeError, type PuttuError } from '../errors.js';

export interface ProxyHandlerDeps {
  registry: RegistryView;
  forwarder: Omit<ForwarderDeps, 'onDone' | 'onAttemptFailed' | 'now'>;
  metrics: Metrics;
  clock: Clock;
  logger: Logger;
  /** One line per request at `info` on this logger; undefined: no access log. */
  accessLog?: Logger;
  /** 0: no limit. */
  maxBodyBytes: number;
  /** How clients reach this listener. */
  proto: 'http' | 'https';
  /** New request ids (injected so tests can pin them). */
  newRequestId?: () => string;
}

interface RequestContext {
  metrics: ServiceMetrics;
  start: number;
}

/**
 * The handler for both of the listener's paths: Node's requests, and the fast lane's (which
 * brings the body whole, when there is one).
 */
export function createProxyHandler(deps: ProxyHandlerDeps): LaneHandler {
  const { registry, metrics, clock, logger, accessLog, maxBodyBytes, proto } = deps;
  const newRequestId = deps.newRequestId ?? randomUUID;
  const unknown = metrics.forService(UNKNOWN_SERVICE);
  const forwarder: ForwarderDeps = {
    ...deps.forwarder,
    now: () => clock.monotonic(),
    onDone(exchange) {
      const ctx = exchange.context as RequestContext;
      const seconds = (clock.monotonic() - ctx.start) / 1000;
      if (exchange.attempts > 1) ctx.metrics.retried(exchange.attempts - 1);
      ctx.metrics.observe(exchange.method, exchange.clientGone ? 0 : exchange.status, seconds, exchange.req.httpVersion === '2.0');
      accessLog?.info('request', {
        method: exchange.method,
        path: pathOf(exchange.req.url),
        service: exchange.service,
        status: exchange.clientGone ? 0 : exchange.status,
        durationMs: Math.round(seconds * 1e6) / 1e3,
        instance: exchange.instance?.id,
        attempts: exchange.attempts,
        requestId: exchange.requestId,
        ...(exchange.req.httpVersion === '2.0' && { protocol: 'h2' }),
        ...(exchange.error && { error: exchange.error.code }),
        ...(exchange.clientGone && { clientAborted: true }),
      });
    },
    onAttemptFailed(exchange, error) {
      (exchange.context as RequestContext).metrics.upstreamError(error.code);
      if (logger.isLevelEnabled('debug'))
        logger.debug('upstream attempt failed', {
          service: exchange.service,
          id: exchange.instance?.id,
          attempt: exchange.attempts,
          code: error.code,
        });
    },
  };

  function fail(req: ClientRequest, res: ClientResponse, m: ServiceMetrics, start: number, requestId: string, error: PuttuError): void {
    sendError(res, error, requestId);
    const seconds = (clock.monotonic() - start) / 1000;
    m.observe(req.method ?? 'GET', error.status, seconds, req.httpVersion === '2.0');
    accessLog?.info('request', {
      method: req.method,
      path: pathOf(req.url),
      service: m === unknown ? undefined : m.service,
      status: error.status,
      durationMs: Math.round(seconds * 1e6) / 1e3,
      attempts: 0,
      requestId,
      ...(req.httpVersion === '2.0' && { protocol: 'h2' }),
      error: error.code,
    });
  }

  return function handle(req, res, body) {
    const start = clock.monotonic();
    const requestId = requestIdOf(req.headers['x-request-id'], newRequestId);
    if (duplicateHost(req.rawHeaders)) {
      res.shouldKeepAlive = false;
      return fail(req, res, unknown, start, requestId, new BadRequestError('a request must not have more than one Host header'));
    }
    const resolved = resolveTarget(registry, req.url ?? '/');
    if (!isResolved(resolved)) {
      return fail(
        req,
        res,
        resolved.service === undefined ? unknown : metrics.forService(resolved.service),
        start,
        requestId,
        resolved.error,
      );
    }
    const { route, snapshot } = resolved;
    const m = metrics.forService(route.service);
    const instances = snapshot.instances;
    const length = req.headers['content-length'];
    const te = req.headers['transfer-encoding'];
    // Node decodes only `chunked`; any other transfer coding would reach the upstream undeclared.
    if (te !== undefined && te.trim().toLowerCase() !== 'chunked') {
      res.shouldKeepAlive = false; // Node's path only: the lane passes on every Transfer-Encoding
      return fail(req, res, m, start, requestId, new BadRequestError('only the chunked transfer coding is accepted'));
    }
    // Both parsers let only digits through: "00" is no body either. HTTP/2 says so per stream.
    const hasBody = req.body !== undefined ? req.body !== null : length !== undefined ? Number(length) !== 0 : te !== undefined;
    if (maxBodyBytes > 0 && length !== undefined && Number(length) > maxBodyBytes) {
      res.shouldKeepAlive = false; // the unread body would otherwise be parsed as the next request
      return fail(req, res, m, start, requestId, new PayloadTooLargeError(`request body over ${maxBodyBytes} bytes`));
    }
    const headers = upstreamRequestHeaders(req.rawHeaders, {
      clientIp: req.socket.remoteAddress ?? '',
      proto,
      host: req.headers.host,
      requestId,
    });
    // gRPC: the service is the path's `package.Service`, and the server routes on the whole path.
    const grpc = res.grpc === true;
    if (grpc) headers.push('te', 'trailers');
    const exchange = new Exchange(forwarder, {
      req,
      res,
      service: route.service,
      instances,
      rest: grpc ? `/${route.service}${route.rest}` : route.rest,
      query: route.query,
      headers,
      body: hasBody ? (body ?? req.body ?? (req as ClientRequest & Readable)) : null,
      requestId,
    });
    exchange.context = { metrics: m, start } satisfies RequestContext;
    exchange.start();
  };
}

/** The path without the query (queries may carry secrets; access logs need not). */
function pathOf(url: string | undefined): string {
  if (url === undefined) return '';
  const q = url.indexOf('?');
  return (q === -1 ? url : url.slice(0, q)).slice(0, 512);
}
