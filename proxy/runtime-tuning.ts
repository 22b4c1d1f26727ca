/**
 * All of puttu's runtime tuning: the V8 flags the `puttu` command changes in its own process, and
 * when. Nothing here runs on import. Only the CLI entry (bin/puttu.js, main.ts) calls these, and
 * only when tuning is on (the default; `--tune-runtime off` or PUTTU_TUNE_RUNTIME=off turns it
 * off). An application that embeds the library, or a test runner, keeps its own runtime as it is.
 * An operator's own node or V8 flag (command line or NODE_OPTIONS) always wins over puttu's.
 *
 * The command's life, and what each step sets:
 * 1. `beforeLoad()`, first thing, before the CLI's modules load: allocation-site pretenuring off,
 *    young-generation growth held, TurboFan held, WebAssembly kept on its baseline compiler.
 * 2. `startupOver()`, once the proxy listens (at once for the other commands): TurboFan on again.
 * 3. `capYoungGeneration()`, the proxy only: the young generation may grow again, up to a cap.
 * 4. `collectGarbageOnce()`, the proxy only, after the registry's initial read.
 * 5. `paceYoungCollections()`, the proxy only: a young-generation collection after every 8 MiB of
 *    body the proxy moves.
 * 6. `holdOldGenerationHeadroom()`, the proxy only: the old generation's limit a fixed number of
 *    bytes above its live size, after every mark-compact.
 * The other commands get `restoreYoungGenerationGrowth()` instead of 3 to 6.
 */
import { constants, PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';
import { UsageError } from './errors.js';

/**
 * Whether the command should tune its runtime: not with `--tune-runtime off` (or `=off`) among its
 * arguments before any `--`, nor with PUTTU_TUNE_RUNTIME=off. Returns the arguments without that
 * flag, for the command's own parser.
 */
export function tuningChoice(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): { tune: boolean; argv: string[] } {
  let tune = !/^(off|false|0|no)$/i.test(env.PUTTU_TUNE_RUNTIME ?? '');
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    const inline = /^--tune-runtime=(.*)$/.exec(arg);
    if (inline || arg === '--tune-runtime') {
      const value = inline ? inline[1]! : (argv[++i] ?? '');
      if (value !== 'on' && value !== 'off') throw new UsageError(`--tune-runtime takes "on" or "off", not ${JSON.stringify(value)}`);
      tune = value === 'on';
      continue;
    }
    rest.push(arg);
  }
  return { tune, argv: rest };
}

/**
 * Whether the operator set a node or V8 flag themselves, on node's command line or in
 * NODE_OPTIONS: puttu's own settings then leave it alone.
 * `flag` is matched against each argument, e.g. /^--max[-_]semi[-_]space[-_]size\b/.
 */
export function operatorSetFlag(
  flag: RegExp,
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string = process.env.NODE_OPTIONS ?? '',
): boolean {
  return [...execArgv, ...nodeOptions.split(/\s+/)].some((arg) => flag.test(arg));
}

const OPTIMIZER_FLAG = /^--(no[-_]opt|no[-_]turbofan|turbofan|opt|jitless|max[-_]opt)\b/;
const WASM_TIERING_FLAG = /^--(no[-_])?(liftoff|wasm[-_]tier[-_]up|wasm[-_]dynamic[-_]tiering|wasm[-_]tiering[-_]budget)\b/;
let optimizerHeld = false;
let loadTuned = false;

/**
 * Step 1, before the command's modules load.
 *
 * - Allocation-site pretenuring off. V8 learns from bursts (such as the initial read of a large
 *   registry) to allocate request-path objects straight into the old generation; each request's
 *   garbage then fills it and forces frequent mark-compacts, which costs a proxy with many
 *   services a large share of its throughput. V8 reads the flag at each GC.
 * - Young-generation growth held. Loading modules and reading the registry would otherwise grow
 *   the semi-spaces to sizes an idle proxy never needs again; they grow back under load, up to
 *   the cap of step 3.
 * - TurboFan held. Loading a hundred modules makes Node's resolver hot enough for TurboFan; those
 *   compiles are of code that runs once, and they leave compiler code and zone memory resident in
 *   the idle proxy. V8 reads the flag each time a function is due for optimization, so the request
 *   path is optimized as always once step 2 releases it.
 * - WebAssembly stays on Liftoff, V8's baseline compiler. The only WebAssembly is undici's HTTP
 *   parser (llhttp), and once it is hot V8 recompiles its large state-machine function with
 *   TurboFan on a worker thread: a quarter of a second of CPU and about 30 MB of compiler memory at
 *   once, while the proxy is under load, much of it left resident in that thread's malloc arena
 *   afterwards. That is 8-13 MB of peak memory for no throughput the benchmarks can tell apart
 *   (the parser is about 1 % of the proxy's CPU; docs/perf-log.md has the measurements).
 *   `--liftoff-only` is the flag that stops the tier-up when set at runtime (`--no-wasm-tier-up`
 *   does not: dynamic tiering ignores it). An operator's own Liftoff or tiering flag wins.
 */
