/**
 * HTTP/2 written by hand (RFC 9113 frames, RFC 7541 literals without Huffman coding), for tests
 * that send what a well-behaved client library never would: floods, resets, stalls.
 */
import net from 'node:net';

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
export const SETTING = {
  HEADER_TABLE_SIZE: 1,
  ENABLE_PUSH: 2,
  MAX_CONCURRENT_STREAMS: 3,
  INITIAL_WINDOW_SIZE: 4,
  MAX_FRAME_SIZE: 5,
} as const;
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

export function settings(values: Array<[number, number]> = []): Buffer {
  const payload = Buffer.alloc(values.length * 6);
  values.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return frame(FRAME.SETTINGS, 0, 0, payload);
}

export function rstStream(streamId: number, code = 8 /* CANCEL */): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return frame(FRAME.RST_STREAM, 0, streamId, payload);
}

export function windowUpdate(streamId: number, increment: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(increment);
  return frame(FRAME.WINDOW_UPDATE, 0, streamId, payload);
}

/** An HPACK integer with an n-bit prefix (RFC 7541 §5.1), `first` holding the pattern bits. */
function integer(value: number, prefixBits: number, first: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([first | value]);
  const bytes = [first | max];
  let rest = value - max;
  while (rest >= 128) {
    bytes.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

function str(s: string): Buffer {
  const bytes = Buffer.from(s, 'latin1');
  return Buffer.concat([integer(bytes.length, 7, 0), bytes]);
}

/** A header block of literal fields without indexing (pseudo-headers first, as given). */
export function headerBlock(fields: Array<[string, string]>): Buffer {
  return Buffer.concat(fields.flatMap(([name, value]) => [Buffer.from([0]), str(name), str(value)]));
}

export function requestBlock(path: string, authority = '127.0.0.1', extra: Array<[string, string]> = []): Buffer {
  return headerBlock([[':method', 'GET'], [':scheme', 'http'], [':path', path], [':authority', authority], ...extra]);
}

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

export interface RawH2 {
  readonly socket: net.Socket;
  readonly frames: Frame[];
  /** Resolves when the server closed the connection (or it failed). */
  readonly closed: Promise<void>;
  write(...buffers: Buffer[]): boolean;
  goaway(): Frame | undefined;
  /** Bytes received in all. */
  readonly received: number;
}

/**
 * A connection that has sent the preface and `initial` SETTINGS. With `read: false` nothing the
 * server sends is read (its replies back up in the socket buffers).
 */
export async function rawH2(port: number, options: { initial?: Array<[number, number]>; read?: boolean } = {}): Promise<RawH2> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => undefined);
  const frames: Frame[] = [];
  let buf = Buffer.alloc(0);
  let received = 0;
  if (options.read === false) socket.pause();
  else
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 9) {
        const length = buf.readUIntBE(0, 3);
        if (buf.length < 9 + length) break;
        frames.push({ type: buf[3]!, flags: buf[4]!, streamId: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + length) });
        buf = buf.subarray(9 + length);
      }
    });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(Buffer.concat([PREFACE, settings(options.initial ?? [])]));
  return {
    socket,
    frames,
    closed,
    write: (...buffers) => socket.write(Buffer.concat(buffers)),
    goaway: () => frames.find((f) => f.type === FRAME.GOAWAY),
    get received() {
      return received;
    },
  };
}

/** A GOAWAY frame's error code (RFC 9113 §7: 0 NO_ERROR, 1 PROTOCOL_ERROR, 11 ENHANCE_YOUR_CALM, …). */
export const goawayCode = (f: Frame): number => f.payload.readUInt32BE(4);
