// What a training run reports while it runs: typed events for a program
// (a progress bar, a log of its own, a chart), by callback (`onEvent`) or as
// an async iterator (`trainWithEvents`). The same figures go to stats.jsonl.

/**
 * What a run reports, by `type`: 'start' once, 'tick' at every tick (the
 * progress line's figures), 'snapshot' and 'state' for each file written, and
 * 'metrics' when sample quality was measured. Rank 0's only in a data-parallel run.
 */
export type TrainingEvent =
  | {
      type: 'start';
      runDir: string;
      /** Patch samples seen so far, in thousands (0 for a new run; the state's count when resuming). */
      kimg: number;
      /** Where the run ends, in thousands of patch samples (the duration). */
      totalKimg: number;
      resumed: boolean;
    }
  | {
      type: 'tick';
      tick: number;
      kimg: number;
      totalKimg: number;
      /** Mean per-pixel loss over the tick. */
      loss: number;
      /** Patch samples per second over the tick (the official counter). */
      imagesPerSec: number;
      learningRate: number;
      /** Training seconds so far, earlier processes of a resumed run included. */
      elapsedSec: number;
      /** Seconds to `totalKimg` at this tick's speed. */
      remainingSec: number;
      /** Resident memory of this process, GB. */
      rssGb: number;
    }
  | { type: 'snapshot'; kimg: number; /** The EMA network's snapshot. */ path: string; /** Its sample grid (PNG). */ gridPath: string }
  | { type: 'state'; kimg: number; /** The training state a resume continues from. */ path: string }
  | { type: 'metrics'; kimg: number; metrics: Record<string, number> };

/**
 * A queue that turns `onEvent` callbacks into an async iterator: `push` from
 * the producer, `end` (or `fail`) when it finishes; the iterator ends after
 * the last event.
 */
export class EventQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiting: ((r: IteratorResult<T>) => void) | null = null;
  private rejecting: ((e: unknown) => void) | null = null;
  private done = false;
  private error: unknown = null;

  push(item: T): void {
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = this.rejecting = null;
      w({ value: item, done: false });
    } else this.items.push(item);
  }

  end(): void {
    this.done = true;
    if (this.waiting) this.waiting({ value: undefined, done: true });
  }

  fail(err: unknown): void {
    this.error = err;
    this.done = true;
    if (this.rejecting) this.rejecting(err);
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.items.length) return Promise.resolve({ value: this.items.shift()!, done: false });
        if (this.error) return Promise.reject(this.error);
        if (this.done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => {
          this.waiting = resolve;
          this.rejecting = reject;
        });
      },
    };
  }
}