export function beforeLoad(): void {
  // bin/puttu.js applies it before main.js loads, and main.ts asks again for `node dist/proxy/main.js`.
  if (loadTuned) return;
  loadTuned = true;
  v8.setFlagsFromString('--no-allocation-site-pretenuring');
  v8.setFlagsFromString('--semi-space-growth-factor=1');
  if (!operatorSetFlag(OPTIMIZER_FLAG)) {
    v8.setFlagsFromString('--no-turbofan');
    optimizerHeld = true;
  }
  if (!operatorSetFlag(WASM_TIERING_FLAG)) v8.setFlagsFromString('--liftoff-only');
}

/** Step 2, start-up is over: TurboFan on again, if step 1 held it. */
export function startupOver(): void {
  if (optimizerHeld) v8.setFlagsFromString('--turbofan');
  optimizerHeld = false;
}

/*
 * Step 3, a cap on V8's young generation.
 *
 * Under load V8 grows each semi-space of the young generation up to 16 MiB (Node 20's default),
 * about 32 MiB of resident memory for objects that live one request. Capped at 8 MiB the proxy
 * keeps its throughput; much lower caps cost it (test/bench/ab.mjs compares).
 *
 * `--max-semi-space-size` is read once, when the heap is created, so `v8.setFlagsFromString`
 * cannot lower it later, and a `bin` that re-executes node with the flag would double the processes.
 * `--semi-space-growth-factor`, though, is read each time the young generation grows: after every
 * garbage collection this looks at the young generation's size and sets the factor to 1 (no more
 * growth) once it reached the cap, back to 2 (V8's default) below it. The observer runs between
 * event-loop turns, so a single turn that allocates several young generations' worth could still
 * grow it one step past the cap. An operator who sets `--max-semi-space-size` keeps their choice.
 */
export const DEFAULT_MAX_SEMI_SPACE_MIB = 8;

export interface YoungGenerationCap {
  /** Whether growth is stopped now (the young generation reached the cap). */
  readonly capped: boolean;
  stop(): void;
}

/** V8's own growth again: for the commands other than the proxy, after step 1 held it. */
export function restoreYoungGenerationGrowth(): void {
  v8.setFlagsFromString('--semi-space-growth-factor=2');
}

export function capYoungGeneration(
  maxSemiSpaceMiB = DEFAULT_MAX_SEMI_SPACE_MIB,
  options: { execArgv?: readonly string[]; nodeOptions?: string } = {},
): YoungGenerationCap | undefined {
  if (operatorSetFlag(/^--max[-_]semi[-_]space[-_]size\b/, options.execArgv, options.nodeOptions)) {
    restoreYoungGenerationGrowth();
    return undefined;
  }
  // new_space's size counts both semi-spaces.
  const limit = 2 * maxSemiSpaceMiB * 1024 * 1024;
  // Unknown at first: beforeLoad() may have stopped growth before this was called.
  let capped: boolean | undefined;
  const check = (): void => {
    const young = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
    if (young === undefined) return;
    const full = young.space_size >= limit;
    if (full === capped) return;
    capped = full;
    v8.setFlagsFromString(`--semi-space-growth-factor=${full ? 1 : 2}`);
  };
  const observer = new PerformanceObserver(check);
  observer.observe({ entryTypes: ['gc'] });
  check();
  return {
    get capped() {
      return capped === true;
    },
    stop() {
      observer.disconnect();
      if (capped) v8.setFlagsFromString('--semi-space-growth-factor=2');
      capped = false;
    },
  };
}

/**
 * Step 4, one full garbage collection, now: after the registry's initial read, whose garbage (about
 * 10 MB for 1,000 services × 10 instances) V8 would otherwise carry into the first minutes of
 * load, for one pause at start-up (returned, in ms).
 *
 * V8 exposes `gc` only with --expose-gc; set at runtime, it takes effect in contexts created after
 * it, hence the one-off context.
 *
 * After a full collection V8 sets the old generation's next limit to its live size times a factor
 * it derives from how fast the program allocates. At start-up the proxy has hardly allocated, so
 * the factor would come out at its maximum (4) and the old generation would fill with promoted
 * garbage to four times the live registry before the next collection: the peak RSS under load.
 * This one collection uses a factor of 1.5; every later one is V8's own again, or step 6's in the
 * proxy, or the operator's, who set --heap-growing-percent.
 */
/** V8's `gc`, once step 4 has exposed it (for step 5). */
let exposedGc: ((options?: object) => void) | undefined;

export function collectGarbageOnce(): number {
  const started = performance.now();
  // An operator's own --heap-growing-percent holds throughout.
  const ownFactor = operatorSetFlag(/^--heap[-_]growing[-_]percent\b/);
  v8.setFlagsFromString('--expose-gc');
  if (!ownFactor) v8.setFlagsFromString('--heap-growing-percent=50');
  exposedGc ??= vm.runInNewContext('gc') as (options?: object) => void;
  exposedGc();
  if (!ownFactor) v8.setFlagsFromString('--heap-growing-percent=0');
  return performance.now() - started;
}

