import { readdirSync, readFileSync } from 'node:fs';
import test from 'ava';
import { errors as undiciErrors } from 'undici';
import {
  BadPathError,
  BadRequestError,
  InternalError,
  NoInstancesError,
  NotReadyError,
  PayloadTooLargeError,
  PuttuError,
  UPSTREAM_ERROR_CODES,
  UnknownServiceError,
  UpstreamBadResponseError,
  UpstreamConnectTimeoutError,
  UpstreamRefusedError,
  UpstreamResetError,
  UpstreamTimeoutError,
  UpstreamPolicyError,
  UpstreamTlsError,
  UpstreamUnreachableError,
  errorBody,
  toProxyError,
} from '../../proxy/errors.js';

/** An error as Node's net/dns layer raises it: the message carries the address. */
function sysError(code: string, address = '10.1.2.3:8080'): Error {
  return Object.assign(new Error(`connect ${code} ${address}`), { code, errno: -111, syscall: 'connect', address: '10.1.2.3', port: 8080 });
}

type Ctor = abstract new (...args: never[]) => PuttuError;
const MAPPING: Array<[code: string, cls: Ctor, proxyCode: string, status: number]> = [
  ['ECONNREFUSED', UpstreamRefusedError, 'PUTTU_UPSTREAM_REFUSED', 502],
  ['ECONNRESET', UpstreamResetError, 'PUTTU_UPSTREAM_RESET', 502],
  ['EPIPE', UpstreamResetError, 'PUTTU_UPSTREAM_RESET', 502],
  ['UND_ERR_SOCKET', UpstreamResetError, 'PUTTU_UPSTREAM_RESET', 502],
  ['UND_ERR_CLOSED', UpstreamResetError, 'PUTTU_UPSTREAM_RESET', 502],
  ['EHOSTUNREACH', UpstreamUnreachableError, 'PUTTU_UPSTREAM_UNREACHABLE', 502],
  ['ENETUNREACH', UpstreamUnreachableError, 'PUTTU_UPSTREAM_UNREACHABLE', 502],
  ['EHOSTDOWN', UpstreamUnreachableError, 'PUTTU_UPSTREAM_UNREACHABLE', 502],
  ['ENOTFOUND', UpstreamUnreachableError, 'PUTTU_UPSTREAM_UNREACHABLE', 502],
  ['EAI_AGAIN', UpstreamUnreachableError, 'PUTTU_UPSTREAM_UNREACHABLE', 502],
  ['EADDRNOTAVAIL', UpstreamUnreachableError, 'PUTTU_UPSTREAM_UNREACHABLE', 502],
  ['UND_ERR_CONNECT_TIMEOUT', UpstreamConnectTimeoutError, 'PUTTU_UPSTREAM_CONNECT_TIMEOUT', 504],
  ['ETIMEDOUT', UpstreamConnectTimeoutError, 'PUTTU_UPSTREAM_CONNECT_TIMEOUT', 504],
  ['UND_ERR_HEADERS_TIMEOUT', UpstreamTimeoutError, 'PUTTU_UPSTREAM_TIMEOUT', 504],
  ['UND_ERR_BODY_TIMEOUT', UpstreamTimeoutError, 'PUTTU_UPSTREAM_TIMEOUT', 504],
  ['HPE_INVALID_CONSTANT', UpstreamBadResponseError, 'PUTTU_UPSTREAM_BAD_RESPONSE', 502],
  ['HPE_INVALID_HEADER_TOKEN', UpstreamBadResponseError, 'PUTTU_UPSTREAM_BAD_RESPONSE', 502],
  ['HPE_UNEXPECTED_CONTENT_LENGTH', UpstreamBadResponseError, 'PUTTU_UPSTREAM_BAD_RESPONSE', 502],
  ['UND_ERR_INFO', UpstreamBadResponseError, 'PUTTU_UPSTREAM_BAD_RESPONSE', 502],
  ['UND_ERR_RES_CONTENT_LENGTH_MISMATCH', UpstreamBadResponseError, 'PUTTU_UPSTREAM_BAD_RESPONSE', 502],
  ['UND_ERR_RES_EXCEEDED_MAX_SIZE', UpstreamBadResponseError, 'PUTTU_UPSTREAM_BAD_RESPONSE', 502],
  ['UND_ERR_HEADERS_OVERFLOW', UpstreamBadResponseError, 'PUTTU_UPSTREAM_BAD_RESPONSE', 502],
];

