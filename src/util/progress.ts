// Progress for long work: a bar with rate and ETA on a terminal (nothing in
// CI logs, pipes and tests, so they never get control characters), and for
// programs a callback with the count done.
import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

export interface ProgressOptions {
  total: number;
  label: string;
  unit: string;
  /** Extra field names shown after the bar, e.g. loss. */
  fields?: string[];
  stream?: NodeJS.WriteStream;
  /** Draw the bar even when the stream is not a terminal (default: only on a terminal, and never under CI). */
  force?: boolean;
}

export function createProgress(o: ProgressOptions): Progress {
  const stream = o.stream ?? process.stderr;
  if (!o.force && (!stream.isTTY || process.env.CI)) return silentProgress();
  const extra = (o.fields ?? []).map((f) => ` | ${f} {${f}}`).join('');
  const bar = new cliProgress.SingleBar(
    {
      format: `${o.label} [{bar}] {percentage}% | {value}/{total} ${o.unit} | {rate} ${o.unit}/s | ETA {eta_formatted}${extra}`,
      stream,
      etaBuffer: 50,
      fps: 5,
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  const start = Date.now();
  const initial = Object.fromEntries((o.fields ?? []).map((f) => [f, '-']));
  bar.start(o.total, 0, { rate: '-', ...initial });
  let stopped = false;
  return {
    update(done, fields = {}) {
      const secs = (Date.now() - start) / 1000;
      bar.update(Math.min(done, o.total), { rate: secs > 0 ? (done / secs).toFixed(1) : '-', ...fields });
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bar.stop();
    },
  };
}

function silentProgress(): Progress {
  return { update() {}, stop() {} };
}

// ---- counted items (files read, images written): a callback for programs, the bar for people ----

/** Called as items are done: `done` of `total`. */
export type ProgressCallback = (done: number, total: number) => void;

/**
 * How a long job over counted items (files read, images written) reports: a callback, a bar on stderr, or
 * both.
 */
export interface ItemProgressOptions {
  onProgress?: ProgressCallback | undefined;
  /** Draw a bar on stderr: default when stderr is a terminal and the job is large; true forces it, false hides it. */
  progressBar?: boolean | undefined;
}

export interface ItemProgress {
  tick(n?: number): void;
  stop(): void;
}

/** Below this many items a bar is just flicker. */
const BAR_THRESHOLD = 200;

export function startProgress(label: string, total: number, options: ItemProgressOptions = {}): ItemProgress {
  const bar =
    options.progressBar === false || (options.progressBar === undefined && total < BAR_THRESHOLD)
      ? silentProgress()
      : createProgress({ total, label, unit: 'items', force: options.progressBar === true });
  let done = 0;
  return {
    tick(n = 1) {
      done += n;
      bar.update(done);
      options.onProgress?.(done, total);
    },
    stop: () => bar.stop(),
  };
}
