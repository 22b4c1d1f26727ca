/**
 * ZooKeeper over TLS, the parts above the socket: the options a client takes, reading them from
 * PEM files for the command line (each bad file a ConfigError naming its key), and telling a
 * failure retrying cannot fix (a certificate that does not verify, a refused handshake) from a
 * network error, as a ZkTlsError that says what to check. The socket itself is opened in
 * deps/zookeeper-client.ts (tlsSockets).
 */
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import tls from 'node:tls';
import { ConfigError, TLS_CODE, ZkTlsError } from '../errors.js';

export { ZkTlsError };

/**
 * How to reach ZooKeeper's secureClientPort. PEM contents, as Node's tls.connect takes them:
 * `ca` replaces the system roots (omit it for a server certificate from a public CA); `cert` and
 * `key`, both or neither, are the client certificate for servers with ssl.clientAuth=need;
 * `servername` is the name the certificate must carry (default: the host of the connect string).
 */
export interface ZkTlsOptions {
  ca?: string | Buffer | Array<string | Buffer>;
  cert?: string | Buffer;
  key?: string | Buffer;
  servername?: string;
}

/** Checks a library caller's options: a certificate needs its key, and the PEM must parse. */
export function checkZkTlsOptions(options: ZkTlsOptions): ZkTlsOptions {
  if ((options.cert === undefined) !== (options.key === undefined)) {
    throw new TypeError(
      `tls.${options.cert === undefined ? 'cert' : 'key'} is required with tls.${options.cert === undefined ? 'key' : 'cert'}`,
    );
  }
  try {
    for (const ca of options.ca === undefined ? [] : [options.ca].flat()) checkCertificates(ca.toString());
    tls.createSecureContext(withoutUndefined(options));
  } catch (error) {
    throw new TypeError(`tls options are not usable: ${(error as Error).message}`);
  }
  return withoutUndefined(options);
}

/**
 * Parses every certificate of a PEM bundle: Node's TLS context skips an unreadable CA without a
 * word, and the connection would then fail verification with nothing pointing at the file.
 */
function checkCertificates(pem: string): void {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error('no PEM certificate (-----BEGIN CERTIFICATE-----) in it');
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block);
    } catch (error) {
      throw new Error(`certificate ${i + 1} does not parse: ${(error as Error).message}`);
    }
  });
}

export interface ZkTlsFiles {
  zkCa: string;
  zkCert: string;
  zkKey: string;
}

/** A client certificate comes with its key ('' for neither): one check, and one message, for the proxy's configuration and for every command's flags. */
export function checkZkCertPair(files: Pick<ZkTlsFiles, 'zkCert' | 'zkKey'>, source = 'configuration'): void {
  if ((files.zkCert === '') === (files.zkKey === '')) return;
  const [missing, given] = files.zkCert === '' ? ['zkCert', 'zkKey'] : ['zkKey', 'zkCert'];
  throw new ConfigError(missing, source, `is required with ${given}: a client certificate needs both zkCert and zkKey`);
}

/**
 * Reads the PEM files the configuration names ('' for none) and checks that they make a TLS
 * context; every failure is a ConfigError naming the key and the file.
 */
export function readZkTlsFiles(files: ZkTlsFiles, source = 'configuration'): ZkTlsOptions {
  checkZkCertPair(files, source);
  const read = (key: keyof ZkTlsFiles): string | undefined => {
    const file = files[key];
    if (file === '') return undefined;
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (error) {
      throw new ConfigError(key, source, `cannot read ${file}: ${(error as Error).message}`);
    }
    if (!text.includes('-----BEGIN ')) throw new ConfigError(key, source, `${file} holds no PEM block (-----BEGIN ...)`);
    return text;
  };
  const ca = read('zkCa');
  const cert = read('zkCert');
  const key = read('zkKey');
  const options = withoutUndefined({ ca, cert, key });
  if (ca !== undefined) usable(() => checkCertificates(ca), 'zkCa', files.zkCa, source);
  if (cert !== undefined && key !== undefined) {
    usable(() => tls.createSecureContext({ cert, key }), 'zkCert', `${files.zkCert} with ${files.zkKey}`, source);
  }
  return options;
}

function usable(check: () => unknown, key: string, file: string, source: string): void {
  try {
    check();
  } catch (error) {
    throw new ConfigError(key, source, `${file} is not usable: ${(error as Error).message}`);
  }
}

function withoutUndefined<T extends object>(options: T): T {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as T;
}

/**
 * The ZkTlsError for a socket error that retrying will not fix, or undefined for one it may
 * (refused, reset, timed out: the server may be starting or moving).
 */
export function tlsFailure(error: Error & { code?: string }, server: string): ZkTlsError | undefined {
  const code = error.code;
  if (typeof code !== 'string' || !TLS_CODE.test(code)) return undefined;
  const alert = /alert ([a-z0-9 _]+)/i.exec(error.message)?.[1]?.trim();
  let message: string;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    message = `ZooKeeper server ${server}: its TLS certificate does not name it (${error.message}); connect by a name the certificate carries, or set the servername`;
  } else if (alert !== undefined) {
    message = `ZooKeeper server ${server} refused the TLS handshake (${alert}, ${code}): it may require a client certificate (zkCert and zkKey) or not trust the one given`;
  } else if (code.startsWith('ERR_SSL_') || code === 'EPROTO') {
    message = `ZooKeeper server ${server}: TLS handshake failed (${error.message.split('\n')[0]}, ${code}); is it a secureClientPort?`;
  } else {
    message = `ZooKeeper server ${server} failed TLS verification: ${error.message} (${code}); is the CA given (zkCa) the one that signed its certificate?`;
  }
  return new ZkTlsError(code, server, message, { cause: error });
}
