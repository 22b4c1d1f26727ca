/**
 * V8 flags the `puttu` command sets before anything else is loaded. bin/puttu.js imports this
 * module before it imports main.js. (main.ts imports it too, for `node dist/proxy/main.js`; but an
 * ES module graph is read and compiled before any of it runs, so from there the flags come after
 * the loading.) main.ts calls `startupOver()` once the command has started.
 */
import v8 from 'node:v8';
import { operatorSetFlag } from './node-flags.js';

// V8's allocation-site pretenuring learns from bursts (such as the initial read of a large
// registry) to allocate request-path objects straight into the old generation; each request's
// garbage then fills it and forces frequent mark-compacts. Measured with 1,000 services: 0.75× the
// req/s of a one-service proxy with it, 0.89× without, and +15-20 % for one service as well
// (BENCHMARKS.md, "Scale"). V8 reads the flag at each GC, so setting it here is early enough.
v8.setFlagsFromString('--no-allocation-site-pretenuring');

// Loading modules and reading the registry would otherwise grow the young generation to 4 MiB
// semi-spaces (8 MiB resident) that an idle proxy never needs again; it grows back under load,
// up to the cap heap.ts sets once the proxy is started (or right away for the other commands).
v8.setFlagsFromString('--semi-space-growth-factor=1');

// Loading a hundred modules makes Node's resolver (path.resolve, fileURLToPath, the CommonJS
// resolver) hot enough for TurboFan. Those compiles are of code that runs once: they touch 3 MB of
// the compiler's own code and leave its zone memory in the malloc arenas of V8's worker threads, so
// the idle proxy held 3-4 MB more (BENCHMARKS.md, "Idle memory"). TurboFan is off while the
// command loads and starts, and on again from `startupOver()` once it listens: the request path is
// optimized as it always was. V8 reads the flag each time a function is due for optimization.
// An operator's own choice (`--no-opt`, `--jitless`...) is left alone.
const optimizerChosen = operatorSetFlag(/^--(no[-_]opt|no[-_]turbofan|turbofan|opt|jitless|max[-_]opt)\b/);
if (!optimizerChosen) v8.setFlagsFromString('--no-turbofan');

/** Start-up is over: TurboFan back on (the young generation's growth is heap.ts's business). */
export function startupOver(): void {
  if (!optimizerChosen) v8.setFlagsFromString('--turbofan');
}
