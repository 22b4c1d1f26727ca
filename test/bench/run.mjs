#!/usr/bin/env node
/**
 * `npm run bench`: puttu next to Debian's nginx, a minimal http-proxy proxy and a minimal
 * undici-`dispatch` proxy (undici-proxy.mjs), on loopback, same backends (registered in a real
 * ZooKeeper), measured with wrk, interleaved (nginx, http-proxy, undici,
 * puttu, nginx, ...) and repeated. Prints one table of medians over the repeats. Numbers are
 * output, never asserted.
 *
 * Environment (all optional):
 *   BENCH_SECONDS=10         length of each measured wrk run
 *   BENCH_REPEATS=3          interleaved repeats per scenario
 *   BENCH_WARMUP_SECONDS=2   unmeasured wrk run per proxy before each scenario (JIT, pools)
 *   BENCH_WRK_THREADS=2      wrk threads (never more than connections)
 *   BENCH_SCENARIOS=a,b      only these scenario ids (small-c10 small-c50 post-64k get-256k slow-1-of-3)
 *   BENCH_BALANCERS=a,b      puttu strategies for slow-1-of-3 (default: those `puttu proxy --help` lists)
 *   BENCH_MAX_FOREIGN=0.25   a run during which other processes used more CPU than this (cores)
 *   BENCH_RETRIES=3          ... is run again, up to this many times (a shared machine)
 *   BENCH_JSON=file          also write every run's figures as JSON
 *   BENCH_KEEP=1             keep the temp folder (configs, logs, wrk output)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { preflight } from './lib/preflight.mjs';

const tools = preflight();
// After the preflight: these import the compiled puttu (dist/), which it checked exists.
const { installGuards, onCleanup, runMain } = await import('./lib/processes.mjs');
const { startNginx } = await import('./lib/nginx.mjs');
const { describeRun, idleRssKiB, measure } = await import('./lib/measure.mjs');
const { probeLatency } = await import('./lib/latency-probe.mjs');
const { checkScenario, selectScenarios, SLOW_MS } = await import('./lib/scenarios.mjs');
const { foreignNote, renderTable, slowShareNote } = await import('./lib/table.mjs');
const { describeMachine, machine } = await import('./lib/machine.mjs');
const stack = await import('./lib/stack.mjs');

function envNumber(name, fallback, min) {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value < min) throw new Error(`${name} must be a number >= ${min}`);
  return value;
}
const SECONDS = envNumber('BENCH_SECONDS', 10, 1);
const REPEATS = envNumber('BENCH_REPEATS', 3, 1);
const WARMUP = Math.min(SECONDS, envNumber('BENCH_WARMUP_SECONDS', 2, 0));
const THREADS = envNumber('BENCH_WRK_THREADS', 2, 1);
/** The per-request (uncorrected) latency probe after each wrk run of the slow-instance scenario. */
const PROBE_SECONDS = Math.min(SECONDS, 5);
const MAX_FOREIGN = envNumber('BENCH_MAX_FOREIGN', 0.25, 0);
const RETRIES = envNumber('BENCH_RETRIES', 3, 0);
const SCENARIOS = selectScenarios(process.env.BENCH_SCENARIOS);
const BALANCERS = stack.balancers();

const targetCount = (s) => (s.perBalancer ? 2 + BALANCERS.names.length : 4);
const estimateS =
  60 +
  SCENARIOS.reduce(
    (sum, s) =>
      sum +
      targetCount(s) * (REPEATS * (SECONDS + 1.5 + (s.perBalancer ? PROBE_SECONDS : 0)) + WARMUP + 1) +
      (s.perBalancer ? 15 * BALANCERS.names.length : 0),
    0,
  );
// Room for the retries of disturbed runs; a hung run still ends the whole thing in bounded time.
installGuards({ timeBoundMs: (estimateS * (1.5 + RETRIES) + 180) * 1_000, label: 'bench' });

const log = (line) => process.stderr.write(`${line}\n`);
const mb = (kib) => `${(kib / 1024).toFixed(1)} MB`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'puttu-bench-'));
onCleanup('temp folder', () => (process.env.BENCH_KEEP ? log(`kept ${dir}`) : fs.rmSync(dir, { recursive: true, force: true })));

/** ZooKeeper, three backends (one slow) registered as `echo` (2 fast) and `mixed` (all 3), the proxies. */
async function startEverything() {
  const zk = await stack.startZk();
  const fast = await Promise.all([stack.startBackend({ dir, name: 'a' }), stack.startBackend({ dir, name: 'b' })]);
  const slow = await stack.startBackend({ dir, name: 'slow', delayMs: SLOW_MS });
  await stack.registerBackends(zk.connectString, { echo: fast, mixed: [...fast, slow] });
  const routes = { echo: fast.map((b) => b.port), mixed: [...fast, slow].map((b) => b.port) };
  const expect = { echo: 2, mixed: 3 };
  const nginx = {
    label: 'nginx',
    ...(await startNginx({
      binary: tools.nginx,
      dir: path.join(dir, 'nginx'),
      port: await stack.freePort(),
      routes,
      logFile: path.join(dir, 'nginx.log'),
    })),
  };
  const httpProxy = { label: 'http-proxy', ...(await stack.startHttpProxy({ dir, routes })) };
  const undici = { label: 'undici', ...(await stack.startUndiciProxy({ dir, routes })) };
  const puttu = { label: 'puttu', ...(await stack.startPuttu({ dir, zk: zk.connectString, expect })) };
  const startPuttu = async (balancer) => ({
    label: `puttu (${balancer})`,
    ...(await stack.startPuttu({ dir, zk: zk.connectString, name: `puttu-${balancer}`, flags: ['--balancer', balancer], expect })),
  });
  return { slow, nginx, httpProxy, undici, puttu, startPuttu };
}

