import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import test from 'ava';
import { UsageError } from '../../proxy/errors.js';
import { headroomPercent, tuningChoice } from '../../proxy/runtime-tuning.js';

const TUNING = new URL('../../proxy/runtime-tuning.js', import.meta.url).href;

function runModule(script: string, nodeArgs: string[] = [], timeoutMs = 30_000) {
  return spawnSync(process.execPath, [...nodeArgs, '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, NODE_OPTIONS: '' },
  });
}

/** What a script run by runModule() printed; throws with its stderr if it failed. */
function stdoutOf(r: ReturnType<typeof runModule>): string {
  if (r.status !== 0) throw new Error(`node exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** The JSON line a script run by runModule() printed; throws with its stderr if it failed. */
function outputOf(r: ReturnType<typeof runModule>) {
  return JSON.parse(stdoutOf(r).trim());
}

/**
 * Runs a fresh node that allocates short-lived objects for `ms` (as a busy proxy does) with the
 * young generation capped at `capMiB` (or not capped), and returns what it saw.
 */
function churn(
  capMiB: number | undefined,
  nodeArgs: string[] = [],
  ms = 1_500,
  startHeld = false,
): { youngBytes: number; installed: boolean; capped: boolean } {
  const script = `
    import v8 from 'node:v8';
    import { capYoungGeneration } from ${JSON.stringify(TUNING)};
    // As beforeLoad() does: growth stopped while the program loads.
    if (${startHeld}) v8.setFlagsFromString('--semi-space-growth-factor=1');
    const cap = ${capMiB === undefined ? 'undefined' : `capYoungGeneration(${capMiB})`};
    let keep = [];
    const end = Date.now() + ${ms};
    // Timers between bursts: the GC observer is told between them, as in the event loop of a server.
    const tick = () => {
      for (let i = 0; i < 2000; i++) { keep.push({ i, s: 'x' + i, a: [i] }); if (keep.length > 5000) keep = []; }
      if (Date.now() < end) return setImmediate(tick);
      const young = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
      console.log(JSON.stringify({ youngBytes: young, installed: cap !== undefined, capped: cap?.capped ?? false }));
      cap?.stop();
    };
    tick();`;
  return outputOf(runModule(script, nodeArgs));
}

const MiB = 1024 * 1024;

test('the young generation stops growing at the cap (both semi-spaces: 2 × cap)', (t) => {
  const free = churn(undefined);
  // Uncapped, the same allocation grows it past what the cap allows: the check below can fail.
  t.true(free.youngBytes > 2 * 2 * MiB + MiB, `uncapped young generation ${free.youngBytes} bytes`);
  const capped = churn(2);
  t.true(capped.installed);
  t.true(capped.capped, 'growth was stopped');
  t.true(capped.youngBytes <= 2 * 2 * MiB + MiB, `capped young generation ${capped.youngBytes} bytes`);
});

test('started with growth stopped (as the CLI starts), it grows again up to the cap', (t) => {
  const r = churn(4, [], 1_500, true);
  t.true(r.installed);
  t.true(r.youngBytes > 2 * 2 * MiB, `young generation ${r.youngBytes} bytes: it grew past 2 × 2 MiB`);
  t.true(r.youngBytes <= 2 * 4 * MiB + MiB, `young generation ${r.youngBytes} bytes: at most the cap`);
});

test("an operator's --max-semi-space-size wins: no cap is installed", (t) => {
  const r = churn(2, ['--max-semi-space-size=8']);
  t.false(r.installed);
  t.true(r.youngBytes > 2 * 2 * MiB + MiB, 'the young generation grew past the cap the code asked for');
});

/** Runs `script` as an ES module in a fresh node, without the runner's NODE_OPTIONS. */
test('collectGarbageOnce runs a full collection: an unreachable old object is gone after it', (t) => {
  const script = `
    import { collectGarbageOnce } from ${JSON.stringify(TUNING)};
    let target = { big: new Array(100000).fill(1) };
    const ref = new WeakRef(target);
    // Old enough to have left the young generation: two scavenges' worth of allocation later.
    for (let i = 0; i < 200000; i++) globalThis.sink = { i };
    target = undefined;
    // A WeakRef's target is held until the end of the turn that last read it.
    setImmediate(() => {
      const ms = collectGarbageOnce();
      console.log(JSON.stringify({ collected: ref.deref() === undefined, ms }));
    });`;
  const r = runModule(script);
  t.is(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim()) as { collected: boolean; ms: number };
  t.true(out.collected);
  t.true(out.ms >= 0);
});

test('paceYoungCollections: one scavenge per step of body bytes, once step 4 exposed gc', (t) => {
  const script = `
    import { PerformanceObserver, constants } from 'node:perf_hooks';
    import { collectGarbageOnce, paceYoungCollections } from ${JSON.stringify(TUNING)};
    let minor = 0;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MINOR) minor++;
    }).observe({ entryTypes: ['gc'] });
    const pace = paceYoungCollections(1024 * 1024);
    const move = (mib) => { for (let i = 0; i < mib * 16; i++) pace(64 * 1024); };
    const settle = () => new Promise((resolve) => setTimeout(resolve, 50));
    move(4);
    await settle();
    const beforeGc = minor;
    collectGarbageOnce();
    move(10);
    await settle();
    console.log(JSON.stringify({ beforeGc, paced: minor - beforeGc }));`;
  const r = runModule(script);
  t.is(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim()) as { beforeGc: number; paced: number };
  t.is(out.beforeGc, 0, 'before gc is exposed the counter only counts');
  // 10 MiB in 1 MiB steps: 10 scavenges, give or take one V8 ran on its own.
  t.true(out.paced >= 10 && out.paced <= 11, `expected 10 scavenges, saw ${out.paced}`);
});

test('headroomPercent puts the next limit the headroom above the live size, within 1 % and 400 %', (t) => {
  t.is(headroomPercent(10 * MiB, 12 * MiB), 120);
  t.is(headroomPercent(40 * MiB, 12 * MiB), 30);
  t.is(headroomPercent(2_000 * MiB, 12 * MiB), 1, 'never 0, which would hand the factor back to V8');
  t.is(headroomPercent(1 * MiB, 12 * MiB), 400);
  t.is(headroomPercent(0, 12 * MiB), 400);
});

/**
 * Runs a fresh node with a live heap of about 20 MB (as the proxy's) that holds 64 KiB buffers for
 * a few scavenges each, as the proxy does with the reads that wait on slow sockets, with step 6's
 * headroom; returns the mark-compacts seen while 200 MiB of buffers passed.
 */
function markCompacts(
  headroomMiB: number | undefined,
  nodeArgs: string[] = [],
): { majors: number; percent: number | null; installed: boolean; beforeStep4: number | null } {
  const script = `
    import { PerformanceObserver, constants } from 'node:perf_hooks';
    import { collectGarbageOnce, holdOldGenerationHeadroom, paceYoungCollections } from ${JSON.stringify(TUNING)};
    let majors = 0;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors++;
    }).observe({ entryTypes: ['gc'] });
    globalThis.live = Array.from({ length: 250000 }, (_, i) => ({ i, s: 'v' + i }));
    const headroom = ${headroomMiB === undefined ? 'undefined' : `holdOldGenerationHeadroom(${headroomMiB} * 1024 * 1024)`};
    const beforeStep4 = headroom?.percent ?? null;
    collectGarbageOnce();
    const pace = paceYoungCollections(1024 * 1024);
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const start = majors;
    const held = new Array(24).fill(null);
    for (let i = 0; i < 1600; i++) {
      held[i % 24] = [Buffer.allocUnsafeSlow(65536), Buffer.allocUnsafeSlow(65536)];
      for (let k = 0; k < 200; k++) ({ k });
      pace(131072);
      await turn();
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    console.log(JSON.stringify({ majors: majors - start, percent: headroom?.percent ?? null, installed: headroom !== undefined, beforeStep4 }));
    headroom?.stop();`;
  return outputOf(runModule(script, nodeArgs));
}

test('holdOldGenerationHeadroom: V8 honours the percentage it sets after each mark-compact (more headroom, fewer of them)', (t) => {
  // 2 MiB is below V8's own minimum step (8 MB): as without step 6.
  const tight = markCompacts(2);
  const roomy = markCompacts(64);
  t.is(tight.beforeStep4, null, 'nothing is set before step 4 has run');
  t.true(tight.percent !== null && tight.percent >= 5 && tight.percent <= 20, `2 MiB over ~20 MB live: ${tight.percent} %`);
  t.true(roomy.percent !== null && roomy.percent >= 200, `64 MiB over ~20 MB live: ${roomy.percent} %`);
  // If V8 stops reading --heap-growing-percent when it sets a limit, both see the same count.
  t.true(tight.majors >= 6, `${tight.majors} mark-compacts within V8's own step`);
  t.true(roomy.majors * 2 <= tight.majors, `64 MiB of headroom: ${roomy.majors} mark-compacts, against ${tight.majors} with 2 MiB`);
});

