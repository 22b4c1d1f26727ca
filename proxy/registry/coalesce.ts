/**
 * Runs an async task so that triggers never overlap and none is lost: a trigger while the task
 * runs makes it run once more afterwards (many triggers collapse into that one re-run). This is
 * how a watch firing during a read still gets its re-read, with at most one read in flight.
 */
export interface Coalescer {
  trigger(): void;
  /** Resolves when no run is in flight or pending. */
  idle(): Promise<void>;
  readonly running: boolean;
}

export function createCoalescer(task: () => Promise<void>, onError: (error: unknown) => void): Coalescer {
  let running: Promise<void> | undefined;
  let again = false;

  async function loop(): Promise<void> {
    do {
      again = false;
      try {
        await task();
      } catch (error) {
        onError(error);
      }
    } while (again);
    running = undefined;
  }

  return {
    trigger() {
      if (running) again = true;
      else running = loop();
    },
    idle: async () => {
      while (running) await running;
    },
    get running() {
      return running !== undefined;
    },
  };
}

/** Runs at most `max` tasks at once; the others wait their turn, in order. */
export interface Limiter {
  run<T>(task: () => Promise<T>): Promise<T>;
}

export function createLimiter(max: number): Limiter {
  let active = 0;
  const queue: Array<() => void> = [];
  return {
    async run(task) {
      if (active < max) active += 1;
      else await new Promise<void>((resolve) => queue.push(resolve)); // the finishing task hands its slot over
      try {
        return await task();
      } finally {
        const next = queue.shift();
        if (next) next();
        else active -= 1;
      }
    },
  };
}
