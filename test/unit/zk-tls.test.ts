import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { ConfigError, ZkTlsError } from '../../proxy/errors.js';
import { checkZkTlsOptions, readZkTlsFiles, tlsFailure } from '../../proxy/registry/zk-tls.js';

const fail = (code: string, message = 'x') => Object.assign(new Error(message), { code });

test('tlsFailure: network errors are not TLS failures (they are retried)', (t) => {
  for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'EPIPE'])
    t.is(tlsFailure(fail(code), 'h:1'), undefined, code);
  t.is(tlsFailure(new Error('no code'), 'h:1'), undefined);
});

test('tlsFailure: verification failures, name mismatches and refused handshakes are ZkTlsErrors that say what to check', (t) => {
  const verify = tlsFailure(fail('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate'), '10.0.0.1:2281');
  t.true(verify instanceof ZkTlsError);
  t.is(verify?.code, 'PUTTU_ZK_TLS');
  t.is(verify?.reason, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  t.is(verify?.server, '10.0.0.1:2281');
  t.regex(verify?.message ?? '', /10\.0\.0\.1:2281 failed TLS verification: unable to verify the first certificate .*zkCa/);
  t.regex(tlsFailure(fail('SELF_SIGNED_CERT_IN_CHAIN'), 'h:1')?.message ?? '', /failed TLS verification/);
  t.regex(
    tlsFailure(fail('ERR_TLS_CERT_ALTNAME_INVALID', "Host: a. is not in the cert's altnames"), 'h:1')?.message ?? '',
    /does not name it/,
  );
  const refused = tlsFailure(
    fail('ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'error:0A000412:SSL routines::sslv3 alert bad certificate'),
    'h:1',
  );
  t.regex(refused?.message ?? '', /refused the TLS handshake \(bad certificate, ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE\).*client certificate/);
  t.regex(tlsFailure(fail('ERR_SSL_WRONG_VERSION_NUMBER', 'wrong version number'), 'h:1')?.message ?? '', /secureClientPort/);
});

test('readZkTlsFiles: each bad file is a ConfigError naming its key and path', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'puttu-zk-tls-unit-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const notPem = path.join(dir, 'not.pem');
  fs.writeFileSync(notPem, 'hello');
  const badPem = path.join(dir, 'bad.pem');
  fs.writeFileSync(badPem, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
  const none = { zkCa: '', zkCert: '', zkKey: '' };
  t.deepEqual(readZkTlsFiles(none), {}, 'nothing given: system CAs, no client certificate');
  const missing = t.throws(() => readZkTlsFiles({ ...none, zkCa: path.join(dir, 'nope.pem') }), { instanceOf: ConfigError });
  t.is(missing?.key, 'zkCa');
  t.regex(missing?.message ?? '', /zkCa .*cannot read .*nope\.pem/);
  t.throws(() => readZkTlsFiles({ ...none, zkCa: notPem }), { instanceOf: ConfigError, message: /zkCa .*not\.pem holds no PEM block/ });
  t.throws(() => readZkTlsFiles({ ...none, zkCa: badPem }), { instanceOf: ConfigError, message: /zkCa .*bad\.pem is not usable/ });
  t.throws(() => readZkTlsFiles({ ...none, zkCert: badPem }), { instanceOf: ConfigError, message: /zkKey .*required with zkCert/ });
  t.throws(() => readZkTlsFiles({ ...none, zkCert: badPem, zkKey: notPem }), {
    instanceOf: ConfigError,
    message: /zkKey .*not\.pem holds no PEM block/,
  });
});

test('checkZkTlsOptions: a certificate needs its key; unusable PEM is refused; undefined fields are dropped', (t) => {
  t.throws(() => checkZkTlsOptions({ cert: 'x' }), { instanceOf: TypeError, message: /tls\.key is required with tls\.cert/ });
  t.throws(() => checkZkTlsOptions({ key: 'x' }), { instanceOf: TypeError, message: /tls\.cert is required with tls\.key/ });
  t.throws(() => checkZkTlsOptions({ ca: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }), {
    message: /tls options are not usable/,
  });
  t.deepEqual(checkZkTlsOptions({ servername: 'zk.example', ca: undefined }), { servername: 'zk.example' });
});
