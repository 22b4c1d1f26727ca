/**
 * Reused read buffers for the upstream HTTP/1.1 sockets.
 *
 * A Node socket reads into a fresh 64 KiB buffer each time. For a proxy moving large responses
 * that is the main cost after the kernel's: a malloc and an ArrayBuffer per read, and buffers
 * that live just long enough (until the client has taken them) to be counted against the old
 * generation's limit, so V8 runs a mark-compact every few dozen responses. Reading into buffers
 * that come back once their bytes are sent cuts all of it.
 *
 * How. Node's documented `onread` socket option (undici passes its `connect` options on to
 * `net.connect`) reads into a buffer this class gives, then calls `onRead`, which pushes the bytes
 * into the socket's own readable side, so undici reads the socket as it always does:
 * - between bursts a socket reads into one SHARED_BYTES buffer that every upstream socket shares
 *   (reads are one at a time, and each is copied out at once); a read that fills it starts a
 *   burst, and the socket's next reads go into 64 KiB buffers of their own;
 * - a read into an own buffer is pushed as a view of it, and the buffer leaves the socket's hands
 *   until it comes back; a small one (under COPY_BELOW bytes, a body's tail) is pushed as a copy
 *   from Node's pool instead, and its buffer is free at once;
 * - a read that did not fill its buffer has emptied the kernel's queue, and one queued behind bytes
 *   undici has not taken waits on a slow client: either way the socket goes back to the shared
 *   buffer, so an idle or paused connection holds no read buffer of its own.
 * undici hands the body to the forwarder as views of those reads (it copies only into its
 * parser's memory). For a body chunk that ends a read, the forwarder asks `returnAfter` for a
 * write callback, and the buffer comes back once the client's socket has written it.
 *
 * Why it is safe. A buffer is read into again only after it came back, and it comes back only
 * when nothing can still see its bytes:
 * - the chunk runs to the end of the read, so no part of the read is left in the socket for later
 *   (undici puts back only the bytes after a pause);
 * - the read's bytes before the chunk, if any, are the head of the same response (it is the
 *   response's first body chunk): undici turns the head into strings and raw field views that it
 *   hands to the forwarder's onHeaders and then drops, and the response copies those fields out
 *   by its first write, the one this callback follows;
 * - the client socket has written it: a write's callback runs once the stream is done with the
 *   chunk (in the kernel's buffer, or encrypted), never before; a write that failed keeps its
 *   buffer out for good, left to the garbage collector;
 * - no one listens on undici's diagnostics channels for heads and body chunks (a listener could
 *   keep them).
 * Anything else (a read undici joined with another, a response to an HTTP/2 client, a response
 * without a body) is simply never returned: the garbage collector frees it, as it frees every
 * buffer a plain socket reads into. So a change in undici can cost the reuse, never the bytes;
 * test/integration/read-buffers.test.ts checks that the reuse still happens.
 *
 * Memory: the shared buffer; a 64 KiB buffer for each socket in a burst and each chunk still being
 * written to a client (bounded by backpressure, as a plain socket's reads are); at most MAX_FREE
 * returned buffers waiting to be taken.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import type { OnReadOpts, Socket } from 'node:net';

/** Node's own read size for sockets (libuv suggests 64 KiB). */
export const READ_BUFFER_BYTES = 64 * 1024;
/** Reads into a socket's own buffer smaller than this are pushed as copies (from Node's pool). */
export const COPY_BELOW = 4 * 1024;
/** The buffer every socket reads into between bursts (its reads are always copied out). */
export const SHARED_BYTES = 16 * 1024;
/** Returned buffers kept for the next reads; more are left to the garbage collector. */
export const MAX_FREE = 32;

/** undici's channels that see response heads and body chunks (docs/api/DiagnosticsChannel.md). */
const LISTENED = [diagnosticsChannel.channel('undici:request:headers'), diagnosticsChannel.channel('undici:request:bodyChunkReceived')];

