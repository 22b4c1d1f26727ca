/** HTTP/2 clients for tests: Node's http2 client (h2c by prior knowledge, or h2 over TLS). */
import http2 from 'node:http2';

export interface H2Reply {
  status: number;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders | undefined;
  body: Buffer;
  json<T = any>(): T;
}

/** One request on `session` (or a new session to `origin`, closed after). */
export function h2request(
  target: string | http2.ClientHttp2Session,
  path: string,
  options: { method?: string; headers?: http2.OutgoingHttpHeaders; body?: Buffer | string; ca?: Buffer; timeoutMs?: number } = {},
): Promise<H2Reply> {
  const own = typeof target === 'string';
  const session = own ? http2.connect(target, options.ca ? { ca: options.ca } : {}) : target;
  // A session's late errors (after the stream settled) are not this request's.
  if (own) session.on('error', () => undefined);
  return new Promise<H2Reply>((resolve, reject) => {
    session.setMaxListeners(0);
    session.once('error', reject);
    const stream = session.request(
      { ':method': options.method ?? 'GET', ':path': path, ...options.headers },
      { endStream: options.body === undefined },
    );
    const timer = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), options.timeoutMs ?? 10_000);
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      headers = h;
    });
    stream.on('trailers', (t) => {
      trailers = t;
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', reject);
    stream.on('close', () => {
      clearTimeout(timer);
      session.removeListener('error', reject);
      if (own) session.close();
      if (headers[':status'] === undefined) return reject(new Error(`stream closed without a response (code ${stream.rstCode})`));
      const body = Buffer.concat(chunks);
      resolve({ status: Number(headers[':status']), headers, trailers, body, json: () => JSON.parse(body.toString('utf8')) });
    });
    if (options.body !== undefined) stream.end(options.body);
  });
}
