#!/usr/bin/env node
/**
 * `npm run bench`: puttu next to Debian's nginx, HAProxy and Caddy, a minimal http-proxy proxy and
 * a minimal undici-`dispatch` proxy (undici-proxy.mjs), on loopback, same backends (registered in
 * a real ZooKeeper), measured with wrk, interleaved (each round runs every proxy once, in an order
 * that rotates from round to round) and repeated. Prints one table of medians over the rounds.
 * Numbers are output, never asserted.
 *
 *   npm run bench -- [--rounds N] [--seconds S] [--warmup S] [--scenarios a,b] [--targets a,b]
 *
 * Options, each also settable by its environment variable (the option wins):
 *   --seconds S     BENCH_SECONDS=3         length of each measured wrk run
 *   --rounds N      BENCH_REPEATS=3         interleaved rounds per scenario (medians over them)
 *   --warmup S      BENCH_WARMUP_SECONDS=1  unmeasured wrk run per proxy before each scenario
 *   --threads T     BENCH_WRK_THREADS=2     wrk threads (never more than connections)
 *   --scenarios L   BENCH_SCENARIOS=a,b     only these scenarios (small-c10 small-c50 post-64k get-256k get-4m slow-1-of-3)
 *   --targets L     BENCH_TARGETS=a,b       only these proxies (nginx haproxy caddy http-proxy undici puttu)
 *   --json FILE     BENCH_JSON=file         also write every run's figures as JSON
 *   --h2 on|off     BENCH_H2=on             then the HTTP/2 scenarios, puttu h2c next to nginx http2 (h2load.mjs;
 *                                           needs h2load from Debian's nghttp2-client, skipped with a note without it)
 * Environment only:
 *   BENCH_BALANCERS=a,b      puttu strategies for slow-1-of-3 (default: those `puttu proxy --help` lists)
 *   BENCH_MAX_FOREIGN=0.25   a run during which other processes used more CPU than this (cores)
 *   BENCH_RETRIES=3          ... is run again, up to this many times (a shared machine)
 *   BENCH_KEEP=1             keep the temp folder (configs, logs, wrk output)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { findExecutable, preflight } from './lib/preflight.mjs';

const { values: opts } = parseArgs({
  options: {
    seconds: { type: 'string' },
    rounds: { type: 'string' },
    warmup: { type: 'string' },
    threads: { type: 'string' },
    scenarios: { type: 'string' },
    targets: { type: 'string' },
    json: { type: 'string' },
    h2: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (opts.help) {
  const source = fs.readFileSync(new URL(import.meta.url), 'utf8');
  process.stdout.write(
    `${/\/\*\*\n([\s\S]*?)\*\//
      .exec(source)[1]
      .replace(/^ \* ?/gm, '')
      .trimEnd()}\n`,
  );
  process.exit(0);
}

/** Every proxy the run can measure, in the interleaving order of the first round. */
const ALL_TARGETS = ['nginx', 'haproxy', 'caddy', 'http-proxy', 'undici', 'puttu'];
/**
 * The references measured in the slow-instance scenario: nginx round-robin, HAProxy's `random`
 * (the better of two draws). Caddy (random) and the Node baselines (round-robin) balance as puttu's
 * own random and round-robin do, which that scenario measures already.
 */
const SLOW_REFERENCES = ['nginx', 'haproxy'];
const TARGETS = (opts.targets ?? process.env.BENCH_TARGETS ?? ALL_TARGETS.join(','))
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const unknownTargets = TARGETS.filter((t) => !ALL_TARGETS.includes(t));
if (unknownTargets.length > 0 || TARGETS.length === 0) {
  process.stderr.write(`--targets: unknown ${unknownTargets.join(', ') || '(none given)'} (known: ${ALL_TARGETS.join(', ')})\n`);
  process.exit(2);
}
const selected = (name) => TARGETS.includes(name);

const tools = preflight({
  tools: ['wrk', ...['nginx', 'haproxy', 'caddy'].filter(selected)],
  hint: (missing) =>
    `Or leave ${missing.join(' and ')} out: --targets ${TARGETS.filter((t) => !missing.includes(t)).join(',')} (BENCH_TARGETS=...)`,
});
// After the preflight: these import the compiled puttu (dist/), which it checked exists.
const { installGuards, onCleanup, runMain } = await import('./lib/processes.mjs');
const { startNginx } = await import('./lib/nginx.mjs');
const { startHaproxy } = await import('./lib/haproxy.mjs');
const { startCaddy } = await import('./lib/caddy.mjs');
const { describeRun, idleRssKiB, measure } = await import('./lib/measure.mjs');
const { probeLatency } = await import('./lib/latency-probe.mjs');
const { checkScenario, selectScenarios, SLOW_MS } = await import('./lib/scenarios.mjs');
const { foreignNote, renderSummary, renderTable, slowShareNote } = await import('./lib/table.mjs');
const { describeMachine, machine } = await import('./lib/machine.mjs');
const stack = await import('./lib/stack.mjs');