/** The proxies a scenario measures, in the interleaving order, and which ratios to report. */
async function targetsOf(scenario, { nginx, httpProxy, undici, puttu, startPuttu }) {
  if (!scenario.perBalancer)
    return {
      targets: [nginx, httpProxy, undici, puttu],
      extra: [],
      comparisons: [
        ['puttu', 'nginx'],
        ['puttu', 'http-proxy'],
        ['puttu', 'undici'],
      ],
    };
  const main = `puttu (${BALANCERS.defaultName})`;
  const byBalancer = [];
  const extra = [];
  for (const b of BALANCERS.names) {
    if (b === BALANCERS.defaultName) {
      byBalancer.push({ ...puttu, label: main });
    } else {
      extra.push(await startPuttu(b));
      byBalancer.push(extra.at(-1));
    }
  }
  const comparisons = [[main, 'nginx'], [main, 'http-proxy'], ...byBalancer.filter((t) => t.label !== main).map((t) => [t.label, main])];
  return { targets: [nginx, httpProxy, ...byBalancer], extra, comparisons };
}

/** Uncorrected per-request latency through `target`, and the share the slow instance got meanwhile. */
async function probe(target, scenario, slow) {
  const before = await slow.served();
  const result = await probeLatency(`http://127.0.0.1:${target.port}${scenario.path}`, {
    connections: scenario.connections,
    seconds: PROBE_SECONDS,
  });
  return { ...result, toSlow: ((await slow.served()) - before) / result.requests };
}

async function runScenario(scenario, started) {
  const { targets, extra, comparisons } = await targetsOf(scenario, started);
  const slow = scenario.perBalancer ? started.slow : undefined;
  let runNo = 0;
  const once = (target, seconds) =>
    measure({ target, scenario, seconds, threads: THREADS, slow, logFile: path.join(dir, `wrk-${scenario.id}-${++runNo}.log`) });
  for (const t of targets) await checkScenario(t, scenario);
  if (WARMUP > 0) for (const t of targets) await once(t, WARMUP);
  const entry = { scenario, comparisons, targets: targets.map((t) => ({ label: t.label, runs: [] })) };
  for (let r = 0; r < REPEATS; r++) {
    for (const [i, t] of targets.entries()) {
      let run = await once(t, SECONDS);
      for (let retry = 1; run.foreign > MAX_FOREIGN && retry <= RETRIES; retry++) {
        log(
          `[${scenario.id} ${r + 1}/${REPEATS}] ${t.label.padEnd(20)} disturbed: others used ${Math.round(run.foreign * 100)}% of a core; again (${retry}/${RETRIES})`,
        );
        run = { ...(await once(t, SECONDS)), retries: retry };
      }
      if (slow) run.probe = await probe(t, scenario, slow);
      entry.targets[i].runs.push(run);
      log(`[${scenario.id} ${r + 1}/${REPEATS}] ${t.label.padEnd(20)} ${describeRun(run)}`);
    }
  }
  for (const t of extra) await t.proc.stop();
  return entry;
}

async function main() {
  const m = machine(tools);
  log(
    `${describeMachine(m)}\nscenarios: ${SCENARIOS.map((s) => s.id).join(', ')}; ${REPEATS} × ${SECONDS} s each (+${WARMUP} s warm-up), wrk -t${THREADS}; about ${Math.round(estimateS / 60)} min`,
  );
  const started = await startEverything();
  const { nginx, httpProxy, undici, puttu } = started;
  const idle = {
    puttu: await idleRssKiB(puttu),
    nginx: await idleRssKiB(nginx),
    'http-proxy': await idleRssKiB(httpProxy),
    undici: await idleRssKiB(undici),
  };
  log(`idle RSS: puttu ${mb(idle.puttu)}, nginx ${mb(idle.nginx)}, http-proxy ${mb(idle['http-proxy'])}, undici ${mb(idle.undici)}`);
  const results = [];
  for (const scenario of SCENARIOS) results.push(await runScenario(scenario, started));

  const report = [
    `puttu benchmark, ${new Date().toISOString()}`,
    describeMachine(m),
    `wrk --latency -t${THREADS}, ${REPEATS} interleaved repeats × ${SECONDS} s per proxy and scenario (after a ${WARMUP} s warm-up); medians over the repeats.`,
    `RSS: VmRSS peak during the run; CPU: the proxy's CPU time / wall time (100% = one core), and per request; nginx: master + worker.`,
    `Ratios: median over the repeats of per-repeat ratios (the runs of one repeat ran back to back).`,
    `Latency: wrk's distribution, which wrk 4.1 corrects for coordinated omission (see the note on the slow-instance scenario).`,
    '',
    renderTable(results),
    '',
    `idle RSS before load: puttu ${mb(idle.puttu)}, nginx ${mb(idle.nginx)} (master + worker), http-proxy ${mb(idle['http-proxy'])}, undici ${mb(idle.undici)}`,
    ...results.filter((r) => r.scenario.perBalancer).map(slowShareNote),
    `puttu --balancer strategies measured: ${BALANCERS.names.join(', ')} (default ${BALANCERS.defaultName})`,
    foreignNote(results, MAX_FOREIGN),
  ].join('\n');
  process.stdout.write(`\n${report}\n`);
  if (process.env.BENCH_JSON)
    fs.writeFileSync(
      process.env.BENCH_JSON,
      JSON.stringify({ machine: m, idle, seconds: SECONDS, repeats: REPEATS, threads: THREADS, results }, null, 2),
    );
}

await runMain(main, 'bench', log);
