/**
 * V8 flags the `puttu` command sets before anything else is loaded. bin/puttu.js imports this
 * module before it imports main.js. (main.ts imports it too, for `node dist/proxy/main.js`; but an
 * ES module graph is read and compiled before any of it runs, so from there the flags come after
 * the loading.)
 */
import v8 from 'node:v8';

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
