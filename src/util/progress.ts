// Progress for long work: a bar with rate and ETA on a terminal, and plain
// periodic lines elsewhere (CI logs, files), so output stays readable.
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
}

export function createProgress(o: ProgressOptions): Progress {
  const stream = o.stream ?? process.stderr;
  if (!stream.isTTY || process.env.CI) return silentProgress();
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
  return {
    update(done, fields = {}) {
      const secs = (Date.now() - start) / 1000;
      bar.update(Math.min(done, o.total), { rate: secs > 0 ? (done / secs).toFixed(1) : '-', ...fields });
    },
    stop() {
      bar.stop();
    },
  };
}

function silentProgress(): Progress {
  return { update() {}, stop() {} };
}
