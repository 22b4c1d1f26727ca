/** HTTP listeners with an orderly close: stop accepting, let in-flight requests finish (bounded). */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Listener {
  readonly server: http.Server;
  listen(port: number, host: string): Promise<AddressInfo>;
  /** Stops accepting; closes idle keep-alive sockets; after `graceMs` cuts what is left. */
  close(graceMs: number): Promise<void>;
}

export interface ListenerOptions {
  /** Whole-request receive limit (slow clients), ms. */
  requestTimeoutMs?: number;
  /** Limit for receiving the request head (trickled headers), ms. */
  headersTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  maxHeaderSize?: number;
}

export function createListener(handler: http.RequestListener, options: ListenerOptions = {}): Listener {
  const server = http.createServer(
    {
      requestTimeout: options.requestTimeoutMs ?? 300_000,
      headersTimeout: options.headersTimeoutMs ?? 10_000,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 5_000,
      maxHeaderSize: options.maxHeaderSize ?? 16 * 1024,
      // Parse strictly: no lenient framing a backend might read differently (request smuggling).
      insecureHTTPParser: false,
    },
    handler,
  );
  let closing: Promise<void> | undefined;
  return {
    server,
    listen: (port, host) =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      }),
    close(graceMs) {
      closing ??= new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => {
          clearInterval(idle);
          clearTimeout(cut);
          resolve();
        });
        // Keep-alive sockets that finish their response while we wait become idle: close them too.
        const idle = setInterval(() => server.closeIdleConnections(), 50);
        server.closeIdleConnections();
        const cut = setTimeout(() => {
          clearInterval(idle);
          server.closeAllConnections();
        }, graceMs);
      });
      return closing;
    },
  };
}

export function urlOf(address: AddressInfo, proto = 'http'): string {
  const host = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.address;
  return `${proto}://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}
