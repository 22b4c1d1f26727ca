/** Real HTTP backends on loopback for proxy tests. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
}

export interface Upstream {
  readonly name: string;
  readonly port: number;
  readonly server: http.Server;
  readonly seen: SeenRequest[];
  close(): Promise<void>;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, upstream: Upstream) => void;

/** The default backend: answers JSON describing the request it received. */
export const echo: Handler = (req, res, upstream) => {
  const body = JSON.stringify({ name: upstream.name, method: req.method, url: req.url, headers: req.headers });
  res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': upstream.name });
  res.end(body);
};

export async function startUpstream(name: string, handler: Handler = echo): Promise<Upstream> {
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders });
    handler(req, res, upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const upstream: Upstream = {
    name,
    port: (server.address() as AddressInfo).port,
    server,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return upstream;
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json<T = any>(): T;
}

/**
 * One request on a fresh connection (no pooling), with full control of headers. The path is sent
 * exactly as written (a WHATWG URL would resolve `%2e%2e` and `..` before sending).
 */
export function request(
  url: string,
  options: { method?: string; headers?: http.OutgoingHttpHeaders | string[]; body?: Buffer | string; timeoutMs?: number } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const m = /^http:\/\/([^/:]+):(\d+)(.*)$/.exec(url);
    if (!m) throw new Error(`request(): unsupported url ${url}`);
    const target = { host: m[1], port: Number(m[2]), path: m[3] || '/' };
    const req = http.request(
      { ...target, method: options.method ?? 'GET', headers: options.headers as http.OutgoingHttpHeaders, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) });
        });
      },
    );
    req.setTimeout(options.timeoutMs ?? 10_000, () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on('error', reject);
    req.end(options.body);
  });
}
