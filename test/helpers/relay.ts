/**
 * A fault-injecting TCP relay on loopback, between a client and a server: it can pass traffic,
 * pause it (a server that goes silent without closing the socket), reset every connection, or
 * refuse and close them (a server that is gone).
 */
import net from 'node:net';

export type RelayMode = 'pass' | 'pause' | 'refuse';

export interface Relay {
  readonly port: number;
  readonly address: string;
  mode: RelayMode;
  /** Connections currently relayed. */
  readonly connections: number;
  /** Connections accepted since the relay started (each a connection attempt of a client). */
  readonly accepted: number;
  /** Sends RST on every open connection (both sides). */
  reset(): void;
  close(): Promise<void>;
}

export async function startRelay(targetPort: number, targetHost = '127.0.0.1'): Promise<Relay> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  let mode: RelayMode = 'pass';
  let accepted = 0;
  const server = net.createServer((client) => {
    accepted += 1;
    if (mode === 'refuse') {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(targetPort, targetHost);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      from.on('data', (chunk) => {
        // Paused: swallow the bytes, as a frozen peer would never answer them.
        if (mode === 'pass') to.write(chunk);
      });
      from.on('error', drop);
      from.on('close', drop);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const resetAll = () => {
    for (const [a, b] of pairs) {
      a.resetAndDestroy();
      b.resetAndDestroy();
    }
    pairs.clear();
  };
  return {
    port,
    address: `127.0.0.1:${port}`,
    get mode() {
      return mode;
    },
    set mode(m: RelayMode) {
      mode = m;
      if (m === 'refuse') resetAll();
    },
    get connections() {
      return pairs.size;
    },
    get accepted() {
      return accepted;
    },
    reset: resetAll,
    close: () =>
      new Promise<void>((resolve) => {
        for (const [a, b] of pairs) {
          a.destroy();
          b.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
