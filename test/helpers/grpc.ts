/**
 * A gRPC service for tests, defined by hand (JSON messages, no .proto): `puttu.test.Echo` with a
 * unary, a server-streaming, a client-streaming and a bidirectional method, plus methods that
 * wait, fail with a status and trailing metadata, or stream until told to stop. Real
 * @grpc/grpc-js servers and clients.
 */
import * as grpc from '@grpc/grpc-js';

export const SERVICE = 'puttu.test.Echo';

export interface Msg {
  text?: string;
  n?: number;
  ms?: number;
  from?: string;
}

const json = {
  serialize: (value: Msg) => Buffer.from(JSON.stringify(value)),
  deserialize: (bytes: Buffer) => JSON.parse(bytes.toString('utf8')) as Msg,
};

function method(name: string, requestStream: boolean, responseStream: boolean, service = SERVICE): grpc.MethodDefinition<Msg, Msg> {
  return {
    path: `/${service}/${name}`,
    requestStream,
    responseStream,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
    originalName: name,
  };
}

function definitionFor(service: string) {
  return {
    unary: method('Unary', false, false, service),
    serverStream: method('ServerStream', false, true, service),
    clientStream: method('ClientStream', true, false, service),
    bidi: method('Bidi', true, true, service),
    slow: method('Slow', false, false, service),
    fail: method('Fail', false, false, service),
    endless: method('Endless', false, true, service),
  } satisfies grpc.ServiceDefinition;
}

export const definition = definitionFor(SERVICE);

export type EchoClient = grpc.Client & Record<keyof typeof definition, (...args: any[]) => any>;

export const EchoClient = grpc.makeGenericClientConstructor(definition, SERVICE) as unknown as new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => EchoClient;

export interface EchoServer {
  readonly name: string;
  readonly port: number;
  readonly server: grpc.Server;
  /** Calls cancelled by the client side (the proxy, when a deadline passed or the client left). */
  cancelled: number;
  /** Endless streams started (each writes until cancelled). */
  endless: number;
  /** Request metadata of the last unary call. */
  lastMetadata: grpc.Metadata | undefined;
  close(): Promise<void>;
}

/** An Echo server; `service` names the gRPC service it implements (puttu.test.Echo by default). */
export async function startEchoServer(name: string, service = SERVICE): Promise<EchoServer> {
  const server = new grpc.Server();
  const state: EchoServer = {
    name,
    port: 0,
    server,
    cancelled: 0,
    endless: 0,
    lastMetadata: undefined,
    close: () =>
      new Promise<void>((resolve) => {
        server.forceShutdown();
        resolve();
      }),
  };
  server.addService(definitionFor(service), {
    unary(call: grpc.ServerUnaryCall<Msg, Msg>, callback: grpc.sendUnaryData<Msg>) {
      state.lastMetadata = call.metadata;
      callback(null, { text: call.request.text, from: name });
    },
    serverStream(call: grpc.ServerWritableStream<Msg, Msg>) {
      for (let i = 0; i < (call.request.n ?? 0); i++) call.write({ n: i, from: name });
      call.end();
    },
    clientStream(call: grpc.ServerReadableStream<Msg, Msg>, callback: grpc.sendUnaryData<Msg>) {
      const texts: string[] = [];
      call.on('data', (m: Msg) => texts.push(m.text ?? ''));
      call.on('end', () => callback(null, { text: texts.join(','), n: texts.length, from: name }));
    },
    bidi(call: grpc.ServerDuplexStream<Msg, Msg>) {
      call.on('data', (m: Msg) => call.write({ text: `echo:${m.text}`, from: name }));
      call.on('end', () => call.end());
    },
    slow(call: grpc.ServerUnaryCall<Msg, Msg>, callback: grpc.sendUnaryData<Msg>) {
      const timer = setTimeout(() => callback(null, { text: 'late', from: name }), call.request.ms ?? 5_000);
      call.on('cancelled', () => {
        state.cancelled++;
        clearTimeout(timer);
      });
    },
    fail(_call: grpc.ServerUnaryCall<Msg, Msg>, callback: grpc.sendUnaryData<Msg>) {
      const metadata = new grpc.Metadata();
      metadata.set('x-detail', 'kept');
      callback({ code: grpc.status.NOT_FOUND, details: 'no such thing: über', metadata });
    },
    endless(call: grpc.ServerWritableStream<Msg, Msg>) {
      state.endless++;
      let i = 0;
      const timer = setInterval(() => call.write({ n: i++, from: name }), 10);
      call.on('cancelled', () => clearInterval(timer));
      call.on('close', () => clearInterval(timer));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, p) => (error ? reject(error) : resolve(p))),
  );
  (state as { port: number }).port = port;
  return state;
}

/** A client of `service` (the Echo methods; puttu.test.Echo by default) at `address` (host:port), plain text (h2c). */
export function echoClient(address: string, service = SERVICE): EchoClient {
  const Client =
    service === SERVICE ? EchoClient : (grpc.makeGenericClientConstructor(definitionFor(service), service) as unknown as typeof EchoClient);
  return new Client(address, grpc.credentials.createInsecure());
}

/** Promise form of a unary call; rejects with the ServiceError (code, details, metadata). */
export function unary(client: EchoClient, name: 'unary' | 'slow' | 'fail', msg: Msg, options: grpc.CallOptions = {}): Promise<Msg> {
  return new Promise((resolve, reject) => {
    client[name](msg, new grpc.Metadata(), options, (error: grpc.ServiceError | null, reply: Msg) =>
      error ? reject(error) : resolve(reply),
    );
  });
}
