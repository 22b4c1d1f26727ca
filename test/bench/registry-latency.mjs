#!/usr/bin/env node
/**
 * Registry → routing latency of puttu (default settings), under light continuous load:
 *  - a new instance: time from its znode's create to the first proxied request it receives;
 *  - a deleted znode: time from the delete to the last request that instance still receives.
 * Each measured twice: from the moment the ZooKeeper call is sent (an upper bound: it includes
 * the round trip and ZooKeeper's fsync of its transaction log), and from the moment the
 * registering client got the answer (the write is committed then; ZooKeeper sends the watch
 * events to the proxy at the same time). p50/p99 over the trials. Prints figures, asserts nothing.
 *
 *   node test/bench/registry-latency.mjs
 *   LATENCY_TRIALS=100 LATENCY_RPS=2000 LATENCY_WINDOW_MS=500
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { preflight } from './lib/preflight.mjs';

preflight({ tools: [] });
const { installGuards, onCleanup, runMain } = await import('./lib/processes.mjs');
const { median, percentile, max } = await import('./lib/stats.mjs');
const { startPacedLoad } = await import('./lib/paced-load.mjs');
const { cpuSnapshot, foreignCores } = await import('./lib/cpu.mjs');
const { waitUntil } = await import('./lib/wait.mjs');
const stack = await import('./lib/stack.mjs');
const { rawClient } = await import('../../dist/test/helpers/zookeeper.js');

const TRIALS = Number(process.env.LATENCY_TRIALS ?? 100);
const RPS = Number(process.env.LATENCY_RPS ?? 2_000);
/** How long after a delete requests are still watched for. */
const WINDOW_MS = Number(process.env.LATENCY_WINDOW_MS ?? 500);
const SERVICE = 'lat';
const log = (line) => process.stderr.write(`${line}\n`);

installGuards({ timeBoundMs: (90 + (TRIALS * (WINDOW_MS + 3_200)) / 1_000) * 1_000, label: 'registry-latency' });
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'puttu-latency-'));
onCleanup('temp folder', () => fs.rmSync(dir, { recursive: true, force: true }));

/** A fresh instance in this process: it notes when each request arrives. */
async function startTrialInstance() {
  const arrivals = [];
  const server = http.createServer((req, res) => {
    arrivals.push(performance.now());
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 3 });
    res.end('ok\n');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    arrivals,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function trial(zk) {
  const instance = await startTrialInstance();
  const data = Buffer.from(JSON.stringify({ protocol: 'http', host: '127.0.0.1', port: instance.port, api: '' }));
  const created = performance.now();
  const node = await zk.create(`${stack.BASE_PATH}/${SERVICE}/${SERVICE}`, data, 'ephemeral_sequential');
  const ack = performance.now() - created;
  const first = await waitUntil(() => instance.arrivals[0], {
    timeoutMs: 3_000,
    what: 'the new instance to be routed to',
    intervalMs: 1,
  }).catch(() => undefined);
  await sleep(50); // routed for a moment, as a real instance would be
  const deleted = performance.now();
  await zk.remove(node);
  const removedAck = performance.now() - deleted;
  await sleep(WINDOW_MS);
  const last = instance.arrivals.at(-1);
  await instance.close();
  const add = first === undefined ? Infinity : first - created;
  const remove = Math.max(0, last - deleted);
  return {
    ack,
    add,
    addAfterAck: add - ack,
    removedAck,
    remove,
    removeAfterAck: Math.max(0, remove - removedAck),
    lateRequests: instance.arrivals.filter((t) => t > deleted).length,
  };
}

function figures(values) {
  return `p50 ${median(values).toFixed(1)} ms, p99 ${percentile(values, 99).toFixed(1)} ms, max ${max(values).toFixed(1)} ms`;
}

async function main() {
  const zk = await stack.startZk();
  const steady = await Promise.all([stack.startBackend({ dir, name: 'a' }), stack.startBackend({ dir, name: 'b' })]);
  await stack.registerBackends(zk.connectString, { [SERVICE]: steady });
  const puttu = await stack.startPuttu({ dir, zk: zk.connectString, expect: { [SERVICE]: 2 } });
  const client = await rawClient(zk.connectString);
  onCleanup('zookeeper client', () => client.close());
  const load = startPacedLoad(`http://127.0.0.1:${puttu.port}/${SERVICE}/small`, { rps: RPS });
  onCleanup('load', () => load.stop());
  await sleep(1_000); // connections and pools established before the first trial
  const cpuBefore = cpuSnapshot();
  const results = [];
  for (let i = 0; i < TRIALS; i++) {
    results.push(await trial(client));
    if ((i + 1) % 10 === 0) log(`${i + 1}/${TRIALS} trials`);
  }
  const stats = await load.stop();
  const missed = results.filter((r) => r.add === Infinity).length;
  const stillRouted = results.filter((r) => r.remove >= WINDOW_MS - 1).length;
  const report = [
    `registry → routing latency: puttu (default settings), ZooKeeper and instances on loopback, ${TRIALS} trials`,
    `light load: ${RPS} req/s through the proxy (random balancer over 2 steady instances + the trial one: a new instance sees about one request every ${((3 * 1000) / RPS).toFixed(1)} ms)`,
    `new instance → first request${missed ? ` (${missed} never routed within 3 s, counted as infinite)` : ''}:`,
    `  from sending the create:       ${figures(results.map((r) => r.add))}`,
    `  from the create's answer:      ${figures(results.map((r) => r.addAfterAck))}  (negative: the proxy routed before the registering client heard back)`,
    `  (the create's round trip:      ${figures(results.map((r) => r.ack))})`,
    `deleted znode → last request reaching the instance (trials with any request after the delete: ${results.filter((r) => r.lateRequests > 0).length}/${TRIALS}${stillRouted ? `; ${stillRouted} still routed ${WINDOW_MS} ms after the delete` : ''}):`,
    `  from sending the delete:       ${figures(results.map((r) => r.remove))}`,
    `  from the delete's answer:      ${figures(results.map((r) => r.removeAfterAck))}  (0: nothing arrived after it)`,
    `  (the delete's round trip:      ${figures(results.map((r) => r.removedAck))})`,
    `CPU used by other processes meanwhile: ${Math.round(foreignCores(cpuBefore, cpuSnapshot()) * 100)}% of a core`,
    `load: ${stats.sent} requests, ${stats.ok} ok, ${stats.failed} failed${stats.failed ? ` ${JSON.stringify(stats.failures)}` : ''}`,
  ].join('\n');
  process.stdout.write(`\n${report}\n`);
}

await runMain(main, 'registry-latency', log);
