// The run directory, laid out as EDM's so its users find their way:
// NNNNN-<dataset>-<cond|uncond>-<arch>-pedm-batch<B>[-desc]/ with
// training_options.json, log.txt (a copy of the console), stats.jsonl (one
// JSON object per tick), snapshots, training states and sample grids.
import { accessSync, appendFileSync, constants, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import type { TFEventsWriter } from '../io/tfevents.js';

/**
 * Whether `outdir` can take a run, checked before the data and the network
 * load, and without creating anything: the nearest part of the path that
 * exists must be a folder this process may write to.
 */
export function checkOutdir(outdir: string): void {
  let dir = resolve(outdir);
  for (;;) {
    let isDir: boolean;
    try {
      isDir = statSync(dir).isDirectory();
    } catch (err) {
      const parent = dirname(dir);
      if (((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') && parent !== dir) {
        dir = parent;
        continue;
      }
      throw new Error(`--outdir: cannot use ${outdir}: ${(err as Error).message}`);
    }
    if (!isDir) throw new Error(`--outdir: ${dir} is a file, not a folder (runs go into ${outdir})`);
    try {
      accessSync(dir, constants.W_OK);
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code === 'EROFS' ? 'the file system is read-only' : 'permission denied';
      throw new Error(`--outdir: cannot create runs under ${dir}: ${why}`);
    }
    return;
  }
}

export function createRunDir(outdir: string, nameParts: string[]): string {
  mkdirSync(outdir, { recursive: true });
  const ids = readdirSync(outdir)
    .map((f) => /^(\d{5})-/.exec(f)?.[1])
    .filter((x): x is string => x !== undefined)
    .map(Number);
  const next = ids.length ? Math.max(...ids) + 1 : 0;
  const dir = join(outdir, [String(next).padStart(5, '0'), ...nameParts].join('-'));
  if (existsSync(dir)) throw new Error(`run directory ${dir} already exists`);
  mkdirSync(dir);
  return dir;
}

/** --nosubdir: the run goes into `dir` itself, which must not hold another run already. */
export function useRunDir(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const taken = readdirSync(dir).filter((f) => f === 'training_options.json' || /^(network-snapshot|training-state)-/.test(f));
  if (taken.length) throw new Error(`--nosubdir: ${dir} already holds a run (${taken[0]}); resume it with --resume ${dir}, or choose another --outdir`);
  return dir;
}

export function writeJson(path: string, value: unknown): void {
  writeFileAtomic(path, [new TextEncoder().encode(JSON.stringify(value, null, 2) + '\n')]);
}

/** Where a run's TensorBoard event files go. */
export const TENSORBOARD_DIR = 'tensorboard';

/**
 * Console lines mirrored into log.txt, and per-tick statistics into
 * stats.jsonl (and, with a TensorBoard writer attached, every numeric entry
 * as a scalar at step = patch samples seen). With no directory (the ranks
 * other than 0 of a data-parallel run) it writes nothing: rank 0 speaks for the run.
 */
export class RunLog {
  /** TensorBoard events beside stats.jsonl (rank 0; absent with --no-tensorboard). */
  tensorboard: TFEventsWriter | null = null;

  constructor(
    readonly dir: string | null,
    /** Where status lines go besides log.txt (the CLI: stdout; a library: nowhere unless asked). */
    private readonly sink: ((line: string) => void) | null = null,
  ) {}

  line(text: string): void {
    if (this.dir === null) return;
    this.sink?.(text);
    appendFileSync(join(this.dir, 'log.txt'), text + '\n');
  }

  /** A line for log.txt only (e.g. an error the CLI already prints). */
  fileOnly(text: string): void {
    if (this.dir !== null) appendFileSync(join(this.dir, 'log.txt'), text + '\n');
  }

  stats(entry: Record<string, unknown>): void {
    if (this.dir === null) return;
    appendFileSync(join(this.dir, 'stats.jsonl'), JSON.stringify(entry) + '\n');
    if (this.tensorboard) {
      const scalars: Record<string, number> = {};
      for (const [k, v] of Object.entries(entry)) if (typeof v === 'number' && k !== 'timestamp') scalars[k] = v;
      const kimg = entry['Progress/kimg'];
      const step = typeof kimg === 'number' ? Math.round(kimg * 1000) : 0;
      this.tensorboard.scalars(step, scalars, typeof entry.timestamp === 'number' ? entry.timestamp : Date.now() / 1000);
    }
  }

  /** An image for TensorBoard (a sample grid) at step = patch samples seen. */
  image(tag: string, nimg: number, png: Uint8Array): void {
    if (this.dir !== null) this.tensorboard?.image(nimg, tag, png);
  }
}
