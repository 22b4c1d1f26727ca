/**
 * A short run of the fast-lane differential fuzzer (fast-lane-fuzz.ts, `npm run fuzz` for the
 * long one) inside `npm test`: a fixed seed, about 1,500 requests, against a real ZooKeeper, a
 * real upstream and two real proxies (lane on, lane off). Every case must give the same outcome
 * with and without the lane (harness.ts says what that means).
 */
import test from 'ava';
import { describeMismatch, fuzz, startFuzzEnv, TIMING, type FuzzEnv } from './harness.js';

const SEED = Number(process.env.PUTTU_FUZZ_SEED ?? 20261206);
const REQUESTS = Number(process.env.PUTTU_FUZZ_REQUESTS ?? 1_500);

let env: FuzzEnv | undefined;

test.before(async () => {
  env = await startFuzzEnv();
});

test.after.always(async () => {
  await env?.close();
});

test(`fuzzed requests (seed ${SEED}): the same outcomes with and without the fast lane`, async (t) => {
  t.timeout(60_000);
  const summary = await fuzz(env!, {
    seed: SEED,
    requests: REQUESTS,
    concurrency: 8,
    // Other test files run beside this one: a little more time before a connection is judged quiet.
    timing: { ...TIMING, settle: 120 },
  });
  const tags = [...summary.tags.entries()].sort((a, b) => b[1] - a[1]);
  t.log(
    `seed ${summary.seed}: ${summary.cases} cases, ${summary.requests} requests in ${(summary.elapsedMs / 1000).toFixed(1)} s; ` +
      `the lane took ${summary.laneServed} itself and handed ${summary.laneHandedOff} connections to Node's parser; ` +
      `${summary.matchedOtherwise} matched as the lane's design allows (${summary.paced} in its order of work, ${summary.slow} waited out)`,
  );
  for (const m of summary.mismatches) t.log(describeMismatch(m, summary.seed));
  t.is(
    summary.mismatches.length,
    0,
    `mismatching cases (replay: npm run fuzz -- --seed ${summary.seed} --case N): ${summary.mismatches.map((m) => m.case.index).join(', ')}`,
  );
  t.true(summary.requests >= REQUESTS);
  // The mix reached both paths, and the shapes that matter (the tags are the generator's: fixed by the seed).
  t.true(summary.laneServed >= REQUESTS / 5, `the lane took ${summary.laneServed}`);
  t.true(summary.laneHandedOff >= REQUESTS / 10, `the lane handed on ${summary.laneHandedOff}`);
  const seen = new Set(tags.map(([tag]) => tag));
  for (const tag of [
    'plain',
    'pipelined',
    'split-many',
    'split-head-edge',
    'chunked',
    'chunked-odd',
    'cl-and-te',
    'cl-duplicate',
    'cl-conflict',
    'obs-fold',
    'host-duplicate',
    'host-none',
    'head-at-limit',
    'head-over-limit',
    'method-odd',
    'target-overlong',
    'body-long',
    'name-bad',
    'value-bad',
    'upstream-special',
  ]) {
    t.true(seen.has(tag), `the run has a case tagged ${tag}`);
  }
});
