/**
 * Every error puttu raises, in one catalogue under one base class: each has a `name` (its class),
 * a stable `code` callers and metrics can test, and the HTTP `status` it answers a client with.
 * Library callers (`connect()`, `register()`, `get()`) see the same classes the proxy maps to
 * responses. Messages never carry internal addresses or stacks: proxy errors go to clients.
 * `toProxyError` maps what Node and undici raise to one of these; `errorBody` is the JSON every
 * error response carries.
 */
export abstract class PuttuError extends Error {
  abstract readonly code: string;
  abstract readonly status: number;
  /** Failures of an upstream instance (as opposed to the request, the registry or the proxy). */
  readonly upstream: boolean = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

// --- The library and the registry -------------------------------------------------------------

/** `get(service)` found no live endpoint of that service. */
export class NoEndpointError extends PuttuError {
  readonly code = 'PUTTU_NO_ENDPOINT';
  readonly status = 503;
  readonly service: string;
  constructor(service: string) {
    super(`no live endpoint of service "${service}"`);
    this.service = service;
  }
}

/** Data passed to `register()` (or a name) was rejected before anything was written. */
export class InvalidRegistrationError extends PuttuError {
  readonly code = 'PUTTU_INVALID_REGISTRATION';
  readonly status = 400;
}

/** The handle was closed; the call cannot proceed. */
export class ClosedError extends PuttuError {
  readonly code = 'PUTTU_CLOSED';
  readonly status = 503;
  constructor(what = 'puttu client') {
    super(`${what} is closed`);
  }
}

/** A module-level `register()`, `get()` or `list()` before any `connect()`. */
export class NotConnectedError extends PuttuError {
  readonly code = 'PUTTU_NOT_CONNECTED';
  readonly status = 503;
  constructor() {
    super('call connect(connectString, basePath) before the module-level register(), get() or list()');
  }
}

/** ZooKeeper did not answer in time or the connection was lost. */
export class ZooKeeperUnavailableError extends PuttuError {
  readonly code = 'PUTTU_ZK_UNAVAILABLE';
  readonly status = 503;
}

/** One ZooKeeper operation failed: `code` is PUTTU_ZK_<the server's or the client's reason>. */
export class ZkError extends PuttuError {
  readonly code: string;
  readonly status = 503;
  readonly zkCode: string;
  readonly path: string | undefined;
  constructor(zkCode: string, message: string, path?: string) {
    super(message);
    this.code = `PUTTU_ZK_${zkCode.toUpperCase()}`;
    this.zkCode = zkCode;
    this.path = path;
  }
}

/**
 * The TLS connection to ZooKeeper failed in a way retrying cannot fix: the server's certificate
 * did not verify (wrong CA, name mismatch, expired) or the server refused the handshake (it wants a
 * client certificate). `reason` is the TLS error's code, e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE.
 */
export class ZkTlsError extends PuttuError {
  readonly code = 'PUTTU_ZK_TLS';
  readonly status = 503;
  readonly reason: string;
  /** The server (host:port) whose handshake failed last. */
  readonly server: string;
  constructor(reason: string, server: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.reason = reason;
    this.server = server;
  }
}

// --- The command line -------------------------------------------------------------------------

/** A configuration value (flag, environment variable or config file key) is invalid. */
export class ConfigError extends PuttuError {
  readonly code = 'PUTTU_CONFIG';
  readonly status = 400;
  readonly key: string;
  constructor(key: string, source: string, message: string) {
    super(`invalid configuration: ${key} (from ${source}) ${message}`);
    this.key = key;
  }
}

/** A command was used wrongly (unknown flag, missing argument). */
export class UsageError extends PuttuError {
  readonly code = 'PUTTU_USAGE';
  readonly status = 400;
}

// --- Requests the proxy refuses ---------------------------------------------------------------

export class BadRequestError extends PuttuError {
  readonly code = 'PUTTU_BAD_REQUEST';
  readonly status = 400;
}
export class BadPathError extends PuttuError {
  readonly code = 'PUTTU_BAD_PATH';
  readonly status = 400;
}
/** Not one of the admin listener's endpoints. */
export class NotFoundError extends PuttuError {
  readonly code = 'PUTTU_NOT_FOUND';
  readonly status = 404;
}
export class UnknownServiceError extends PuttuError {
  readonly code = 'PUTTU_UNKNOWN_SERVICE';
  readonly status = 404;
  constructor() {
    super('no such service in the registry');
  }
}
export class MethodNotAllowedError extends PuttuError {
  readonly code = 'PUTTU_METHOD_NOT_ALLOWED';
  readonly status = 405;
}
/** A write to the registration API without the bearer token it needs (sent with WWW-Authenticate). */
export class UnauthorizedError extends PuttuError {
  readonly code = 'PUTTU_UNAUTHORIZED';
  readonly status = 401;
}
/** A registration whose address the upstream policy refuses: it would never be routed. */
export class RegistrationRefusedError extends PuttuError {
  readonly code = 'PUTTU_REGISTRATION_REFUSED';
  readonly status = 403;
}
/** A registration whose path holds a znode of another kind, which it must not replace. */
export class RegistrationConflictError extends PuttuError {
  readonly code = 'PUTTU_REGISTRATION_CONFLICT';
  readonly status = 409;
}
/** The registration API holds as many registrations as it may; a new one waits for a DELETE or a lapse. */
export class RegistrationLimitError extends PuttuError {
  readonly code = 'PUTTU_REGISTRATION_LIMIT';
  readonly status = 503;
}
/** A request body in a media type the endpoint does not read. */
export class UnsupportedMediaTypeError extends PuttuError {
  readonly code = 'PUTTU_UNSUPPORTED_MEDIA_TYPE';
  readonly status = 415;
}
/** The request's head did not arrive in time. */
export class RequestTimeoutError extends PuttuError {
  readonly code = 'PUTTU_REQUEST_TIMEOUT';
  readonly status = 408;
  constructor() {
    super('request not received in time');
  }
}
export class PayloadTooLargeError extends PuttuError {
  readonly code = 'PUTTU_PAYLOAD_TOO_LARGE';
  readonly status = 413;
}
export class HeadersTooLargeError extends PuttuError {
  readonly code = 'PUTTU_HEADERS_TOO_LARGE';
  readonly status = 431;
  constructor() {
    super('request headers too large');
  }
}
export class NotReadyError extends PuttuError {
  readonly code = 'PUTTU_NOT_READY';
  readonly status = 503;
  constructor() {
    super('the registry has not been read from ZooKeeper yet');
  }
}
export class NoInstancesError extends PuttuError {
  readonly code = 'PUTTU_NO_INSTANCES';
  readonly status = 503;
  constructor() {
    super('the service has no live instance');
  }
}

/**
 * The client went away before its answer was complete. Never sent (there is nobody to send it
 * to); 499 is what access logs and metrics record for it, as nginx does.
 */
export class ClientGoneError extends PuttuError {
  readonly code = 'PUTTU_CLIENT_GONE';
  readonly status = 499;
  constructor() {
    super('the client closed the connection');
  }
}

// --- Upstream failures ------------------------------------------------------------------------

abstract class UpstreamError extends PuttuError {
  override readonly upstream = true;
}
export class UpstreamRefusedError extends UpstreamError {
  readonly code = 'PUTTU_UPSTREAM_REFUSED';
  readonly status = 502;
  constructor() {
    super('the upstream instance refused the connection');
  }
}
export class UpstreamUnreachableError extends UpstreamError {
  readonly code = 'PUTTU_UPSTREAM_UNREACHABLE';
  readonly status = 502;
  constructor() {
    super('the upstream instance is unreachable');
  }
}
export class UpstreamResetError extends UpstreamError {
  readonly code = 'PUTTU_UPSTREAM_RESET';
  readonly status = 502;
  constructor() {
    super('the upstream instance closed the connection before answering');
  }
}
export class UpstreamBadResponseError extends UpstreamError {
  readonly code = 'PUTTU_UPSTREAM_BAD_RESPONSE';
  readonly status = 502;
  constructor() {
    super('the upstream instance sent an invalid response');
  }
}
export class UpstreamConnectTimeoutError extends UpstreamError {
  readonly code = 'PUTTU_UPSTREAM_CONNECT_TIMEOUT';
  readonly status = 504;
  constructor() {
    super('connecting to the upstream instance timed out');
  }
}
export class UpstreamTimeoutError extends UpstreamError {
  readonly code = 'PUTTU_UPSTREAM_TIMEOUT';
  readonly status = 504;
  constructor() {
    super('the upstream instance did not answer in time');
  }
}
export class UpstreamTlsError extends UpstreamError {
  readonly code = 'PUTTU_UPSTREAM_TLS';
  readonly status = 502;
  constructor() {
    super('the upstream instance failed TLS verification');
  }
}
export class UpstreamPolicyError extends UpstreamError {
  readonly code = 'PUTTU_UPSTREAM_POLICY';
  readonly status = 502;
  constructor() {
    super('the upstream address is not allowed by the proxy policy');
  }
}
/** A gRPC call's grpc-timeout passed before the upstream's answer was complete (DEADLINE_EXCEEDED). */
export class GrpcDeadlineError extends PuttuError {
  readonly code = 'PUTTU_GRPC_DEADLINE';
  readonly status = 504;
  constructor() {
    super('the call did not complete within its grpc-timeout');
  }
}
export class InternalError extends PuttuError {
  readonly code = 'PUTTU_INTERNAL';
  readonly status = 500;
  constructor() {
    super('internal proxy error');
  }
}

/** Every code a metric label may carry (bounded by construction). */
export const UPSTREAM_ERROR_CODES = [
  'PUTTU_UPSTREAM_REFUSED',
  'PUTTU_UPSTREAM_UNREACHABLE',
  'PUTTU_UPSTREAM_RESET',
  'PUTTU_UPSTREAM_BAD_RESPONSE',
  'PUTTU_UPSTREAM_CONNECT_TIMEOUT',
  'PUTTU_UPSTREAM_TIMEOUT',
  'PUTTU_UPSTREAM_POLICY',
  'PUTTU_UPSTREAM_TLS',
] as const;

/** Certificate and handshake failures (OpenSSL verify codes and Node's TLS errors). */
export const TLS_CODE =
  /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|EPROTO$|HOSTNAME_MISMATCH$)/;

