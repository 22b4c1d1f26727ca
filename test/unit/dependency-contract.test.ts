/**
 * puttu reaches past the public API of three dependencies (proxy/deps/). These tests hold those
 * dependencies to the exact versions package.json pins and to the private paths and fields puttu
 * uses, so an upgrade that moves one fails here, naming the dependency and the path, instead of at
 * import or at the first reconnect in production.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import test from 'ava';
import { DEFAULT_METRICS, defaultMetricPath, PROM_CLIENT_PATHS } from '../../proxy/deps/prom-client.js';
import { UNDICI_POOL_PATH } from '../../proxy/deps/undici.js';
import { TLSSocket } from 'node:tls';
import {
  closeClient,
  LibraryEvent,
  MANAGER_FIELDS,
  TLS_MANAGER_FIELDS,
  tlsSockets,
  WATCHER_MANAGER_METHODS,
  zookeeper,
} from '../../proxy/deps/zookeeper-client.js';

const require = createRequire(import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> };
const source = (path: string): string => readFileSync(require.resolve(path), 'utf8');

const PRIVATE_USE: Record<string, string> = {
  undici: UNDICI_POOL_PATH,
  'prom-client': Object.values(PROM_CLIENT_PATHS).join(', '),
  'node-zookeeper-client': 'lib/ConnectionManager.js (client.connectionManager)',
};

for (const [dep, path] of Object.entries(PRIVATE_USE)) {
  test(`${dep} is pinned to one exact version, and that version is the one installed`, (t) => {
    const wanted = pkg.dependencies[dep];
    t.regex(
      wanted ?? '',
      /^\d+\.\d+\.\d+$/,
      `${dep}: package.json must pin an exact version, not "${wanted}": puttu uses its private ${path}`,
    );
    const installed = (require(`${dep}/package.json`) as { version: string }).version;
    t.is(
      installed,
      wanted ?? '',
      `${dep}: ${installed} is installed but package.json pins ${wanted}; puttu uses its private ${path}, check it before moving the pin`,
    );
  });
}

test(`undici: ${UNDICI_POOL_PATH} is the Pool undici exports`, (t) => {
  const undici = require('undici') as { Pool: unknown };
  let pool: unknown;
  t.notThrows(() => (pool = require(UNDICI_POOL_PATH)), `undici: the private path ${UNDICI_POOL_PATH} no longer loads`);
  t.is(pool, undici.Pool, `undici: ${UNDICI_POOL_PATH} is no longer the Pool that undici exports`);
});

test('prom-client: each private module puttu loads is the class prom-client exports', (t) => {
  const prom = require('prom-client') as Record<string, unknown>;
  for (const [name, path] of Object.entries(PROM_CLIENT_PATHS)) {
    let loaded: unknown;
    t.notThrows(() => (loaded = require(path)), `prom-client: the private path ${path} no longer loads`);
    t.is(loaded, prom[name], `prom-client: ${path} is no longer the ${name} that prom-client exports`);
  }
});

test("prom-client: puttu's default metrics are the modules collectDefaultMetrics registers, less processCpuTotal", (t) => {
  const listed = [...source('prom-client/lib/defaultMetrics.js').matchAll(/require\('\.\/metrics\/(\w+)'\)/g)].map((m) => m[1]);
  t.deepEqual(
    [...DEFAULT_METRICS].sort(),
    listed.filter((name) => name !== 'processCpuTotal').sort(),
    'prom-client: lib/defaultMetrics.js requires a different set of lib/metrics/* modules than proxy/deps/prom-client.ts lists',
  );
  for (const name of DEFAULT_METRICS)
    t.is(typeof require(defaultMetricPath(name)), 'function', `prom-client: ${defaultMetricPath(name)} is not a function`);
});

test('node-zookeeper-client: the ConnectionManager has every field the patches use', (t) => {
  const client = zookeeper.createClient('127.0.0.1:1');
  const cm = (client as unknown as { connectionManager?: Record<string, unknown> }).connectionManager;
  t.truthy(cm, 'node-zookeeper-client: client.connectionManager is gone');
  const text = source('node-zookeeper-client/lib/ConnectionManager.js');
  for (const field of MANAGER_FIELDS) {
    t.true(
      field in (cm ?? {}) || new RegExp(`(this|self)\\.${field}\\b`).test(text),
      `node-zookeeper-client: ConnectionManager no longer has ${field}`,
    );
  }
  t.is(typeof cm?.connect, 'function', 'node-zookeeper-client: ConnectionManager.connect is not a function');
  t.is(typeof cm?.onSocketData, 'function', 'node-zookeeper-client: ConnectionManager.onSocketData is not a function');
  // frameReads sets its own onSocketData: that takes effect only if the library binds the method
  // when it opens a socket, rather than once in its constructor.
  t.regex(
    text,
    /socket\.on\('data', self\.onSocketData\.bind\(self\)\)/,
    'node-zookeeper-client: ConnectionManager.connect no longer binds onSocketData per socket',
  );
  // guardReads reads the state as numbers.
  t.regex(
    text,
    /CONNECTED : 2,\s+CONNECTED_READ_ONLY : 3,/,
    'node-zookeeper-client: ConnectionManager STATES.CONNECTED / CONNECTED_READ_ONLY changed',
  );
});

test('node-zookeeper-client: the library calls only the WatcherManager methods leanWatchers implements', (t) => {
  const called = new Set([...source('node-zookeeper-client/lib/ConnectionManager.js').matchAll(/watcherManager\.(\w+)/g)].map((m) => m[1]));
  t.deepEqual(
    [...called].sort(),
    [...WATCHER_MANAGER_METHODS].sort(),
    'node-zookeeper-client: ConnectionManager.js calls a different set of watcherManager methods',
  );
  const original = require('node-zookeeper-client/lib/WatcherManager.js') as { prototype: Record<string, unknown> };
  for (const method of WATCHER_MANAGER_METHODS)
    t.is(typeof original.prototype[method], 'function', `node-zookeeper-client: WatcherManager.${method} is gone`);
});

test("node-zookeeper-client: Event.create, which leanWatchers' notifications use, builds the library's Event", (t) => {
  t.is(typeof LibraryEvent.create, 'function', 'node-zookeeper-client: lib/Event.js has no create()');
  const event = LibraryEvent.create({ type: zookeeper.Event.NODE_CHILDREN_CHANGED, path: '/a' });
  t.is(event.getType(), zookeeper.Event.NODE_CHILDREN_CHANGED);
  t.is(event.getPath(), '/a');
});

test("node-zookeeper-client: ConnectionManager.connect is the sequence tlsSockets' replacement repeats, over TLS", (t) => {
  const client = zookeeper.createClient('127.0.0.1:1');
  const cm = (client as unknown as { connectionManager?: Record<string, unknown> }).connectionManager ?? {};
  for (const field of TLS_MANAGER_FIELDS) {
    t.true(field in cm, `node-zookeeper-client: ConnectionManager no longer has ${field}, which tlsSockets uses`);
  }
  const text = source('node-zookeeper-client/lib/ConnectionManager.js');
  const body = /ConnectionManager\.prototype\.connect = function \(\) \{([\s\S]*?)\n\};/.exec(text)?.[1] ?? '';
  t.regex(
    body,
    /self\.setState\(STATES\.CONNECTING\);/,
    'node-zookeeper-client: ConnectionManager.connect no longer starts with setState(CONNECTING)',
  );
  t.regex(
    body,
    /self\.findNextServer\(function \(server\)/,
    'node-zookeeper-client: ConnectionManager.connect no longer picks the server with findNextServer',
  );
  t.regex(
    body,
    /self\.socket = net\.connect\(server\);/,
    'node-zookeeper-client: ConnectionManager.connect no longer opens net.connect(server)',
  );
  t.regex(
    body,
    /self\.connectTimeoutHandler = setTimeout\(\s*self\.onSocketConnectTimeout\.bind\(self\),\s*self\.connectTimeout\s*\);/,
    'node-zookeeper-client: ConnectionManager.connect arms its connect timeout differently',
  );
  // The handlers tlsSockets binds, event by event ('secureConnect' standing in for 'connect').
  const bound = [...body.matchAll(/self\.socket\.on\('(\w+)', self\.(\w+)\.bind\(self\)\)/g)].map((m) => `${m[1]}:${m[2]}`);
  t.deepEqual(
    bound,
    ['connect:onSocketConnected', 'data:onSocketData', 'drain:onSocketDrain', 'close:onSocketClosed', 'error:onSocketError'],
    'node-zookeeper-client: ConnectionManager.connect binds a different set of socket handlers than tlsSockets does',
  );
  t.is(
    (text.match(/net\.connect\(/g) ?? []).length,
    1,
    'node-zookeeper-client: ConnectionManager opens sockets somewhere besides connect()',
  );

  // And the patched client opens TLS sockets.
  t.true(
    tlsSockets(client, {}, () => undefined),
    'tlsSockets did not apply',
  );
  const opened = new Promise<unknown>((resolve) => {
    const poll = setInterval(() => {
      if (cm.socket) {
        clearInterval(poll);
        resolve(cm.socket);
      }
    }, 5);
  });
  client.connect();
  return opened.then(async (socket) => {
    t.true(socket instanceof TLSSocket, 'the patched ConnectionManager did not open a TLS socket');
    await closeClient(client, 0);
  });
});