/** What is known about one of our buffers. */
interface Slot {
  readonly buffer: Buffer;
  /** Bytes of the read last pushed from it (a view); -1: not out of a socket's hands as a view. */
  pushed: number;
}

export class ReadBuffers {
  /** The `onread` option for `net.connect` (through undici's `connect` options). */
  readonly onread: OnReadOpts;
  /** For a body chunk about to be written to a client: see `returnAfter`. */
  readonly returnAfter: (chunk: Buffer, first: boolean) => ((err?: Error | null) => void) | undefined;
  readonly #counts = { allocated: 0, returned: 0, lentBytes: 0 };

  constructor() {
    const free: Buffer[] = [];
    const slots = new WeakMap<ArrayBufferLike, Slot>();
    const counts = this.#counts;
    // Every socket between bursts reads into this one; each read from it is copied out at once.
    const shared = Buffer.allocUnsafeSlow(SHARED_BYTES);
    // The buffer for the next read of the socket whose callback ran last: Node asks for it right
    // after that callback.
    let next: Buffer = shared;

    const take = (): Buffer => {
      const reused = free.pop();
      if (reused !== undefined) return reused;
      const buffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
      slots.set(buffer.buffer, { buffer, pushed: -1 });
      counts.allocated++;
      return buffer;
    };

    this.onread = {
      buffer: () => {
        const buffer = next;
        next = shared;
        return buffer;
      },
      callback(this: Socket, bytes: number, buffer: Uint8Array): boolean {
        let more: boolean;
        if (buffer === shared) {
          more = this.push(Buffer.from(shared.subarray(0, bytes)));
        } else {
          const slot = slots.get(buffer.buffer)!;
          if (bytes < COPY_BELOW) {
            if (free.length < MAX_FREE) free.push(slot.buffer);
            return this.push(Buffer.from(slot.buffer.subarray(0, bytes)));
          }
          slot.pushed = bytes;
          // false (the socket's buffer is past its high-water mark): Node stops reading until the
          // socket is read from, as it does for its own reads.
          more = this.push(slot.buffer.subarray(0, bytes));
        }
        // A read that filled its buffer (the shared one: a burst has begun) is likely followed by
        // another, which goes into a buffer of the socket's own. One that did not has emptied the
        // kernel's queue, and one that queued behind bytes undici has not taken yet waits on the
        // client: either way the socket waits in the shared buffer, holding none.
        if (bytes === buffer.length && this.readableLength <= bytes) next = take();
        return more;
      },
    };

    /**
     * The write callback that returns the buffer under `chunk`, when the chunk ends a read into
     * one of ours and either is the whole read or is its response's `first` body chunk (after
     * the head); undefined otherwise (nothing to return).
     */
    this.returnAfter = (chunk, first) => {
      const slot = slots.get(chunk.buffer);
      if (slot === undefined || slot.pushed < 0) return undefined;
      const start = chunk.byteOffset - slot.buffer.byteOffset;
      if (start + chunk.length !== slot.pushed || (start !== 0 && !first)) return undefined;
      if (LISTENED[0]!.hasSubscribers || LISTENED[1]!.hasSubscribers) return undefined;
      counts.lentBytes += chunk.length;
      return (err) => {
        // A buffer comes back once per read pushed from it; a failed write keeps it out.
        if (err || slot.pushed < 0) return;
        slot.pushed = -1;
        counts.returned++;
        if (free.length < MAX_FREE) free.push(slot.buffer);
      };
    };
  }

  /** Buffers allocated so far (every other read went into one of them again). */
  get allocated(): number {
    return this.#counts.allocated;
  }

  /** Times a buffer came back after its bytes were sent. */
  get returned(): number {
    return this.#counts.returned;
  }

  /** Body bytes handed out with a callback that returns their buffer (`returnAfter`). */
  get lentBytes(): number {
    return this.#counts.lentBytes;
  }
}