/** A number from `--option` or else the environment variable `name`. */
function setting(name, fallback, min, option) {
  const value = Number((option && opts[option]) ?? process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value < min) throw new Error(`${option ? `--${option} / ` : ''}${name} must be a number >= ${min}`);
  return value;
}
const SECONDS = setting('BENCH_SECONDS', 3, 1, 'seconds');
const REPEATS = setting('BENCH_REPEATS', 3, 1, 'rounds');
const WARMUP = Math.min(SECONDS, setting('BENCH_WARMUP_SECONDS', 1, 0, 'warmup'));
const THREADS = setting('BENCH_WRK_THREADS', 2, 1, 'threads');
/** The per-request (uncorrected) latency probe after each wrk run of the slow-instance scenario. */
const PROBE_SECONDS = Math.min(SECONDS, 5);
const MAX_FOREIGN = setting('BENCH_MAX_FOREIGN', 0.25, 0);
const RETRIES = setting('BENCH_RETRIES', 3, 0);
const JSON_FILE = opts.json ?? process.env.BENCH_JSON;
const SCENARIOS = selectScenarios(opts.scenarios ?? process.env.BENCH_SCENARIOS);
const BALANCERS = selected('puttu') ? stack.balancers() : { names: [], defaultName: 'random' };

const references = TARGETS.filter((t) => t !== 'puttu');
const targetCount = (s) =>
  s.perBalancer ? references.filter((t) => SLOW_REFERENCES.includes(t)).length + BALANCERS.names.length : TARGETS.length;
/** Seconds per measured run beyond wrk's own: the drain pause, starting wrk, reading /proc. */
const RUN_OVERHEAD_S = 0.6;
const estimateS =
  30 +
  SCENARIOS.reduce(
    (sum, s) =>
      sum +
      targetCount(s) * (REPEATS * (SECONDS + RUN_OVERHEAD_S + (s.perBalancer ? PROBE_SECONDS : 0)) + WARMUP + RUN_OVERHEAD_S) +
      (s.perBalancer ? 12 * Math.max(0, BALANCERS.names.length - 1) : 0),
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
  const external = async (name, start) => ({
    label: name,
    ...(await start({
      binary: tools[name],
      dir: path.join(dir, name),
      port: await stack.freePort(),
      routes,
      logFile: path.join(dir, `${name}.log`),
    })),
  });
  const starters = {
    nginx: () => external('nginx', startNginx),
    haproxy: () => external('haproxy', startHaproxy),
    caddy: () => external('caddy', startCaddy),
    'http-proxy': async () => ({ label: 'http-proxy', ...(await stack.startHttpProxy({ dir, routes })) }),
    undici: async () => ({ label: 'undici', ...(await stack.startUndiciProxy({ dir, routes })) }),
    puttu: async () => ({ label: 'puttu', ...(await stack.startPuttu({ dir, zk: zk.connectString, expect })) }),
  };
  const running = new Map();
  for (const name of TARGETS) running.set(name, await starters[name]());
  const startPuttu = async (balancer) => ({
    label: `puttu (${balancer})`,
    ...(await stack.startPuttu({ dir, zk: zk.connectString, name: `puttu-${balancer}`, flags: ['--balancer', balancer], expect })),
  });
  return { slow, running, startPuttu };
}

/**
 * The proxies a scenario measures, in the first round's order, and which ratios to report:
 * `subject` against each of `references` (the summary), and `comparisons` (rows of the table).
 */