test("an operator's --heap-growing-percent wins: no headroom is held", (t) => {
  const r = markCompacts(64, ['--heap-growing-percent=50']);
  t.false(r.installed);
});

/**
 * Runs a fresh node that runs beforeLoad() as bin/puttu.js does, makes one function hot before
 * `startupOver()` and another after it, and returns the names V8's --trace-opt says it optimized.
 */
function optimized(nodeArgs: string[] = []): string[] {
  const script = `
    const { beforeLoad, startupOver } = await import(${JSON.stringify(TUNING)});
    beforeLoad();
    function hotDuringStartup(i) { return (i * 31) ^ (i >>> 3); }
    function hotAfterStartup(i) { return (i * 17) ^ (i >>> 5); }
    let sum = 0;
    const spin = (f) => { for (let round = 0; round < 50; round++) for (let i = 0; i < 20000; i++) sum += f(i); };
    spin(hotDuringStartup);
    startupOver();
    spin(hotAfterStartup);
    await new Promise((resolve) => setTimeout(resolve, 200)); // concurrent compiles finish
    spin(hotAfterStartup);
    console.log('sum', sum);`;
  const stdout = stdoutOf(runModule(script, ['--trace-opt', ...nodeArgs]));
  return [...stdout.matchAll(/completed optimizing .*?<JSFunction (\w+)/g)].map((m) => m[1]!);
}