for (const [code, cls, proxyCode, status] of MAPPING) {
  test(`toProxyError: ${code} → ${proxyCode} ${status}`, (t) => {
    const e = toProxyError(sysError(code));
    t.true(e instanceof cls);
    t.true(e instanceof PuttuError);
    t.is(e.code, proxyCode);
    t.is(e.status, status);
    t.true(e.upstream);
    t.true((UPSTREAM_ERROR_CODES as readonly string[]).includes(e.code));
  });
}

test('toProxyError maps the errors undici really raises (codes taken from undici itself)', (t) => {
  const cases: Array<[Error, string]> = [
    [new undiciErrors.ConnectTimeoutError(), 'PUTTU_UPSTREAM_CONNECT_TIMEOUT'],
    [new undiciErrors.HeadersTimeoutError(), 'PUTTU_UPSTREAM_TIMEOUT'],
    [new undiciErrors.BodyTimeoutError(), 'PUTTU_UPSTREAM_TIMEOUT'],
    [new undiciErrors.SocketError('other side closed'), 'PUTTU_UPSTREAM_RESET'],
    [new undiciErrors.ClientClosedError(), 'PUTTU_UPSTREAM_RESET'],
    [new undiciErrors.InformationalError('bad'), 'PUTTU_UPSTREAM_BAD_RESPONSE'],
    [new undiciErrors.ResponseContentLengthMismatchError(), 'PUTTU_UPSTREAM_BAD_RESPONSE'],
    [new undiciErrors.ResponseExceededMaxSizeError(), 'PUTTU_UPSTREAM_BAD_RESPONSE'],
    [new undiciErrors.HeadersOverflowError(), 'PUTTU_UPSTREAM_BAD_RESPONSE'],
    [
      new (undiciErrors.HTTPParserError as unknown as new (message: string, code: string) => Error)(
        'Invalid header value char',
        'INVALID_HEADER_TOKEN',
      ),
      'PUTTU_UPSTREAM_BAD_RESPONSE',
    ],
  ];
  for (const [error, code] of cases) t.is(toProxyError(error).code, code, (error as Error & { code?: string }).code);
});

test('toProxyError: unknown codes and non-errors become a generic 500', (t) => {
  for (const input of [
    new Error('boom at 10.0.0.1'),
    sysError('EWHATEVER'),
    { code: 42 },
    { code: 'toString' },
    { code: '__proto__' },
    null,
    undefined,
    'ECONNREFUSED',
    42,
    new TypeError('x'),
  ]) {
    const e = toProxyError(input);
    t.true(e instanceof InternalError, String(input));
    t.is(e.code, 'PUTTU_INTERNAL');
    t.is(e.status, 500);
    t.false(e.upstream);
  }
});

test('toProxyError: a PuttuError passes through as the same object', (t) => {
  const errors = [
    new BadPathError('x'),
    new UnknownServiceError(),
    new NotReadyError(),
    new NoInstancesError(),
    new PayloadTooLargeError('big'),
    new UpstreamTimeoutError(),
  ];
  for (const e of errors) t.is(toProxyError(e), e);
});

test('request-side and registry errors: codes, statuses, not upstream', (t) => {
  const cases: Array<[PuttuError, string, number]> = [
    [new BadRequestError('bad'), 'PUTTU_BAD_REQUEST', 400],
    [new BadPathError('bad'), 'PUTTU_BAD_PATH', 400],
    [new UnknownServiceError(), 'PUTTU_UNKNOWN_SERVICE', 404],
    [new PayloadTooLargeError('big'), 'PUTTU_PAYLOAD_TOO_LARGE', 413],
    [new NotReadyError(), 'PUTTU_NOT_READY', 503],
    [new NoInstancesError(), 'PUTTU_NO_INSTANCES', 503],
    [new InternalError(), 'PUTTU_INTERNAL', 500],
  ];
  for (const [e, code, status] of cases) {
    t.is(e.code, code);
    t.is(e.status, status, code);
    t.false(e.upstream, code);
  }
});

test('UPSTREAM_ERROR_CODES lists exactly the codes of the upstream classes', (t) => {
  const upstream = [
    new UpstreamRefusedError(),
    new UpstreamUnreachableError(),
    new UpstreamResetError(),
    new UpstreamBadResponseError(),
    new UpstreamConnectTimeoutError(),
    new UpstreamTimeoutError(),
    new UpstreamPolicyError(),
    new UpstreamTlsError(),
  ];
  t.deepEqual([...UPSTREAM_ERROR_CODES].sort(), upstream.map((e) => e.code).sort());
  t.true(upstream.every((e) => e.upstream));
});

