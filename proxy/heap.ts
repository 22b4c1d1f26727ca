/**
 * A cap on V8's young generation, set from inside the process.
 *
 * Under load V8 grows each semi-space of the young generation up to 16 MiB (Node 20's default),
 * about 32 MiB of resident memory for objects that live one request. Measured with the benchmark
 * (`node test/bench/ab.mjs`, 50 connections): capped at 8 MiB the proxy keeps its req/s
 * (1.01× of uncapped) at 95 MB peak RSS instead of 110; at 2-4 MiB it loses 2-3 %, at 1 MiB 12 %.
 *
 * `--max-semi-space-size` is read once, when the heap is created, so `v8.setFlagsFromString`
 * cannot lower it later, and a `bin` that re-executes node with the flag would double the processes.
 * `--semi-space-growth-factor`, though, is read each time the young generation grows: after every
 * garbage collection this looks at the young generation's size and sets the factor to 1 (no more
 * growth) once it reached the cap, back to 2 (V8's default) below it. The observer runs between
 * event-loop turns, so a single turn that allocates several young generations' worth could still
 * grow it one step past the cap. An operator who sets `--max-semi-space-size` (NODE_OPTIONS or
 * the command line) keeps their own choice.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';
import { operatorSetFlag } from './node-flags.js';

export const DEFAULT_MAX_SEMI_SPACE_MIB = 8;

export interface YoungGenerationCap {
  /** Whether growth is stopped now (the young generation reached the cap). */
  readonly capped: boolean;
  stop(): void;
}

/** V8's own growth (for commands other than the proxy, after startup-flags.ts held it). */
export function restoreYoungGenerationGrowth(): void {
  v8.setFlagsFromString('--semi-space-growth-factor=2');
}

export function capYoungGeneration(maxSemiSpaceMiB = DEFAULT_MAX_SEMI_SPACE_MIB, options: { execArgv?: readonly string[]; nodeOptions?: string } = {}): YoungGenerationCap | undefined {
  if (operatorSetFlag(/^--max[-_]semi[-_]space[-_]size\b/, options.execArgv, options.nodeOptions)) {
    restoreYoungGenerationGrowth();
    return undefined;
  }
  // new_space's size counts both semi-spaces.
  const limit = 2 * maxSemiSpaceMiB * 1024 * 1024;
  // Unknown at first: startup-flags.ts may have stopped growth before this was called.
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
 * One full garbage collection, now. For after the registry's initial read: reading a tree of
 * 1,000 services × 10 instances leaves about 10 MB of garbage in the old generation, which V8 would
 * otherwise carry into the first minutes of load, for one pause at startup (returned, in ms).
 *
 * V8 exposes `gc` only with --expose-gc; set at runtime, it takes effect in contexts created after
 * it, hence the one-off context.
 *
 * After a full collection V8 sets the old generation's next limit to its live size times a factor
 * it derives from how fast the program allocates. At startup the proxy has hardly allocated, so the
 * factor came out at its maximum (4): with the 1,000-service tree (15 MB live) the old generation
 * then filled with promoted garbage up to 60 MB before the next collection, a peak of 135 MiB RSS
 * 35 s into the load. This one collection uses a factor of 1.5; every later one is V8's own again
 * (or the operator's, who set --heap-growing-percent).
 * Measured with `SCALE_REPEATS=9 node test/bench/scale.mjs`: peak RSS under load 99-107 MiB.
 */
export function collectGarbageOnce(): number {
  const started = performance.now();
  // An operator's own --heap-growing-percent holds throughout.
  const ownFactor = operatorSetFlag(/^--heap[-_]growing[-_]percent\b/);
  v8.setFlagsFromString('--expose-gc');
  if (!ownFactor) v8.setFlagsFromString('--heap-growing-percent=50');
  (vm.runInNewContext('gc') as () => void)();
  if (!ownFactor) v8.setFlagsFromString('--heap-growing-percent=0');
  return performance.now() - started;
}