test('TurboFan is off while puttu starts and on again after startupOver()', (t) => {
  const names = optimized();
  t.false(names.includes('hotDuringStartup'), names.join(' '));
  t.true(names.includes('hotAfterStartup'), names.join(' '));
});

test("an operator's --no-opt holds after startupOver()", (t) => {
  const names = optimized(['--no-opt']);
  t.deepEqual(
    names.filter((n) => n.startsWith('hot')),
    [],
  );
});

test('without the start-up hold (an operator --opt) the start-up code is optimized too: the first test can fail', (t) => {
  const names = optimized(['--opt']);
  t.true(names.includes('hotDuringStartup'), names.join(' '));
});

/**
 * Runs a fresh node that runs beforeLoad() as bin/puttu.js does, then sends 6,000 requests through
 * an undici Pool (so its parser, the proxy's too, gets hot), and returns how V8 compiled WebAssembly
 * functions (--trace-wasm-compilation-times): a count per compiler.
 */
function wasmCompilers(nodeArgs: string[] = []): { Liftoff: number; TurboFan: number } {
  const script = `
    const { beforeLoad } = await import(${JSON.stringify(TUNING)});
    beforeLoad();
    const http = await import('node:http');
    const { Pool } = await import('undici');
    const server = http.createServer((req, res) => res.end('x'.repeat(200)));
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const pool = new Pool('http://127.0.0.1:' + server.address().port, { connections: 4 });
    let n = 0;
    await Promise.all([0, 1, 2, 3].map(async () => {
      while (n++ < 6000) await (await pool.request({ path: '/', method: 'GET' })).body.text();
    }));
    await pool.close();
    server.close();`;
  const stdout = stdoutOf(runModule(script, ['--trace-wasm-compilation-times', ...nodeArgs], 60_000));
  const count = (compiler: string) => [...stdout.matchAll(new RegExp(`using ${compiler},`, 'g'))].length;
  return { Liftoff: count('Liftoff'), TurboFan: count('TurboFan') };
}

test('undici’s parser stays on Liftoff: nothing is recompiled by TurboFan under load', (t) => {
  const compiled = wasmCompilers();
  t.true(compiled.Liftoff > 0, `compiled by Liftoff: ${compiled.Liftoff} functions`);
  t.is(compiled.TurboFan, 0);
});

test('an operator’s WebAssembly tiering flag wins: the hot parser is recompiled by TurboFan (the test above can fail)', (t) => {
  const compiled = wasmCompilers(['--wasm-dynamic-tiering']);
  t.true(compiled.TurboFan > 0, `recompiled by TurboFan: ${compiled.TurboFan} functions`);
});

/**
 * Imports `modules` in a fresh node and reports what that changed: the V8 flags set (every call
 * of v8.setFlagsFromString, which this records), `gc` exposed, heap settings, and the active
 * resources (timers, handles) a turn after the imports. `then` runs after the imports, to show the
 * check can fail.
 */