test('errorBody is {error: {code, status, message}} and nothing else', (t) => {
  const body = JSON.parse(errorBody(new NoInstancesError())) as unknown;
  t.deepEqual(body, { error: { code: 'PUTTU_NO_INSTANCES', status: 503, message: 'the service has no live instance' } });
  t.deepEqual(JSON.parse(errorBody(new BadPathError('path climbs above the service'))), {
    error: { code: 'PUTTU_BAD_PATH', status: 400, message: 'path climbs above the service' },
  });
});

test('errorBody of a mapped failure carries no stack, no address and no original message', (t) => {
  const inputs = [
    sysError('ECONNREFUSED', '10.9.8.7:4321'),
    sysError('ENOTFOUND', 'db.internal.example:5432'),
    new Error('secret at /srv/app/x.js:10 10.9.8.7'),
    new undiciErrors.SocketError('other side closed'),
  ];
  for (const input of inputs) {
    const text = errorBody(toProxyError(input));
    const body = JSON.parse(text) as { error: Record<string, unknown> };
    t.deepEqual(Object.keys(body), ['error']);
    t.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'status']);
    t.false(text.includes('10.9.8.7'), text);
    t.false(text.includes('internal.example'), text);
    t.false(text.includes('/srv/app'), text);
    t.false(text.includes('other side closed'), text);
    t.false(/stack|\bat \S+ \(|\.js:\d+/.test(text), text);
  }
});

test('TLS verification and handshake failures map to 502 PUTTU_UPSTREAM_TLS', (t) => {
  for (const code of [
    'DEPTH_ZERO_SELF_SIGNED_CERT',
    'SELF_SIGNED_CERT_IN_CHAIN',
    'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    'CERT_HAS_EXPIRED',
    'ERR_TLS_CERT_ALTNAME_INVALID',
    'EPROTO',
    'ERR_SSL_WRONG_VERSION_NUMBER',
  ]) {
    const e = toProxyError(Object.assign(new Error('x'), { code }));
    t.is(e.code, 'PUTTU_UPSTREAM_TLS', code);
    t.is(e.status, 502, code);
  }
});

test('the catalogue: every error class is a PuttuError with its own name, a unique code and an HTTP status', async (t) => {
  const catalogue = (await import('../../proxy/errors.js')) as Record<string, unknown>;
  const classes = Object.entries(catalogue).filter(
    ([, v]) => typeof v === 'function' && (v as { prototype?: unknown }).prototype instanceof PuttuError,
  );
  t.true(classes.length >= 25, `${classes.length} classes`);
  const codes = new Map<string, string>();
  for (const [name, cls] of classes) {
    const error = new (cls as new (...args: string[]) => PuttuError)('a', 'b', 'c');
    t.is(error.name, name);
    t.true(error instanceof Error);
    t.regex(error.code, /^PUTTU_[A-Z_]+$/, name);
    t.true(Number.isInteger(error.status) && error.status >= 400 && error.status <= 599, `${name}: status ${error.status}`);
    // ZkError's code follows the ZooKeeper reason it carries.
    if (name !== 'ZkError') {
      t.false(codes.has(error.code), `${name} and ${codes.get(error.code)} share ${error.code}`);
      codes.set(error.code, name);
    }
  }
});

test('no error code is minted outside the catalogue: the sources name PUTTU_ codes only in proxy/errors.ts', (t) => {
  const root = new URL('../../../proxy/', import.meta.url);
  const offenders: string[] = [];
  const walk = (relative: string): void => {
    for (const entry of readdirSync(new URL(relative, root), { withFileTypes: true })) {
      const path = `${relative}${entry.name}`;
      if (entry.isDirectory()) walk(`${path}/`);
      else if (path.endsWith('.ts') && path !== 'errors.ts') {
        const text = readFileSync(new URL(path, root), 'utf8');
        for (const m of text.matchAll(/['"]PUTTU_[A-Z][A-Z_]*['"]/g)) offenders.push(`proxy/${path}: ${m[0]}`);
      }
    }
  };
  walk('');
  t.deepEqual(offenders, []);
});
