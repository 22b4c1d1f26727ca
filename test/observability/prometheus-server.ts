/**
 * Debian's real Prometheus and promtool for the observability checks and the dashboard renderer:
 * a server on a free loopback port, in a temporary folder, scraping a proxy under test with the
 * repo's own config/prometheus.yml and config/alerts.yml. Nothing here is mocked.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../proxy/dev/local-zookeeper.js';
import { eventually } from '../helpers/eventually.js';

/** The repository root (this file runs from dist/test/observability/). */
export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const PROMETHEUS_BIN = '/usr/bin/prometheus';
export const PROMTOOL_BIN = '/usr/bin/promtool';
export const INSTALL_HINT = 'apt-get update && apt-get install -y prometheus';

export interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs promtool with `args` (cwd: the repo), feeding `input` on stdin when given. */
export function promtool(args: string[], input?: string | Buffer): Promise<ToolResult> {
  requireBinary(PROMTOOL_BIN);
  return new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL_BIN, args, { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

function requireBinary(bin: string): void {
  if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: install Debian's prometheus package (${INSTALL_HINT})`);
}

/**
 * config/prometheus.yml with its scrape target pointed at `adminUrl` and the intervals shortened,
 * so a test sees data within seconds. Fails loudly if the file no longer has the shape rewritten
 * here, rather than silently scraping nothing.
 */
export function prometheusConfigFor(adminUrl: string, interval = '1s'): string {
  const original = fs.readFileSync(path.join(REPO, 'config/prometheus.yml'), 'utf8');
  const target = new URL(adminUrl).host;
  const rewritten = original
    .replace(/(['"])puttu:9090\1/g, `'${target}'`)
    .replace(/^(\s*scrape_interval:\s*)\S+/m, `$1${interval}`)
    .replace(/^(\s*evaluation_interval:\s*)\S+/m, `$1${interval}`);
  for (const [what, needle] of [
    ['scrape target', `'${target}'`],
    ['scrape_interval', `scrape_interval: ${interval}`],
    ['evaluation_interval', `evaluation_interval: ${interval}`],
  ] as const) {
    if (!rewritten.includes(needle))
      throw new Error(`config/prometheus.yml: could not rewrite its ${what} for the test (expected 'puttu:9090' and global intervals)`);
  }
  return rewritten;
}

export interface QueryResult {
  resultType: string;
  result: Array<{ metric: Record<string, string>; value?: [number, string]; values?: Array<[number, string]> }>;
}

export interface PrometheusServer {
  readonly url: string;
  readonly pid: number;
  /** Prometheus's own log so far (for failure messages). */
  output(): string;
  /** GET /api/v1/<path> and return `data`; throws with Prometheus's error text on failure. */
  api<T = unknown>(apiPath: string, params?: Record<string, string | number>): Promise<T>;
  query(expr: string, time?: number): Promise<QueryResult>;
  queryRange(expr: string, start: number, end: number, stepSeconds: number): Promise<QueryResult>;
  /** Stops this server (SIGTERM, then SIGKILL after a deadline) and removes its folder. Idempotent. */
  stop(): Promise<void>;
}

const started = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of started) child.kill('SIGKILL');
});

/**
 * Starts `prometheus` with `config` written to a temporary folder next to copies of `ruleFiles`
 * (config/alerts.yml by default, so rule_files resolves as in docker-compose). Resolves once
 * /-/ready answers 200.
 */
export async function startPrometheus(options: {
  config: string;
  ruleFiles?: string[];
  readyTimeoutMs?: number;
}): Promise<PrometheusServer> {
  requireBinary(PROMETHEUS_BIN);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'puttu-prometheus-'));
  for (const file of options.ruleFiles ?? [path.join(REPO, 'config/alerts.yml')])
    fs.copyFileSync(file, path.join(dir, path.basename(file)));
  const configFile = path.join(dir, 'prometheus.yml');
  fs.writeFileSync(configFile, options.config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    PROMETHEUS_BIN,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  started.add(child);
  let out = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (out += c));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => started.delete(child));

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    })());

  const api = async <T>(apiPath: string, params: Record<string, string | number> = {}): Promise<T> => {
    const query = new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)]));
    const response = await fetch(`${url}/api/v1/${apiPath}?${query}`);
    const body = (await response.json()) as { status: string; data: T; error?: string; errorType?: string };
    if (body.status !== 'success') throw new Error(`Prometheus ${apiPath} ${JSON.stringify(params)}: ${body.errorType}: ${body.error}`);
    return body.data;
  };

  try {
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${out}`);
        return (await fetch(`${url}/-/ready`)).status === 200;
      },
      { timeoutMs: options.readyTimeoutMs ?? 30_000, intervalMs: 100, message: 'prometheus ready' },
    );
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}\n${out}`);
  }

  return {
    url,
    pid: child.pid!,
    output: () => out,
    api,
    query: (expr, time) => api<QueryResult>('query', { query: expr, ...(time !== undefined && { time }) }),
    queryRange: (expr, start, end, step) => api<QueryResult>('query_range', { query: expr, start, end, step }),
    stop,
  };
}
