// Progress reporting for long reads/writes: a callback for programs, and a
// terminal bar for people. The bar only appears when stderr is a terminal, so
// logs, pipes and tests never get control characters.
import cliProgress from 'cli-progress';

export type ProgressCallback = (done: number, total: number) => void;

export interface ProgressOptions {
  onProgress?: ProgressCallback | undefined;
  /** Draw a bar on stderr: default true when stderr is a TTY and the job is large. */
  progressBar?: boolean | undefined;
}

export interface Progress {
  tick(n?: number): void;
  stop(): void;
}

/** Below this many items a bar is just flicker. */
const BAR_THRESHOLD = 200;

export function startProgress(label: string, total: number, options: ProgressOptions = {}): Progress {
  const wantBar = options.progressBar ?? (process.stderr.isTTY === true && total >= BAR_THRESHOLD);
  const bar = wantBar
    ? new cliProgress.SingleBar(
        { format: `${label} [{bar}] {value}/{total} {percentage}% | ETA {eta_formatted}`, stream: process.stderr, hideCursor: true, clearOnComplete: false },
        cliProgress.Presets.shades_classic,
      )
    : null;
  bar?.start(total, 0);
  let done = 0;
  let stopped = false;
  return {
    tick(n = 1) {
      done += n;
      bar?.update(done);
      options.onProgress?.(done, total);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bar?.stop();
    },
  };
}
