/**
 * A retry budget (as in Finagle and Linkerd): retries may add at most `ratio` extra load over the
 * requests seen in the last `windowMs`, plus a floor of `minPerSecond`, so a failing upstream set
 * cannot turn retries into a storm. Time is injected.
 */
import type { Clock } from '../clock.js';

export interface RetryBudgetOptions {
  /** Extra attempts allowed per request, on average (0.2 = 20 %). */
  ratio: number;
  /** Retries always allowed per second, however few requests. */
  minPerSecond: number;
  windowMs?: number;
}

export class RetryBudget {
  readonly #clock: Clock;
  readonly #ratio: number;
  readonly #minPerSecond: number;
  readonly #windowMs: number;
  // Two half-window buckets: counts in the current and the previous half window.
  #bucketStart = 0;
  #requests = [0, 0];
  #retries = [0, 0];

  constructor(options: RetryBudgetOptions, clock: Clock) {
    this.#ratio = options.ratio;
    this.#minPerSecond = options.minPerSecond;
    this.#windowMs = options.windowMs ?? 10_000;
    this.#clock = clock;
    this.#bucketStart = clock.monotonic();
  }

  /** Counts a request (first attempts only). */
  request(): void {
    this.#roll();
    this.#requests[1]!++;
  }

  /** Takes one retry from the budget; false when it is spent. */
  tryRetry(): boolean {
    this.#roll();
    const requests = this.#requests[0]! + this.#requests[1]!;
    const retries = this.#retries[0]! + this.#retries[1]!;
    const allowance = requests * this.#ratio + (this.#minPerSecond * this.#windowMs) / 1000;
    if (retries + 1 > allowance) return false;
    this.#retries[1]!++;
    return true;
  }

  #roll(): void {
    const half = this.#windowMs / 2;
    const now = this.#clock.monotonic();
    const elapsed = now - this.#bucketStart;
    if (elapsed < half) return;
    if (elapsed >= 2 * half) {
      this.#requests = [0, 0];
      this.#retries = [0, 0];
    } else {
      this.#requests = [this.#requests[1]!, 0];
      this.#retries = [this.#retries[1]!, 0];
    }
    this.#bucketStart = now - (elapsed % half);
  }
}