const BY_ERRNO: Record<string, () => PuttuError> = {
  ECONNREFUSED: () => new UpstreamRefusedError(),
  PUTTU_UPSTREAM_POLICY: () => new UpstreamPolicyError(),
  ECONNRESET: () => new UpstreamResetError(),
  EPIPE: () => new UpstreamResetError(),
  UND_ERR_SOCKET: () => new UpstreamResetError(),
  UND_ERR_CLOSED: () => new UpstreamResetError(),
  EHOSTUNREACH: () => new UpstreamUnreachableError(),
  ENETUNREACH: () => new UpstreamUnreachableError(),
  EHOSTDOWN: () => new UpstreamUnreachableError(),
  ENOTFOUND: () => new UpstreamUnreachableError(),
  EAI_AGAIN: () => new UpstreamUnreachableError(),
  EADDRNOTAVAIL: () => new UpstreamUnreachableError(),
  UND_ERR_CONNECT_TIMEOUT: () => new UpstreamConnectTimeoutError(),
  ETIMEDOUT: () => new UpstreamConnectTimeoutError(),
  UND_ERR_HEADERS_TIMEOUT: () => new UpstreamTimeoutError(),
  UND_ERR_BODY_TIMEOUT: () => new UpstreamTimeoutError(),
  HPE_INVALID_CONSTANT: () => new UpstreamBadResponseError(),
  UND_ERR_INFO: () => new UpstreamBadResponseError(),
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: () => new UpstreamBadResponseError(),
  UND_ERR_RES_EXCEEDED_MAX_SIZE: () => new UpstreamBadResponseError(),
  UND_ERR_HEADERS_OVERFLOW: () => new UpstreamBadResponseError(),
};

export function toProxyError(error: unknown): PuttuError {
  if (error instanceof PuttuError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  // Object.hasOwn: a code such as "constructor" must not find Object.prototype's members.
  const make =
    typeof code === 'string'
      ? ((Object.hasOwn(BY_ERRNO, code) ? BY_ERRNO[code] : undefined) ??
        (code.startsWith('HPE_') ? BY_ERRNO.HPE_INVALID_CONSTANT : undefined))
      : undefined;
  if (make) return make();
  return typeof code === 'string' && TLS_CODE.test(code) ? new UpstreamTlsError() : new InternalError();
}

/** The JSON error body every error response carries (messages never hold internal addresses). */
export function errorBody(error: PuttuError): string {
  return JSON.stringify({ error: { code: error.code, status: error.status, message: error.message } });
}
