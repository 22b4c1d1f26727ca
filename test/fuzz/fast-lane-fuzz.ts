/**
 * Differential fuzzer of the fast lane (proxy/http/fast-lane.ts) against Node's own HTTP parser,
 * through two real proxies (lane on, lane off) on one real ZooKeeper and one real upstream; all
 * traffic on loopback. See harness.ts for what is compared and generator.ts for what is sent.
 *
 *   npm run fuzz                                  # 20,000 requests, a random seed (printed)
 *   npm run fuzz -- --seed 12345 --requests 5000  # a given seed, another size
 *   npm run fuzz -- --seed 12345 --case 17        # replay one case of that seed
 *
 * Other flags: --concurrency N (cases in flight, default 12), --max-mismatches N (stop early,
 * default 50), --quiet (no progress lines). Exits 1 on any mismatch, 2 on a usage or setup error.
 */
import { describeMismatch, type FuzzEnv, fuzz, type Summary, startFuzzEnv } from './harness.js';

interface Args {
  seed: number;
  requests: number;
  concurrency: number;
  only: number | undefined;
  maxMismatches: number;
  quiet: boolean;
}

function usage(message: string): never {
  process.stderr.write(
    `${message}\nusage: fast-lane-fuzz [--seed N] [--requests N] [--case N] [--concurrency N] [--max-mismatches N] [--quiet]\n`,
  );
  process.exit(2);
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    seed: Math.floor(Math.random() * 2 ** 32) >>> 0,
    requests: 20_000,
    concurrency: 12,
    only: undefined,
    maxMismatches: 50,
    quiet: false,
  };
  const int = (name: string, value: string | undefined, min: number, max: number): number => {
    if (value === undefined || !/^\d+$/.test(value)) usage(`${name} needs a whole number`);
    const n = Number(value);
    if (n < min || n > max) usage(`${name} must be between ${min} and ${max}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.includes('=') ? (argv[i]!.split(/=(.*)/s, 2) as [string, string]) : [argv[i]!, undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--seed':
        args.seed = int(flag, value(), 0, 2 ** 32 - 1);
        break;
      case '--requests':
        args.requests = int(flag, value(), 1, 10_000_000);
        break;
      case '--case':
        args.only = int(flag, value(), 0, Number.MAX_SAFE_INTEGER);
        break;
      case '--concurrency':
        args.concurrency = int(flag, value(), 1, 64);
        break;
      case '--max-mismatches':
        args.maxMismatches = int(flag, value(), 0, 1_000_000);
        break;
      case '--quiet':
        args.quiet = true;
        break;
      case '--help':
      case '-h':
        usage("differential fuzzer of the fast lane against Node's parser");
        break;
      default:
        usage(`unknown argument ${argv[i]}`);
    }
  }
  return args;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const what = args.only !== undefined ? `case ${args.only}` : `${args.requests} requests, ${args.concurrency} cases at a time`;
  console.log(`fast-lane fuzz: seed ${args.seed}, ${what} (replay: --seed ${args.seed})`);
  const setupStarted = Date.now();
  let env: FuzzEnv;
  try {
    env = await startFuzzEnv();
  } catch (error) {
    console.error(`could not start ZooKeeper, the upstream and the proxies: ${(error as Error).stack ?? error}`);
    return 2;
  }
  console.log(`ZooKeeper, upstream and both proxies up in ${((Date.now() - setupStarted) / 1000).toFixed(1)} s`);
  // Bounded: whatever happens, the process ends (generously past what a run of this size takes).
  const budgetMs = 120_000 + args.requests * 40;
  const watchdog = setTimeout(() => {
    console.error(`fast-lane fuzz: still running after ${budgetMs / 1000} s; giving up`);
    process.exit(3);
  }, budgetMs).unref();
  let summary: Summary;
  try {
    summary = await fuzz(env, {
      seed: args.seed,
      requests: args.requests,
      concurrency: args.concurrency,
      only: args.only,
      maxMismatches: args.maxMismatches,
      onProgress: args.quiet
        ? undefined
        : (p) =>
            console.log(`  ${p.cases} cases, ${p.requests} requests, ${p.mismatches} mismatches, ${(p.elapsedMs / 1000).toFixed(1)} s`),
    });
  } finally {
    clearTimeout(watchdog);
  }
  for (const m of summary.mismatches) console.log(`\n${describeMismatch(m, summary.seed)}`);
  const tags = [...summary.tags.entries()].sort((a, b) => b[1] - a[1]);
  console.log(`\ncoverage (cases per tag): ${tags.map(([t, n]) => `${t} ${n}`).join(', ')}`);
  console.log(
    [
      '',
      `seed        ${summary.seed}`,
      `cases       ${summary.cases}`,
      `requests    ${summary.requests}`,
      `lane        took ${summary.laneServed} requests itself, handed ${summary.laneHandedOff} connections to Node's parser`,
      `by design   ${summary.matchedOtherwise} cases matched only as the lane's design allows: ${summary.slow} lane runs repeated to wait out a body; ${summary.paced} compared with Node's path in the lane's order of work; ${[...summary.readAhead.values()].reduce((a, b) => a + b, 0)} as Node's reading ahead allows (${[...summary.readAhead].map(([k, n]) => `${k} ${n}`).join(', ') || 'none'})`,
      `waits       ${summary.silent} cases with no final response on either proxy; ${summary.timedOut} observations cut at their time limit; ${summary.late} late upstream requests; ${summary.resetRetries} mismatching runs repeated after a connection reset`,
      `mismatches  ${summary.mismatches.length}${summary.mismatches.length > 0 ? ` (cases ${summary.mismatches.map((m) => m.case.index).join(', ')})` : ''}`,
      `elapsed     ${(summary.elapsedMs / 1000).toFixed(1)} s`,
    ].join('\n'),
  );
  // Stopping ZooKeeper and the proxies is bounded too.
  await Promise.race([env.close(), new Promise((r) => setTimeout(r, 15_000).unref())]);
  return summary.mismatches.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(2);
  },
);
