/**
 * Just enough of ZooKeeper's wire protocol (length-prefixed jute frames) for the test helpers that
 * must do what node-zookeeper-client cannot: end a session from outside (expireSession) and create
 * a CONTAINER node (createContainerNode).
 */
import net from 'node:net';

/**
 * Opens a connection to `server` (host:port[/chroot]), sends `frames` pipelined, and hands each reply
 * frame's body to `onReply` (index 0 is the ConnectResponse) until it returns a result. Rejects on a
 * socket error, an early close, or after `timeoutMs`.
 */
export function exchange<T>(
  server: string,
  frames: Buffer[],
  onReply: (body: Buffer, index: number) => T | undefined,
  timeoutMs: number,
): Promise<T> {
  const colon = server.lastIndexOf(':');
  const host = server.slice(0, colon);
  const port = Number(server.slice(colon + 1).split('/')[0]);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let input = Buffer.alloc(0);
    let index = 0;
    let settled = false;
    const finish = (error: Error | undefined, value?: T) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      error ? reject(error) : resolve(value as T);
    };
    const timer = setTimeout(() => finish(new Error(`no answer from ${server} within ${timeoutMs} ms`)), timeoutMs);
    socket.on('error', (e) => finish(e));
    socket.on('close', () => finish(new Error(`${server} closed the connection early`)));
    socket.on('connect', () => socket.write(Buffer.concat(frames.map(frame))));
    socket.on('data', (chunk: Buffer) => {
      input = Buffer.concat([input, chunk]);
      while (!settled && input.length >= 4 && input.length >= 4 + input.readInt32BE(0)) {
        const body = input.subarray(4, 4 + input.readInt32BE(0));
        input = input.subarray(4 + body.length);
        const result = onReply(body, index++);
        if (result !== undefined) finish(undefined, result);
      }
    });
  });
}

/** ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId, passwd. */
export function connectRequest(sessionId: Buffer = Buffer.alloc(8), password: Buffer = Buffer.alloc(16)): Buffer {
  return Buffer.concat([int(0), Buffer.alloc(8), int(10_000), sessionId, bytes(password)]);
}

export function int(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

/** A length-prefixed buffer (jute `buffer`). */
export function bytes(b: Buffer): Buffer {
  return Buffer.concat([int(b.length), b]);
}

/** A length-prefixed UTF-8 string (jute `ustring`). */
export function string(s: string): Buffer {
  return bytes(Buffer.from(s, 'utf8'));
}

function frame(body: Buffer): Buffer {
  return Buffer.concat([int(body.length), body]);
}
