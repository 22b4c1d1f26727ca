/**
 * The readiness gate of `puttu register --health-path`: an HTTP probe of the instance's own
 * readiness endpoint, a wait for its first 2xx (registration happens only after it), and a watch
 * that marks the registration DRAINING once the endpoint has not answered 2xx for a grace period,
 * and UP again on its next 2xx.
 *
 * Probes go to a loopback address, never through the network: the gate runs beside the program it
 * registers, and what it asks is whether that program is ready, not whether a route to it works
 * (readers that cannot reach the registered address see that themselves).
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Logger } from '../logger.js';
import type { RegistrationStatus } from '../registry/instance.js';
import type { Registration } from '../registry/registrar.js';

export interface ProbeTarget {
  protocol: 'http' | 'https';
  host: string;
  port: number;
  /** Absolute path (and query) on the instance, e.g. '/ready'. */
  path: string;
  timeoutMs: number;
}

export type ProbeResult = { ok: true; status: number } | { ok: false; status?: number; error?: string };

/** The address probed: the registered host when it is a loopback one, else 127.0.0.1. */
export function probeHost(registeredHost: string | undefined): string {
  return registeredHost !== undefined && isLoopback(registeredHost) ? unbracket(registeredHost) : '127.0.0.1';
}

export function isLoopback(host: string): boolean {
  const h = unbracket(host).toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h);
  return false;
}

/**
 * One GET on a fresh connection; ok on a 2xx answer within `timeoutMs` (the whole exchange, body
 * included). Over https the certificate is not verified: it names the instance's public name, not
 * the loopback address probed (Kubernetes' HTTPS probes do the same). Never rejects.
 */
export function probe(target: ProbeTarget): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const get = target.protocol === 'https' ? https.get : http.get;
    let settled = false;
    const settle = (result: ProbeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(result);
    };
    const req = get(
      {
        host: target.host,
        port: target.port,
        path: target.path,
        agent: false,
        headers: { 'user-agent': 'puttu-register-health' },
        ...(target.protocol === 'https' && { rejectUnauthorized: false }),
      },
      (res) => {
        const status = res.statusCode ?? 0;
        res.resume();
        res.on('end', () => settle(status >= 200 && status < 300 ? { ok: true, status } : { ok: false, status }));
        res.on('error', (error) => settle({ ok: false, status, error: error.message }));
      },
    );
    req.on('error', (error) => settle({ ok: false, error: error.message }));
    const timer = setTimeout(() => settle({ ok: false, error: `no answer within ${target.timeoutMs} ms` }), target.timeoutMs);
  });
}

export interface HealthGateOptions {
  target: ProbeTarget;
  /** Pause between the end of one probe and the start of the next. */
  intervalMs: number;
  /** How long the endpoint may go without a 2xx before the registration is marked DRAINING. */
  graceMs: number;
  logger: Logger;
}

export class HealthGate {
  readonly #o: HealthGateOptions;
  readonly #url: string;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;
  /** The loop of `watch()`, settled once it has stopped (no probe or status write in flight). */
  #loop: Promise<void> = Promise.resolve();

  constructor(options: HealthGateOptions) {
    this.#o = options;
    const { protocol, host, port, path } = options.target;
    this.#url = `${protocol}://${net.isIPv6(host) ? `[${host}]` : host}:${port}${path}`;
  }

  get url(): string {
    return this.#url;
  }

  /**
   * True at the first 2xx; false when `timeoutMs` passed (or the gate was stopped) first.
   * Probes every `intervalMs` meanwhile; logs the first failure once, not every probe.
   */
  async waitUntilHealthy(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    let logged = false;
    while (!this.#stopped) {
      const result = await probe(this.#o.target);
      if (result.ok) return true;
      if (!logged) {
        logged = true;
        this.#o.logger.info('waiting for the health check to answer 2xx before registering', { url: this.#url, ...detail(result) });
      }
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await this.#pause(Math.min(this.#o.intervalMs, left));
    }
    return false;
  }

  /** Keeps probing; marks `reg` DRAINING after `graceMs` without a 2xx, and UP at the next one. */
  watch(reg: Registration): void {
    this.#loop = this.#run(reg);
  }

  /** Stops probing; settles once no probe or status write is in flight. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#wake?.();
    await this.#loop;
  }

  async #run(reg: Registration): Promise<void> {
    const { logger, graceMs, intervalMs } = this.#o;
    let lastOk = Date.now();
    /** What the gate wants the znode to say; `synced` once it is known to say it. */
    let status: RegistrationStatus = 'UP';
    let synced = true;
    /** The last transition logged (after its write succeeded). */
    let announced: RegistrationStatus = 'UP';
    let failing = false;
    while (!this.#stopped) {
      await this.#pause(intervalMs);
      if (this.#stopped) return;
      const result = await probe(this.#o.target);
      if (this.#stopped) return;
      const now = Date.now();
      if (result.ok) {
        lastOk = now;
        if (failing && status === 'UP') logger.info('health check passing again', { url: this.#url, status: result.status });
        failing = false;
      } else if (!failing) {
        failing = true;
        if (status === 'UP')
          logger.warn(`health check failed; the registration is marked DRAINING if it keeps failing for ${graceMs} ms`, {
            url: this.#url,
            ...detail(result),
          });
      }
      const wanted: RegistrationStatus = result.ok ? 'UP' : now - lastOk >= graceMs ? 'DRAINING' : status;
      if (wanted === status && synced) continue;
      status = wanted;
      synced = false;
      try {
        await reg.setStatus(wanted);
        synced = true;
      } catch (error) {
        // The registration keeps the wanted status (a node re-created after an expiry carries it).
        logger.warn(`marking the registration ${wanted} failed; trying again at the next probe`, { url: this.#url, error });
        continue;
      }
      if (status === announced) continue;
      announced = status;
      if (status === 'DRAINING')
        logger.warn('health check failing: registration marked DRAINING', {
          url: this.#url,
          failingForMs: now - lastOk,
          ...detail(result),
        });
      else logger.info('health check recovered: registration marked UP', { url: this.#url, ...detail(result) });
    }
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#timer = setTimeout(resolve, ms);
    });
  }
}

function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

function detail(result: ProbeResult): { status?: number; error?: string } {
  return { ...(result.status !== undefined && { status: result.status }), ...(!result.ok && result.error && { error: result.error }) };
}
