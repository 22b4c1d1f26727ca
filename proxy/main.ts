/**
 * The `puttu` command line. `puttu proxy [flags]` runs the proxy; `puttu --help` lists commands.
 * Exit codes: 0 ok (also after SIGTERM/SIGINT), 1 runtime failure, 2 bad usage or configuration,
 * 3 nothing found (ls, get); `register` with a command passes that command's code on.
 */
import fs from 'node:fs';
import { createApp } from './app.js';
import { helpText, loadConfig } from './config/load.js';
import { ConfigError } from './config/schema.js';
import { createLogger, LOG_LEVELS, type Logger, type LogLevel } from './logger.js';
import { UsageError } from './cli/args.js';
import {
  beforeLoad,
  capYoungGeneration,
  collectGarbageOnce,
  holdOldGenerationHeadroom,
  paceYoungCollections,
  restoreYoungGenerationGrowth,
  startupOver,
  tuningChoice,
} from './runtime-tuning.js';

const VERSION = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version as string;

const USAGE = `Usage: puttu <command> [flags]

Commands:
  proxy      run the routing proxy
  register   register an instance (of any program) while a command runs
  echo       a demo backend that registers itself
  ls         list services and instances
  get        print one random live endpoint URL of a service
  policy     get, set or validate a service's traffic policy in ZooKeeper

Each command has --help.
puttu --version prints the version. Exit codes: 0 ok, 1 failure, 2 bad usage or configuration.

Runtime tuning: puttu sets a few V8 flags in its own process for memory and start-up, and
paces garbage collection by the body bytes it moves (see docs/ARCHITECTURE.md);
--tune-runtime off (or PUTTU_TUNE_RUNTIME=off) leaves node's defaults.`;

/** The runtime tuning this process applies: the functions, or nothing with --tune-runtime off. */
interface Tuning {
  startupOver(): void;
  /** The proxy is started: its young generation may grow, up to the cap. */
  proxyStarted(): void;
  otherCommand(): void;
  /** For the proxy's app: what to run after the registry's initial read, if anything. */
  afterInitialRead(logger: Logger): (() => void) | undefined;
  /**
   * For the proxy's app, in each process that moves bodies: the counter of body bytes it moves
   * (live once afterInitialRead ran), and the old generation's headroom for them.
   */
  bodyBytes(): ((bytes: number) => void) | undefined;
}

function runtimeTuning(tune: boolean): Tuning {
  if (!tune)
    return { startupOver() {}, proxyStarted() {}, otherCommand() {}, afterInitialRead: () => undefined, bodyBytes: () => undefined };
  // bin/puttu.js applied it before loading this module; `node dist/proxy/main.js` gets it now.
  beforeLoad();
  return {
    startupOver,
    proxyStarted: () => capYoungGeneration(),
    otherCommand: restoreYoungGenerationGrowth,
    afterInitialRead: (logger) => () => {
      const ms = collectGarbageOnce();
      logger.debug('collected the garbage of the initial registry read', { pauseMs: Math.round(ms) });
    },
    bodyBytes: () => {
      holdOldGenerationHeadroom();
      return paceYoungCollections();
    },
  };
}