function sideEffectsOfImporting(
  modules: string[],
  then = '',
): {
  flags: string[];
  timers: string[];
  gcExposed: boolean;
  heapBefore: object;
  heapAfter: object;
  resourcesBefore: string[];
  resourcesAfter: string[];
} {
  const script = `
    import v8 from 'node:v8';
    import vm from 'node:vm';
    const flags = [];
    const set = v8.setFlagsFromString;
    v8.setFlagsFromString = (flag) => { flags.push(flag); return set.call(v8, flag); };
    const settings = () => { const h = v8.getHeapStatistics(); return { heap_size_limit: h.heap_size_limit, does_zap_garbage: h.does_zap_garbage, spaces: v8.getHeapSpaceStatistics().map((s) => s.space_name) }; };
    const timers = [];
    for (const name of ['setTimeout', 'setInterval', 'setImmediate']) {
      const original = globalThis[name];
      globalThis[name] = (...args) => { if (importing) timers.push(name); return original(...args); };
    }
    let importing = false;
    // The standard streams are created on first use, and node's own node:assert touches stderr
    // as it loads (internal/util/colors): the process's streams, not a handle a module opened.
    void process.stdout, process.stderr;
    const heapBefore = settings();
    const resourcesBefore = process.getActiveResourcesInfo();
    importing = true;
    for (const m of ${JSON.stringify(modules)}) await import(m);
    ${then}
    importing = false;
    await new Promise((resolve) => setImmediate(resolve));
    const resourcesAfter = process.getActiveResourcesInfo();
    console.log(JSON.stringify({ flags, timers, gcExposed: vm.runInNewContext('typeof gc') === 'function', heapBefore, heapAfter: settings(), resourcesBefore, resourcesAfter }));`;
  return JSON.parse(stdoutOf(runModule(script)).trim().split('\n').pop()!);
}

/**
 * The compiled module of every source file under proxy/ but the CLI entry, main.ts, which runs the
 * command (listed from the sources, so a stale file left in dist/ does not count).
 */
function proxyModules(): string[] {
  const sources = new URL('../../../proxy/', import.meta.url);
  const compiled = new URL('../../proxy/', import.meta.url);
  const found: string[] = [];
  const walk = (relative: string): void => {
    for (const entry of readdirSync(new URL(relative, sources), { withFileTypes: true })) {
      if (entry.isDirectory()) walk(`${relative}${entry.name}/`);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') && `${relative}${entry.name}` !== 'main.ts') {
        found.push(new URL(`${relative}${entry.name.replace(/\.ts$/, '.js')}`, compiled).href);
      }
    }
  };
  walk('');
  return found.sort();
}

test('importing the library, or any module under proxy/, changes no V8 flag, exposes no gc and leaves no timer or handle', (t) => {
  const modules = proxyModules();
  t.true(modules.length > 40, `${modules.length} modules found`);
  t.true(modules.some((m) => m.endsWith('/proxy/index.js')));
  const r = sideEffectsOfImporting(modules);
  t.deepEqual(r.flags, [], 'V8 flags set on import');
  t.false(r.gcExposed, '--expose-gc set on import');
  t.deepEqual(r.heapAfter, r.heapBefore);
  t.deepEqual(r.timers, [], 'timers started on import (unref()ed ones too)');
  t.deepEqual(r.resourcesAfter, r.resourcesBefore);
});

test('the check above sees tuning when it happens: beforeLoad() and a collection set flags and expose gc', (t) => {
  const tuning = new URL('../../proxy/runtime-tuning.js', import.meta.url).href;
  const r = sideEffectsOfImporting(
    [tuning],
    `const t = await import(${JSON.stringify(tuning)}); t.beforeLoad(); t.collectGarbageOnce(); globalThis.keep = setInterval(() => {}, 1000); keep.unref(); globalThis.once = setTimeout(() => {}, 10);`,
  );
  t.true(r.flags.includes('--no-allocation-site-pretenuring'), r.flags.join(' '));
  t.true(r.flags.includes('--expose-gc'));
  t.true(r.gcExposed);
  t.deepEqual(r.timers, ['setInterval', 'setTimeout']);
  t.notDeepEqual(r.resourcesAfter, r.resourcesBefore);
});

test('--tune-runtime off / on and PUTTU_TUNE_RUNTIME choose tuning, and the flag is taken out of the arguments', (t) => {
  t.deepEqual(tuningChoice(['proxy', '--port', '1'], {}), { tune: true, argv: ['proxy', '--port', '1'] });
  t.deepEqual(tuningChoice(['--tune-runtime', 'off', 'proxy'], {}), { tune: false, argv: ['proxy'] });
  t.deepEqual(tuningChoice(['proxy', '--tune-runtime=off'], {}), { tune: false, argv: ['proxy'] });
  t.deepEqual(tuningChoice(['proxy'], { PUTTU_TUNE_RUNTIME: 'off' }), { tune: false, argv: ['proxy'] });
  t.deepEqual(tuningChoice(['proxy', '--tune-runtime', 'on'], { PUTTU_TUNE_RUNTIME: 'off' }), { tune: true, argv: ['proxy'] });
  // After `--` the arguments belong to the command `puttu register` runs.
  t.deepEqual(tuningChoice(['register', '--', 'app', '--tune-runtime', 'off'], {}), {
    tune: true,
    argv: ['register', '--', 'app', '--tune-runtime', 'off'],
  });
  t.throws(() => tuningChoice(['--tune-runtime', 'maybe'], {}), { instanceOf: UsageError, message: /"on" or "off"/ });
  t.throws(() => tuningChoice(['--tune-runtime'], {}), { instanceOf: UsageError });
});
