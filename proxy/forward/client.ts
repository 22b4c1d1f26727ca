/**
 * What the forwarder needs of the client's side of an exchange. Node's IncomingMessage and
 * ServerResponse have all of it; so do the fast lane's request and response (http/fast-lane.ts),
 * which is how one forwarder serves both paths.
 */
import type { Readable } from 'node:stream';
import type { PuttuError } from '../errors.js';
import type { ResponseFacts } from './headers.js';

/** What the proxy handler reads of a request; Node's IncomingMessage has the same. */
export interface ClientRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly rawHeaders: string[];
  readonly headers: {
    readonly host?: string | undefined;
    readonly 'x-request-id'?: string | string[] | undefined;
    readonly 'content-length'?: string | undefined;
    readonly 'transfer-encoding'?: string | undefined;
  };
  readonly socket: { readonly remoteAddress?: string | undefined };
  /** '2.0' over HTTP/2 (Node's requests say '1.1'; the fast lane's have none). */
  readonly httpVersion?: string;
  /**
   * Only HTTP/2 streams have it: the request body (the stream), or null when the HEADERS frame
   * ended the request. HTTP/1.1 says so with Content-Length or Transfer-Encoding instead.
   */
  readonly body?: Readable | null;
}

/** What the proxy writes to a response; Node's ServerResponse has the same. */
export interface ClientResponse {
  readonly headersSent: boolean;
  readonly writableEnded: boolean;
  readonly writableFinished: boolean;
  /** Only Node's responses have it: false closes the connection after the response. */
  shouldKeepAlive?: boolean;
  writeHead(statusCode: number, statusMessage: string | undefined, headers: string[]): unknown;
  /**
   * Only the fast lane's responses have it: the upstream's head straight from undici's raw field
   * buffers. False: not taken, use writeHead.
   */
  writeUpstreamHead?(statusCode: number, statusText: string, raw: readonly Buffer[], requestId: string, facts: ResponseFacts): boolean;
  /** `done`: once the response no longer needs the chunk's bytes (error: it may still hold them). */
  write(chunk: Buffer, done?: (err?: Error | null) => void): boolean;
  /** `done`: as write's, for `chunk` (HTTP/1.1 responses call it once the response is sent). */
  end(chunk?: Buffer | string, done?: (err?: Error | null) => void): unknown;
  destroy(): unknown;
  /** Only HTTP/2 responses have it: the upstream's trailers, relayed when the client takes them. */
  setTrailers?(trailers: Record<string, unknown> | readonly Buffer[] | null | undefined): void;
  /** Only HTTP/2 responses have it: true when the request is gRPC. */
  readonly grpc?: boolean;
  /** Only HTTP/2 responses have it: writes `error` in the request's own protocol (gRPC); false: not taken. */
  writeError?(error: PuttuError, requestId: string | undefined): boolean;
  once(event: 'drain', listener: () => void): unknown;
  on(event: 'close', listener: () => void): unknown;
}

/**
 * Whether a response is an HTTP/1.1 one (the fast lane's or Node's), whose write callbacks run
 * once the socket has written the chunk. Only HTTP/2 responses have `setTrailers`.
 */
export function isHttp1(res: ClientResponse): boolean {
  return res.setTrailers === undefined;
}
