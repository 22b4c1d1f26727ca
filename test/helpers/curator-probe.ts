/**
 * Apache Curator's own x-discovery library in a JVM, driven line by line (test/fixtures/curator/
 * CuratorProbe.java, compiled here with javac against Debian's jars in /usr/share/java): what the
 * Java ServiceDiscovery reads from, and writes to, a base path. One JVM serves a whole test file.
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const SOURCE = fileURLToPath(new URL('../../../test/fixtures/curator/CuratorProbe.java', import.meta.url));
/** libcurator-discovery-java and what it needs at run time (Debian's unversioned jar names). */
const JARS = [
  'curator-x-discovery',
  'curator-framework',
  'curator-client',
  'zookeeper',
  'zookeeper-jute',
  'guava',
  'jackson-core',
  'jackson-databind',
  'jackson-annotations',
  'slf4j-api',
  'slf4j-nop',
].map((name) => `/usr/share/java/${name}.jar`);

export interface CuratorProbe {
  /** Sends one command, resolves with its JSON answer (rejects on {"error"} or after timeoutMs). */
  send(command: string, timeoutMs?: number): Promise<Record<string, any>>;
  stop(): Promise<void>;
}

export async function startCuratorProbe(connectString: string, basePath: string): Promise<CuratorProbe> {
  const missing = JARS.filter((jar) => !fs.existsSync(jar));
  if (missing.length > 0) throw new Error(`Curator's jars are missing (apt-get install libcurator-discovery-java): ${missing.join(', ')}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'puttu-curator-probe-'));
  const classpath = [...JARS, dir].join(':');
  await promisify(execFile)('javac', ['-d', dir, '-cp', classpath, SOURCE], { timeout: 60_000 });
  const child: ChildProcessWithoutNullStreams = spawn('java', [
    '-Xshare:auto',
    '-XX:TieredStopAtLevel=1',
    '-cp',
    classpath,
    'CuratorProbe',
    connectString,
    basePath,
  ]);
  // A test process that ends without stop() must not leave the JVM behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4_000);
  });
  const waiting: Array<(line: string) => void> = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  createInterface({ input: child.stdout }).on('line', (line) => waiting.shift()?.(line));
  const next = (timeoutMs: number) =>
    new Promise<Record<string, any>>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`the Curator probe did not answer within ${timeoutMs} ms; stderr: ${stderr}`)),
        timeoutMs,
      );
      waiting.push((line) => {
        clearTimeout(timer);
        const answer = JSON.parse(line) as Record<string, any>;
        if (answer.error) reject(new Error(`Curator: ${answer.error}`));
        else resolve(answer);
      });
    });
  try {
    await next(30_000); // {"ready":true}: connected, discovery started
  } catch (error) {
    child.kill();
    throw error;
  }
  // One command at a time: answers come back in order.
  let chain: Promise<unknown> = Promise.resolve();
  return {
    send(command, timeoutMs = 15_000) {
      const run = chain.then(() => {
        const answer = next(timeoutMs);
        child.stdin.write(`${command}\n`);
        return answer;
      });
      chain = run.catch(() => undefined);
      return run;
    },
    async stop() {
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
      process.off('exit', killOnExit);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