async function main(args: string[]): Promise<number> {
  let choice: ReturnType<typeof tuningChoice>;
  try {
    choice = tuningChoice(args, process.env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`puttu: ${error.message}\n`);
    return 2;
  }
  const tuning = runtimeTuning(choice.tune);
  const [command, ...rest] = choice.argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(USAGE + '\n');
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === '-v') {
    process.stdout.write(VERSION + '\n');
    return 0;
  }
  if (command === 'proxy') return runProxy(rest, tuning);
  tuning.otherCommand();
  tuning.startupOver();
  const run = COMMANDS[command];
  if (!run) {
    process.stderr.write(`puttu: unknown command "${command}"\n\n${USAGE}\n`);
    return 2;
  }
  const level = process.env.PUTTU_LOG_LEVEL;
  const logger = createLogger({
    level: level && (LOG_LEVELS as string[]).includes(level) ? (level as LogLevel) : 'info',
    bindings: { app: 'puttu', command },
  });
  try {
    return await run(rest, process.env, logger);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`puttu ${command}: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}

type Command = (argv: string[], env: NodeJS.ProcessEnv, logger: Logger) => Promise<number>;
// Loaded on use: the proxy's process never holds the other commands' code (nor node:child_process).
const COMMANDS: Record<string, Command> = {
  register: async (...args) => (await import('./cli/register.js')).registerCommand(...args),
  echo: async (...args) => (await import('./cli/echo.js')).echoCommand(...args),
  ls: async (...args) => (await import('./cli/ls.js')).lsCommand(...args),
  get: async (...args) => (await import('./cli/ls.js')).getCommand(...args),
  policy: async (...args) => (await import('./cli/policy.js')).policyCommand(...args),
};

async function runProxy(argv: string[], tuning: Tuning): Promise<number> {
  let loaded: ReturnType<typeof loadConfig>;
  try {
    loaded = loadConfig(argv, process.env, (p) => fs.readFileSync(p, 'utf8'));
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`puttu proxy: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  if (loaded.help) {
    process.stdout.write(helpText() + '\n');
    return 0;
  }
  const { config } = loaded;
  const logger = createLogger({ level: config.logLevel, bindings: { app: 'puttu' } });
  const afterInitialRead = tuning.afterInitialRead(logger);
  const role = process.env.PUTTU_CLUSTER_ROLE === 'worker' ? 'worker' : config.workers > 1 ? 'primary' : 'single';
  // One interface for the three shapes: start, then close on a signal.
  let running: { close(): Promise<void> } | undefined;
  const start = async (): Promise<{ close(): Promise<void> }> => {
    // node:cluster only when it is used.
    if (role === 'primary') return (await import('./cluster/primary.js')).startPrimary(config, logger, afterInitialRead, onFatal);
    const onBodyBytes = tuning.bodyBytes();
    const tuned = { ...(afterInitialRead && { afterInitialRead }), ...(onBodyBytes && { onBodyBytes }) };
    if (role === 'worker') return (await import('./cluster/worker.js')).startWorker(config, logger, tuned);
    const app = createApp({ config, logger, onFatal, ...tuned });
    running = app;
    await app.start();
    return app;
  };

  let stopping = false;
  // What the app cannot recover from (ZooKeeper's certificate failing verification): say why, stop, exit 1.
  let onFatal: (error: Error) => void = () => {};
  let started: Promise<unknown> = Promise.resolve();
  const stopped = new Promise<number>((resolve) => {
    onFatal = (error) => {
      if (stopping) return;
      stopping = true;
      logger.error('puttu proxy cannot continue: stopping', { error });
      process.stderr.write(`puttu proxy: ${error.message}\n`);
      // It may come while a cluster primary is still starting: close what start() returns.
      started
        .then(() => running?.close())
        .then(
          () => resolve(1),
          () => resolve(1),
        );
    };
    const onSignal = (signal: NodeJS.Signals) => {
      // A worker stops when its primary tells it (SIGTERM); the terminal's SIGINT reaches the
      // whole process group, and the primary handles it for everyone.
      if (role === 'worker' && signal === 'SIGINT') return;
      if (stopping) {
        logger.warn('second signal: exiting now', { signal });
        process.exit(1);
      }
      stopping = true;
      logger.info('shutting down: no new connections; waiting for in-flight requests', { signal, graceMs: config.shutdownGraceMs });
      (running?.close() ?? Promise.resolve()).then(
        () => resolve(0),
        (error) => {
          logger.error('shutdown failed', { error });
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });

  try {
    const starting = start();
    started = starting.catch(() => undefined);
    running = await starting;
    // Listening: from here the young generation may grow, up to the cap, and what runs is worth
    // optimizing.
    tuning.proxyStarted();
    tuning.startupOver();
  } catch (error) {
    logger.error('puttu proxy failed to start', { error });
    process.stderr.write(`puttu proxy: ${(error as Error).message}\n`);
    await running?.close();
    // A configuration file that cannot be used (a PEM file, say) is bad configuration too.
    return error instanceof ConfigError ? 2 : 1;
  }
  const code = await stopped;
  // A worker's IPC channel would keep it alive after everything else closed.
  if (role === 'worker') process.disconnect?.();
  logger.info('stopped', { code });
  return code;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.stderr.write(`puttu: ${(error as Error)?.stack ?? error}\n`);
    process.exitCode = 1;
  },
);
