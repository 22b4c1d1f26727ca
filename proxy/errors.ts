/**
 * Errors of the library and the registry, each with a stable `code` callers can test.
 * (The proxy's HTTP-facing errors live in forward/errors.ts.)
 */
export class PuttuError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** `get(service)` found no live endpoint of that service. */
export class NoEndpointError extends PuttuError {
  readonly service: string;
  constructor(service: string) {
    super('PUTTU_NO_ENDPOINT', `no live endpoint of service "${service}"`);
    this.service = service;
  }
}

/** Data passed to `register()` (or a name) was rejected before anything was written. */
export class InvalidRegistrationError extends PuttuError {
  constructor(message: string) {
    super('PUTTU_INVALID_REGISTRATION', message);
  }
}

/** The handle was closed; the call cannot proceed. */
export class ClosedError extends PuttuError {
  constructor(what = 'puttu client') {
    super('PUTTU_CLOSED', `${what} is closed`);
  }
}

/** ZooKeeper did not answer in time or the connection was lost. */
export class ZooKeeperUnavailableError extends PuttuError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PUTTU_ZK_UNAVAILABLE', message, options);
  }
}
