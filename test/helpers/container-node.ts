/**
 * Creates a ZooKeeper CONTAINER node, as Apache Curator does for service parents
 * (`creatingParentContainersIfNeeded`): ZooKeeper ≥ 3.5 deletes such a node by itself some time
 * after its last child leaves (its ContainerManager, every `znode.container.checkIntervalMs`).
 *
 * node-zookeeper-client (1.1.3) cannot: it sends every create as opcode 1 (CREATE), and the server
 * builds a container only for opcode 19 (CREATE_CONTAINER); given CREATE with the container flag
 * (4) it silently makes a plain persistent node that is never reaped. So this speaks the wire
 * protocol itself on a short session of its own: ConnectRequest, CreateRequest as opcode 19, then
 * CloseSession, pipelined on one socket (jute encoding, as in zookeeper.ts's expireSession).
 */
import net from 'node:net';

const OP_CREATE_CONTAINER = 19;
const OP_CLOSE_SESSION = -11;
const FLAG_CONTAINER = 4;
const PERMS_ALL = 31;

/** Resolves once the node exists as a container; rejects with ZooKeeper's error code otherwise. */
export function createContainerNode(connectString: string, path: string, data = Buffer.alloc(0), timeoutMs = 10_000): Promise<void> {
  const server = connectString.split(',')[0]!.trim();
  const colon = server.lastIndexOf(':');
  const host = server.slice(0, colon);
  const port = Number(server.slice(colon + 1).split('/')[0]);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let input = Buffer.alloc(0);
    let connected = false;
    let createError: number | undefined;
    const done = (error?: Error) => {
      clearTimeout(timer);
      socket.destroy();
      error ? reject(error) : resolve();
    };
    const timer = setTimeout(() => done(new Error(`createContainerNode ${path}: no answer within ${timeoutMs} ms`)), timeoutMs);
    socket.on('error', (e) => done(e));
    socket.on('close', () => done(new Error(`createContainerNode ${path}: connection closed early`)));
    socket.on('connect', () => {
      // ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId, passwd.
      const connect = Buffer.concat([int(0), long0(), int(10_000), long0(), buffer(Buffer.alloc(16))]);
      // RequestHeader {xid 1, CREATE_CONTAINER} + CreateRequest {path, data, acl [world:anyone ALL], flags}.
      const create = Buffer.concat([int(1), int(OP_CREATE_CONTAINER), string(path), buffer(data), int(1), int(PERMS_ALL), string('world'), string('anyone'), int(FLAG_CONTAINER)]);
      const close = Buffer.concat([int(2), int(OP_CLOSE_SESSION)]);
      socket.write(Buffer.concat([frame(connect), frame(create), frame(close)]));
    });
    socket.on('data', (chunk: Buffer) => {
      input = Buffer.concat([input, chunk]);
      while (input.length >= 4 && input.length >= 4 + input.readInt32BE(0)) {
        const body = input.subarray(4, 4 + input.readInt32BE(0));
        input = input.subarray(4 + body.length);
        if (!connected) {
          connected = true;
          continue;
        }
        // ReplyHeader {xid, zxid, err}.
        const xid = body.readInt32BE(0);
        if (xid === 1) createError = body.readInt32BE(12);
        if (xid === 2) {
          return createError === 0 ? done() : done(Object.assign(new Error(`createContainerNode ${path}: ZooKeeper error ${createError}`), { zkError: createError }));
        }
      }
    });
  });
}

/** ZooKeeper's NODEEXISTS error code on the wire. */
export const ZK_NODE_EXISTS = -110;

function int(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

function long0(): Buffer {
  return Buffer.alloc(8);
}

function buffer(b: Buffer): Buffer {
  return Buffer.concat([int(b.length), b]);
}

function string(s: string): Buffer {
  return buffer(Buffer.from(s, 'utf8'));
}

function frame(body: Buffer): Buffer {
  return Buffer.concat([int(body.length), body]);
}
