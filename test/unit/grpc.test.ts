import test from 'ava';
import {
  GrpcDeadlineError,
  HeadersTooLargeError,
  InternalError,
  NoInstancesError,
  NotReadyError,
  PayloadTooLargeError,
  UnknownServiceError,
  UpstreamConnectTimeoutError,
  UpstreamRefusedError,
  UpstreamResetError,
  UpstreamTimeoutError,
  BadPathError,
} from '../../proxy/errors.js';
import { grpcStatusOf, grpcTimeoutMs, isGrpc } from '../../proxy/forward/grpc.js';
import { H2_PREFACE, prefaceVerdict } from '../../proxy/http/h2.js';
import { DROP, RELAY, responseField } from '../../proxy/forward/headers.js';

test('isGrpc: application/grpc and its +proto / +json / parameters, nothing else', (t) => {
  for (const yes of [
    'application/grpc',
    'application/grpc+proto',
    'application/grpc+json',
    'Application/GRPC',
    'application/grpc;charset=utf-8',
  ])
    t.true(isGrpc(yes), yes);
  for (const no of [
    undefined,
    '',
    'application/json',
    'application/grpc-web',
    'application/grpc-web+proto',
    'application/grpcx',
    ['application/grpc'],
  ])
    t.false(isGrpc(no as string | undefined), String(no));
});

test('grpcTimeoutMs reads every unit, rounds up to whole ms, and refuses malformed values', (t) => {
  t.is(grpcTimeoutMs('1H'), 3_600_000);
  t.is(grpcTimeoutMs('2M'), 120_000);
  t.is(grpcTimeoutMs('3S'), 3_000);
  t.is(grpcTimeoutMs('250m'), 250);
  t.is(grpcTimeoutMs('1500u'), 2);
  t.is(grpcTimeoutMs('10n'), 1);
  t.is(grpcTimeoutMs('99999999m'), 99_999_999);
  for (const bad of [undefined, '', 'm', '123', '123456789m', '1.5S', '-1S', '10s', '10 S', ['1S']])
    t.is(grpcTimeoutMs(bad as string), undefined, String(bad));
});

test('grpcStatusOf follows gRPC HTTP mapping: unknown service UNIMPLEMENTED, no instance UNAVAILABLE, deadlines DEADLINE_EXCEEDED', (t) => {
  t.is(grpcStatusOf(new UnknownServiceError()), 12);
  t.is(grpcStatusOf(new NoInstancesError()), 14);
  t.is(grpcStatusOf(new NotReadyError()), 14);
  t.is(grpcStatusOf(new UpstreamRefusedError()), 14);
  t.is(grpcStatusOf(new UpstreamResetError()), 14);
  t.is(grpcStatusOf(new UpstreamConnectTimeoutError()), 14);
  t.is(grpcStatusOf(new UpstreamTimeoutError()), 4);
  t.is(grpcStatusOf(new GrpcDeadlineError()), 4);
  t.is(grpcStatusOf(new HeadersTooLargeError()), 8);
  t.is(grpcStatusOf(new PayloadTooLargeError('x')), 8);
  t.is(grpcStatusOf(new BadPathError('x')), 13);
  t.is(grpcStatusOf(new InternalError()), 13);
});

test('the h2c preface is recognised by its first line; a shorter read that could still be it waits; HTTP/1.1 never', (t) => {
  t.is(prefaceVerdict(H2_PREFACE), 'h2');
  t.is(prefaceVerdict(Buffer.concat([H2_PREFACE, Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])])), 'h2');
  t.is(prefaceVerdict(Buffer.from('PRI * HTTP/2.0\r\n')), 'h2');
  t.is(prefaceVerdict(Buffer.from('PRI * HT')), undefined);
  t.is(prefaceVerdict(Buffer.from('P')), undefined, 'PUT, POST, PATCH and PRI all begin so');
  t.is(prefaceVerdict(Buffer.alloc(0)), undefined);
  t.is(prefaceVerdict(Buffer.from('PU')), 'h1');
  t.is(prefaceVerdict(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n')), 'h1');
  t.is(prefaceVerdict(Buffer.from('PRI * HTTP/1.1\r\n\r\n')), 'h1');
  t.is(prefaceVerdict(Buffer.from('POST /x HTTP/1.1\r\n')), 'h1');
});

test('the one response-header policy drops every connection-specific field HTTP/2 forbids (RFC 9113 §8.2.2)', (t) => {
  for (const name of ['Connection', 'keep-alive', 'Proxy-Connection', 'transfer-encoding', 'Upgrade', 'TE', 'trailer'])
    t.is(responseField(Buffer.from(name), Buffer.from('close')), DROP, name);
  t.is(responseField(Buffer.from('grpc-status'), Buffer.from('0')), RELAY);
  t.is(responseField(Buffer.from('content-type'), Buffer.from('application/grpc')), RELAY);
});
