/** Test certificates, generated with openssl in a folder of their own: nothing is checked in. */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface TestCertificates {
  dir: string;
  /** The CA that signed the server and client certificates. */
  ca: string;
  /** Another CA, which signed nothing here: trusting only it must fail verification. */
  otherCa: string;
  /** The server's certificate (SAN IP:127.0.0.1, DNS:localhost) and key. */
  serverCert: string;
  serverKey: string;
  /** The server's key and certificate in one PEM file (ZooKeeper's PEM key store). */
  serverStore: string;
  clientCert: string;
  clientKey: string;
  /** A self-signed certificate for 127.0.0.1 (no CA vouches for it) and its key. */
  selfCert: string;
  selfKey: string;
}

/** Paths of freshly generated PEM files in `dir` (EC P-256 keys, valid for a day). */
export function generateCertificates(dir: string): TestCertificates {
  fs.mkdirSync(dir, { recursive: true });
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const selfSigned = (name: string, cn: string) =>
    openssl('req', '-x509', ...ec, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '1', '-subj', `/CN=${cn}`);
  const signed = (name: string, cn: string, ext: string) => {
    openssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
    openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '1',
      '-extfile',
      `${name}.ext`,
    );
  };
  selfSigned('ca', 'puttu test CA');
  selfSigned('other-ca', 'puttu other CA');
  signed('server', 'localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  signed('client', 'puttu test client', 'extendedKeyUsage=clientAuth\n');
  const san = ['-addext', 'subjectAltName=IP:127.0.0.1'];
  openssl('req', '-x509', ...ec, '-keyout', 'self.key', '-out', 'self.pem', '-days', '1', '-subj', '/CN=127.0.0.1', ...san);
  const file = (name: string) => path.join(dir, name);
  fs.writeFileSync(file('server-store.pem'), fs.readFileSync(file('server.key'), 'utf8') + fs.readFileSync(file('server.pem'), 'utf8'));
  return {
    dir,
    ca: file('ca.pem'),
    otherCa: file('other-ca.pem'),
    serverCert: file('server.pem'),
    serverKey: file('server.key'),
    serverStore: file('server-store.pem'),
    clientCert: file('client.pem'),
    clientKey: file('client.key'),
    selfCert: file('self.pem'),
    selfKey: file('self.key'),
  };
}