async function targetsOf(scenario, { running, startPuttu }) {
  const puttu = running.get('puttu');
  if (!scenario.perBalancer)
    return {
      targets: [...running.values()],
      extra: [],
      subject: puttu && 'puttu',
      references,
      comparisons: [],
    };
  const slowRefs = references.filter((r) => SLOW_REFERENCES.includes(r));
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
  const comparisons = byBalancer.filter((t) => t.label !== main).map((t) => [t.label, main]);
  return {
    targets: [...slowRefs.map((r) => running.get(r)), ...byBalancer],
    extra,
    subject: puttu && main,
    references: slowRefs,
    comparisons,
  };
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
  const { targets, extra, ...ratios } = await targetsOf(scenario, started);
  const slow = scenario.perBalancer ? started.slow : undefined;
  let runNo = 0;
  const once = (target, seconds) =>
    measure({ target, scenario, seconds, threads: THREADS, slow, logFile: path.join(dir, `wrk-${scenario.id}-${++runNo}.log`) });
  for (const t of targets) await checkScenario(t, scenario);
  if (WARMUP > 0) for (const t of targets) await once(t, WARMUP);
  const entry = { scenario, ...ratios, targets: targets.map((t) => ({ label: t.label, runs: [] })) };
  for (let r = 0; r < REPEATS; r++) {
    // Rotate the order each round, so no proxy always runs right after the same neighbour.
    for (let k = 0; k < targets.length; k++) {
      const i = (k + r) % targets.length;
      const t = targets[i];
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
    `${describeMachine(m)}\nproxies: ${TARGETS.join(', ')}\nscenarios: ${SCENARIOS.map((s) => s.id).join(', ')}; ${REPEATS} rounds × ${SECONDS} s each (+${WARMUP} s warm-up), wrk -t${THREADS}; about ${Math.round(estimateS / 60)} min`,
  );
  const startedAt = Date.now();
  const started = await startEverything();
  const idle = {};
  for (const [name, t] of started.running) idle[name] = await idleRssKiB(t);
  const idleLine = Object.entries(idle)
    .map(([name, kib]) => `${name} ${mb(kib)}${name === 'nginx' ? ' (master + worker)' : ''}`)
    .join(', ');
  log(`idle RSS: ${idleLine}`);
  const results = [];
  for (const scenario of SCENARIOS) results.push(await runScenario(scenario, started));

  const report = [
    `puttu benchmark, ${new Date().toISOString()} (${Math.round((Date.now() - startedAt) / 1000)} s)`,
    describeMachine(m),
    `wrk --latency -t${THREADS}, ${REPEATS} interleaved rounds × ${SECONDS} s per proxy and scenario (after a ${WARMUP} s warm-up); medians over the rounds.`,
    `Each proxy on one core: nginx 1 worker, HAProxy nbthread 1, Caddy GOMAXPROCS=1, the Node proxies one process. Balancing: nginx and the Node baselines round-robin, Caddy random, HAProxy random (best of 2 draws by requests in flight).`,
    `max RSS: the highest VmRSS sampled during any round (nginx: master + worker); CPU: the proxy's CPU time / wall time (100% = one core), and per request.`,
    `Ratios: median over the rounds of per-round ratios (the runs of one round ran back to back); max RSS: ratio of the maxima.`,
    `Latency: wrk's distribution, which wrk 4.1 corrects for coordinated omission (see the note on the slow-instance scenario).`,
    '',
    renderTable(results),
    '',
    ...(started.running.has('puttu') && references.length > 0 ? [renderSummary(results), ''] : []),
    `idle RSS before load: ${idleLine}`,
    ...results.filter((r) => r.scenario.perBalancer).map(slowShareNote),
    ...(BALANCERS.names.length > 0 && SCENARIOS.some((s) => s.perBalancer)
      ? [`puttu --balancer strategies measured: ${BALANCERS.names.join(', ')} (default ${BALANCERS.defaultName})`]
      : []),
    foreignNote(results, MAX_FOREIGN),
  ].join('\n');
  process.stdout.write(`\n${report}\n`);
  if (JSON_FILE)
    fs.writeFileSync(
      JSON_FILE,
      JSON.stringify({ machine: m, idle, seconds: SECONDS, repeats: REPEATS, threads: THREADS, results }, null, 2),
    );
}

/** The HTTP/2 scenarios, in a process of their own once everything above has stopped. */
async function h2Scenarios() {
  if ((opts.h2 ?? process.env.BENCH_H2 ?? 'on') !== 'on') return;
  if (findExecutable('h2load') === undefined)
    return log('h2c scenarios skipped: h2load is not installed (apt-get install -y nghttp2-client)');
  const { spawnSync } = await import('node:child_process');
  const env = { ...process.env, BENCH_SECONDS: String(SECONDS), BENCH_REPEATS: String(REPEATS) };
  const result = spawnSync(process.execPath, [new URL('./h2load.mjs', import.meta.url).pathname], { stdio: 'inherit', env });
  if (result.status !== 0) log(`h2c scenarios failed (exit ${result.status ?? result.signal})`);
}

await runMain(
  async () => {
    await main();
    const { runCleanup } = await import('./lib/processes.mjs');
    await runCleanup();
    await h2Scenarios();
  },
  'bench',
  log,
);
