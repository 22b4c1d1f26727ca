/**
 * Two moves every front in front of Node's HTTP server makes (the fast lane, the h2c preface
 * check, the ALPN split): taking over the server's own handler of an event, and giving a socket's
 * already-read bytes back before handing it on.
 */
import type http from 'node:http';
import type { Socket } from 'node:net';

/**
 * Removes the server's one listener of `event` (the one Node installed) and returns it, so the
 * caller's own listener decides which sockets it still gets. Throws when the server has none or
 * more than one: something else already took it over.
 */
export function takeListener<S extends Socket>(
  server: http.Server,
  event: 'connection' | 'secureConnection',
  who: string,
): (socket: S) => void {
  const [node, ...others] = server.listeners(event) as ((socket: S) => void)[];
  if (node === undefined || others.length > 0) throw new Error(`${who} needs the HTTP server as it was created`);
  server.removeListener(event, node);
  return (socket) => node.call(server, socket);
}

/** Puts `chunks` back in front of the socket's unread bytes, in order, without copying them together. */
export function putBack(socket: Socket, chunks: readonly Buffer[]): void {
  // Each unshift goes in front of the last.
  for (let i = chunks.length - 1; i >= 0; i--) socket.unshift(chunks[i]!);
}
