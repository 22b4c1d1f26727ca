import test from 'ava';
import { decodeInstance, type Instance } from '../../proxy/registry/instance.js';

const decode = (data: object): Instance => {
  const result = decodeInstance('svc', 'n1', Buffer.from(JSON.stringify(data)));
  if (!result.ok) throw new Error(result.reason);
  return result.instance;
};

test('puttu JSON: protocol h2c is HTTP/2 over TCP (origin http://), h2 over TLS (origin https://)', (t) => {
  t.like(decode({ protocol: 'h2c', host: '10.0.0.5', port: 50051, api: '' }), { protocol: 'h2c', origin: 'http://10.0.0.5:50051' });
  t.like(decode({ protocol: 'h2', host: '10.0.0.5', port: 8443, api: '' }), { protocol: 'h2', origin: 'https://10.0.0.5:8443' });
});

test('Curator: payload.metadata.protocol h2c / h2 makes the instance HTTP/2, over the port or sslPort', (t) => {
  const curator = (fields: Record<string, unknown>) => ({
    name: 'svc',
    id: 'c1',
    address: '127.0.0.1',
    port: null,
    sslPort: null,
    registrationTimeUTC: 1700000000000,
    serviceType: 'DYNAMIC',
    uriSpec: null,
    ...fields,
  });
  const meta = (protocol: string) => ({ payload: { metadata: { protocol } } });
  t.like(decode(curator({ port: 50051, ...meta('h2c') })), { protocol: 'h2c', origin: 'http://127.0.0.1:50051' });
  t.like(decode(curator({ sslPort: 8443, ...meta('h2') })), { protocol: 'h2', origin: 'https://127.0.0.1:8443' });
  t.like(decode(curator({ sslPort: 8443, ...meta('h2c') })), { protocol: 'h2', origin: 'https://127.0.0.1:8443' }, 'TLS port: h2');
  t.like(decode(curator({ port: 8080, ...meta('grpc') })), { protocol: 'http' }, 'anything else: as before');
  t.like(decode(curator({ port: 8080 })), { protocol: 'http' });
});
