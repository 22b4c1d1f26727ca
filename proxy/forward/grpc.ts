/**
 * gRPC over the proxy: which requests are gRPC, how their deadlines read, and what grpc-status a
 * proxy error becomes. Pure. The routing rule lives in proxy-handler.ts: the registry service is
 * the gRPC service, the first segment of `/<package.Service>/<Method>`, and the path is forwarded
 * whole (gRPC servers route on it).
 */
import { GrpcDeadlineError, UpstreamTimeoutError, type PuttuError } from '../errors.js';

// https://grpc.github.io/grpc/core/md_doc_statuscodes.html
export const GRPC_STATUS_INTERNAL = 13;
export const GRPC_STATUS_UNAVAILABLE = 14;
export const GRPC_STATUS_UNIMPLEMENTED = 12;
export const GRPC_STATUS_DEADLINE_EXCEEDED = 4;
export const GRPC_STATUS_RESOURCE_EXHAUSTED = 8;

/** `application/grpc`, `application/grpc+proto`, `application/grpc+json`, … (not grpc-web). */
export function isGrpc(contentType: string | string[] | undefined): boolean {
  return (
    typeof contentType === 'string' &&
    contentType.length >= 16 &&
    contentType.slice(0, 16).toLowerCase() === 'application/grpc' &&
    (contentType.length === 16 || contentType[16] === '+' || contentType[16] === ';')
  );
}

const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000001 };

/** grpc-timeout ("1-8 digits" + H/M/S/m/u/n) in ms, at least 1; undefined when absent or malformed. */
export function grpcTimeoutMs(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string' || !/^\d{1,8}[HMSmun]$/.test(value)) return undefined;
  return Math.max(1, Math.ceil(Number(value.slice(0, -1)) * UNIT_MS[value.slice(-1)]!));
}

/**
 * The grpc-status a client gets for a proxy error, following gRPC's HTTP-to-status mapping: an
 * unknown service is UNIMPLEMENTED (what a server says of a service it lacks), no instance or a
 * failed upstream UNAVAILABLE (clients may retry), a passed deadline DEADLINE_EXCEEDED.
 */
export function grpcStatusOf(error: PuttuError): number {
  if (error instanceof GrpcDeadlineError || error instanceof UpstreamTimeoutError) return GRPC_STATUS_DEADLINE_EXCEEDED;
  switch (error.status) {
    case 404:
      return GRPC_STATUS_UNIMPLEMENTED;
    case 413:
    case 431:
      return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC_STATUS_UNAVAILABLE;
    default:
      return GRPC_STATUS_INTERNAL;
  }
}
