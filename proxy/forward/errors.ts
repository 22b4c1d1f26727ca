/**
 * Every way a proxied request can fail, each one class with a stable code and an HTTP status,
 * mapped to a response in one place (`toProxyError` + `errorBody`). Messages never carry internal
 * addresses or stacks: they go to clients.
 */
export abstract class ProxyError extends Error {
  abstract readonly code: string;
  abstract readonly status: number;
  /** Failures of the upstream (as opposed to the request or the registry). */
  readonly upstream: boolean = false;
}

export class BadRequestError extends ProxyError {
  readonly code = 'PUTTU_BAD_REQUEST';
  readonly status = 400;
}
export class BadPathError extends ProxyError {
  readonly code = 'PUTTU_BAD_PATH';
  readonly status = 400;
}
export class UnknownServiceError extends ProxyError {
  readonly code = 'PUTTU_UNKNOWN_SERVICE';
  readonly status = 404;
  constructor() {
    super('no such service in the registry');
  }
}
export class PayloadTooLargeError extends ProxyError {
  readonly code = 'PUTTU_PAYLOAD_TOO_LARGE';
  readonly status = 413;
}
export class NotReadyError extends ProxyError {
  readonly code = 'PUTTU_NOT_READY';
  readonly status = 503;
  constructor() {
    super('the registry has not been read from ZooKeeper yet');
  }
}
export class NoInstancesError extends ProxyError {
  readonly code = 'PUTTU_NO_INSTANCES';
  readonly status = 503;
  constructor() {
    super('the service has no live instance');
  }
}
abstract class UpstreamError extends ProxyError {
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
export class InternalError extends ProxyError {
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
const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|EPROTO$|HOSTNAME_MISMATCH$)/;

const BY_ERRNO: Record<string, () => ProxyError> = {
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

export function toProxyError(error: unknown): ProxyError {
  if (error instanceof ProxyError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  // Object.hasOwn: a code such as "constructor" must not find Object.prototype's members.
  const make = typeof code === 'string' ? ((Object.hasOwn(BY_ERRNO, code) ? BY_ERRNO[code] : undefined) ?? (code.startsWith('HPE_') ? BY_ERRNO.HPE_INVALID_CONSTANT : undefined)) : undefined;
  if (make) return make();
  return typeof code === 'string' && TLS_CODE.test(code) ? new UpstreamTlsError() : new InternalError();
}

/** The JSON error body every error response carries. */
export function errorBody(error: ProxyError): string {
  return JSON.stringify({ error: { code: error.code, status: error.status, message: error.message } });
}