/**
 * Step 5, the proxy only: a young-generation collection (a scavenge) after every
 * `stepBytes` of request and response body the proxy moves. Returns the counter the forwarder
 * calls with each body chunk's length.
 *
 * Each 64 KiB socket read is a buffer outside V8's heap that dies as soon as it has been written
 * on. V8 schedules scavenges by what JavaScript allocates (a few KiB per response), not by those
 * buffers, so between two scavenges a proxy moving large bodies piles up tens of MiB of dead
 * buffers. That memory counts against the old generation's limit, and V8 answers it with full
 * mark-compacts, several per second, which cost more and free it later. A scavenge frees the dead
 * young buffers at a cost that grows with what is still alive (the bodies in flight), not with the
 * garbage.
 *
 * The step trades CPU for memory: a smaller one scavenges more often and holds fewer dead buffers
 * (docs/perf-log.md has the measurements behind 8 MiB). Small bodies rarely reach a step.
 * Needs `gc`, which step 4 exposes: until step 4 has run, the counter only counts.
 */
export const BODY_BYTES_PER_SCAVENGE = 8 * 1024 * 1024;

/**
 * Step 6, the proxy only: room in the old generation, measured in bytes, for the body buffers.
 *
 * V8 starts a mark-compact once the old generation's objects, plus the external memory allocated
 * since the last mark-compact, reach a limit it sets after each one: the live size times a
 * growing factor, or at least 8 MB above it. The proxy's live heap is small (about 10 MB with one
 * service) and steady, but under large bodies hundreds of MiB of socket reads pass through it a
 * second. The buffers that wait on a slow socket through two scavenges move to the old generation
 * and, once dead, count against that 8 MB until a mark-compact frees them: with 256 KiB responses
 * at 50 connections that was about ten mark-compacts a second, and a sixth of the CPU.
 *
 * After each mark-compact this sets --heap-growing-percent (V8 reads it when it sets the next
 * limit) so that the next limit is the live size plus `headroomBytes`: room in bytes, as the
 * buffers come, instead of a factor of a heap that does not hold them. A large heap (a large
 * registry) gets a smaller percentage, so its limit, and the garbage it may hold, grows by the
 * same bytes, not by V8's factor of up to 4. The headroom is paid in peak memory, about byte for
 * byte. Since the upstream read buffers are reused (forward/read-buffers.ts) far fewer dead
 * buffers need the room, and 6 MiB moves as many requests as 10 did with a lower peak
 * (docs/perf-log.md has the measurements behind the default). Waits, as step 5 does, until step
 * 4 has run; an operator's own --heap-growing-percent holds instead.
 */
export const OLD_GENERATION_HEADROOM_BYTES = 6 * 1024 * 1024;

/** The percentage that puts the next limit `headroomBytes` above a live old generation of `liveBytes`. */
export function headroomPercent(liveBytes: number, headroomBytes: number): number {
  // 1 %, not 0: 0 hands the factor back to V8. 400 %: a nearly empty heap does not get a silly factor.
  return Math.min(400, Math.max(1, Math.round((100 * headroomBytes) / Math.max(liveBytes, 1))));
}

/** A `gc` performance entry's kind (major, minor, …); Node's types do not declare its `detail`. */
function gcKind(entry: object): number | undefined {
  return (entry as { detail?: { kind?: number } }).detail?.kind;
}

/** The old generation's live bytes: every space but the young generation's. */
function oldGenerationBytes(): number {
  let bytes = 0;
  for (const space of v8.getHeapSpaceStatistics()) {
    if (space.space_name !== 'new_space' && space.space_name !== 'new_large_object_space') bytes += space.space_used_size;
  }
  return bytes;
}

export interface OldGenerationHeadroom {
  /** The percentage set after the last mark-compact (undefined before the first one after step 4). */
  readonly percent: number | undefined;
  stop(): void;
}

export function holdOldGenerationHeadroom(
  headroomBytes = OLD_GENERATION_HEADROOM_BYTES,
  options: { execArgv?: readonly string[]; nodeOptions?: string } = {},
): OldGenerationHeadroom | undefined {
  if (operatorSetFlag(/^--heap[-_]growing[-_]percent\b/, options.execArgv, options.nodeOptions)) return undefined;
  let percent: number | undefined;
  const observer = new PerformanceObserver((list) => {
    // Step 4's own collection is the first one that counts.
    if (exposedGc === undefined) return;
    if (!list.getEntries().some((e) => gcKind(e) === constants.NODE_PERFORMANCE_GC_MAJOR)) return;
    // Set each time, not only on a change: step 4 sets the flag too.
    percent = headroomPercent(oldGenerationBytes(), headroomBytes);
    v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
  });
  observer.observe({ entryTypes: ['gc'] });
  return {
    get percent() {
      return percent;
    },
    stop() {
      observer.disconnect();
      if (percent !== undefined) v8.setFlagsFromString('--heap-growing-percent=0');
      percent = undefined;
    },
  };
}

export function paceYoungCollections(stepBytes = BODY_BYTES_PER_SCAVENGE): (bytes: number) => void {
  const minor = { type: 'minor' };
  let moved = 0;
  return (bytes: number): void => {
    moved += bytes;
    if (moved < stepBytes) return;
    moved = 0;
    exposedGc?.(minor);
  };
}
