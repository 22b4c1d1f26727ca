/**
 * The one writer of an error response straight onto a socket, for connections Node's http server
 * no longer manages: a request its parser refused, an upgrade the proxy or the upstream refused.
 * The body is the JSON every error response carries; the connection then closes (what follows on
 * it, if anything, cannot be trusted to be a request boundary).
 */
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { errorBody, type PuttuError } from '../errors.js';

/** The bytes of `error`'s response: status line, JSON body, `Connection: close`. */
export function rawErrorResponse(error: PuttuError): string {
  const body = errorBody(error);
  return (
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? 'Error'}\r\n` +
    `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

/** Answers `error` on `socket` and closes it; a socket that can no longer be written is destroyed. */
export function endWithError(socket: Duplex, error: PuttuError): void {
  if (socket.writable) socket.end(rawErrorResponse(error));
  else socket.destroy();
}
