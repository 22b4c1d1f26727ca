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
import { bytes, connectRequest, exchange, int, string } from './zk-wire.js';

const OP_CREATE_CONTAINER = 19;
const OP_CLOSE_SESSION = -11;
const FLAG_CONTAINER = 4;
const PERMS_ALL = 31;

/** Resolves once the node exists as a container; rejects with ZooKeeper's error code otherwise. */
export async function createContainerNode(connectString: string, path: string, data = Buffer.alloc(0), timeoutMs = 10_000): Promise<void> {
  const server = connectString.split(',')[0]!.trim();
  // RequestHeader {xid 1, CREATE_CONTAINER} + CreateRequest {path, data, acl [world:anyone ALL], flags}.
  const create = Buffer.concat([
    int(1),
    int(OP_CREATE_CONTAINER),
    string(path),
    bytes(data),
    int(1),
    int(PERMS_ALL),
    string('world'),
    string('anyone'),
    int(FLAG_CONTAINER),
  ]);
  const close = Buffer.concat([int(2), int(OP_CLOSE_SESSION)]);
  let createError: number | undefined;
  const error = await exchange(
    server,
    [connectRequest(), create, close],
    (body, index) => {
      if (index === 0) return undefined;
      // ReplyHeader {xid, zxid, err}.
      const xid = body.readInt32BE(0);
      if (xid === 1) createError = body.readInt32BE(12);
      return xid === 2 ? (createError ?? Number.NaN) : undefined;
    },
    timeoutMs,
  ).catch((e: Error) => {
    throw new Error(`createContainerNode ${path}: ${e.message}`);
  });
  if (error !== 0) throw Object.assign(new Error(`createContainerNode ${path}: ZooKeeper error ${error}`), { zkError: error });
}

/** ZooKeeper's NODEEXISTS error code on the wire. */
export const ZK_NODE_EXISTS = -110;
