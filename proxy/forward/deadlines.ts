/**
 * Upstream answer deadlines (time to the response head, silence inside the response body) kept
 * by one coarse sweep over the requests in flight, for the requests whose body is not a stream.
 *
 * undici times each request itself, with a new timer object per phase: one when the request goes
 * out, another when the head arrives, a third for the idle socket afterwards: measurable CPU per
 * request, and undici's fast timers stay referenced until its next one-second tick, long enough to
 * be promoted to the old generation. Here a request in
 * flight costs a few field writes (it joins a list); a response chunk, one field write.
 *
 * Requests with a streamed body keep undici's own timers: its head timer also watches the upload,
 * which only undici sees.
 *
 * Precision: the sweep runs every tenth of the shorter limit (between 5 ms and 1 s) against a clock
 * read once per sweep. A deadline never fires early; it fires at most two sweeps late.
 */

/** Not tracked. */
export const UNTRACKED = 0;
/** Waiting for the response head. */
export const HEAD = 1;
/** Receiving the body. */
export const BODY = 2;
/** The client is not reading: undici is paused, the body deadline does not run. */
export const PAUSED = 3;
export type Phase = typeof UNTRACKED | typeof HEAD | typeof BODY | typeof PAUSED;

/** What the sweep reads and calls on a tracked request (the Exchange). */
export interface Timed {
  phase: Phase;
  /** `Deadlines.now` when the current phase started or the body last moved. */
  since: number;
  /** The list of tracked requests runs through them (no Set: see `Deadlines`). */
  prevTimed: Timed | undefined;
  nextTimed: Timed | undefined;
  /** Its own limit on the response head, ms (a service's policy); 0: the shared one. */
  headMs: number;
  /** Its deadline passed (phase Head: no head in time; phase Body: the body stalled). */
  deadlinePassed(phase: typeof HEAD | typeof BODY): void;
}

/**
 * The requests in flight are a list threaded through the requests themselves, not a Set: a Set's
 * table, held by an old object and reallocated as the number in flight rises and falls, keeps the
 * garbage collector busy, which costs far more per request than the Set's own operations.
 */
export class Deadlines {
  /** Monotonic ms, read once per sweep: what `Timed.since` is set from. */
  now = performance.now();
  readonly headMs: number;
  readonly bodyMs: number;
  #first: Timed | undefined;
  #size = 0;
  #sweepMs: number;
  #timer: NodeJS.Timeout;

  constructor(limits: { headMs: number; bodyMs: number }) {
    this.headMs = limits.headMs;
    this.bodyMs = limits.bodyMs;
    this.#sweepMs = Math.min(1_000, Math.max(5, Math.floor(Math.min(limits.headMs, limits.bodyMs) / 10)));
    this.#timer = setInterval(() => this.sweep(performance.now()), this.#sweepMs).unref();
  }

  /**
   * Some requests have a head limit of `ms` (a service's policy): sweep often enough for it, as for
   * the shared limits. Never coarser than before.
   */
  allowFor(ms: number): void {
    const sweepMs = Math.min(this.#sweepMs, Math.max(5, Math.floor(ms / 10)));
    if (sweepMs === this.#sweepMs) return;
    this.#sweepMs = sweepMs;
    clearInterval(this.#timer);
    this.#timer = setInterval(() => this.sweep(performance.now()), sweepMs).unref();
  }

  /** Starts watching `t` for its response head. */
  track(t: Timed): void {
    if (t.phase !== UNTRACKED) this.untrack(t);
    t.phase = HEAD;
    t.since = this.now;
    const first = this.#first;
    t.prevTimed = undefined;
    t.nextTimed = first;
    if (first !== undefined) first.prevTimed = t;
    this.#first = t;
    this.#size++;
  }

  untrack(t: Timed): void {
    if (t.phase === UNTRACKED) return;
    t.phase = UNTRACKED;
    const prev = t.prevTimed;
    const next = t.nextTimed;
    if (prev === undefined) this.#first = next;
    else prev.nextTimed = next;
    if (next !== undefined) next.prevTimed = prev;
    t.prevTimed = undefined;
    t.nextTimed = undefined;
    this.#size--;
  }

  /** The response head arrived: from now on the body deadline. */
  headArrived(t: Timed): void {
    if (t.phase !== HEAD) return;
    t.phase = BODY;
    t.since = this.now;
  }

  /** A body chunk arrived: the body deadline starts over. */
  bodyMoved(t: Timed): void {
    if (t.phase === BODY) t.since = this.now;
  }

  /** The client stopped reading (undici is paused): no deadline until `resumed`. */
  paused(t: Timed): void {
    if (t.phase === BODY) t.phase = PAUSED;
  }

  resumed(t: Timed): void {
    if (t.phase !== PAUSED) return;
    t.phase = BODY;
    t.since = this.now;
  }

  get size(): number {
    return this.#size;
  }

  /** One pass: every request past its limit (by more than a sweep, so never early) is told. */
  sweep(now: number): void {
    this.now = now;
    const slack = this.#sweepMs;
    let t = this.#first;
    while (t !== undefined) {
      const next = t.nextTimed;
      const phase = t.phase;
      const limit = phase === HEAD ? t.headMs || this.headMs : phase === BODY ? this.bodyMs : 0;
      if (limit > 0 && now - t.since >= limit + slack) {
        this.untrack(t);
        t.deadlinePassed(phase as typeof HEAD | typeof BODY);
      }
      t = next;
    }
  }

  close(): void {
    clearInterval(this.#timer);
    while (this.#first !== undefined) this.untrack(this.#first);
  }
}
