// `patch-diffusion dataset`: turn a folder/zip of images or a built-in set into
// an EDM-style dataset zip (what `train` and FID reference stats consume).
// All options are checked before anything is read, so a typo fails in
// milliseconds rather than after minutes of decoding.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { BUILTIN_DATASETS, isBuiltinName, loadDataset } from '../../data/builtin.js';
import { writeEdmZip, type WriteEdmZipResult } from '../../data/edm-zip.js';
import type { SkippedFile } from '../../data/images.js';
import type { ImageDataset } from '../../data/dataset.js';

export interface DatasetCommandOptions {
  source: string;
  dest: string;
  resolution?: number | undefined;
  channels?: 1 | 3 | undefined;
  maxImages?: number | undefined;
  seed?: number | undefined;
  skipBad?: boolean | undefined;
  labels?: boolean | undefined;
}

export interface DatasetCommandResult {
  readonly dataset: ImageDataset;
  readonly zip: WriteEdmZipResult;
  readonly skipped: readonly SkippedFile[];
}

function intParser(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`${name} must be a whole number, got '${value}'.`);
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be between ${min} and ${max}, got ${value}.`);
    return n;
  };
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u++;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

/** Check options without reading any data; throws an Error with a user-facing message. */
export async function validateDatasetOptions(opts: DatasetCommandOptions): Promise<string[]> {
  const warnings: string[] = [];
  if (!opts.source) throw new Error('--source is required (a folder, a .zip, or one of: ' + Object.keys(BUILTIN_DATASETS).join(', ') + ')');
  if (!opts.dest) throw new Error('--dest is required (the output .zip)');
  if (!isBuiltinName(opts.source)) {
    const st = await fsp.stat(opts.source).catch(() => null);
    if (!st) throw new Error(`--source ${opts.source}: no such file or folder, and not a built-in dataset (${Object.keys(BUILTIN_DATASETS).join(', ')})`);
    if (!st.isDirectory() && !st.isFile()) throw new Error(`--source ${opts.source} is neither a folder nor a file`);
  }
  if (!/\.zip$/i.test(opts.dest)) throw new Error(`--dest ${opts.dest} must end in .zip (an EDM-style dataset zip is written)`);
  const destStat = await fsp.stat(opts.dest).catch(() => null);
  if (destStat?.isDirectory()) throw new Error(`--dest ${opts.dest} is a folder; give a .zip file path`);
  const destDir = path.dirname(path.resolve(opts.dest));
  const dirStat = await fsp.stat(destDir).catch(() => null);
  if (!dirStat?.isDirectory()) throw new Error(`--dest ${opts.dest}: folder ${destDir} does not exist`);
  if (!isBuiltinName(opts.source) && path.resolve(opts.source) === path.resolve(opts.dest)) throw new Error('--dest must differ from --source');
  if (opts.resolution !== undefined) {
    if (!Number.isInteger(opts.resolution) || opts.resolution < 1 || opts.resolution > 8192) throw new Error(`--resolution must be an integer in 1..8192, got ${opts.resolution}`);
    if ((opts.resolution & (opts.resolution - 1)) !== 0) warnings.push(`--resolution ${opts.resolution} is not a power of two; EDM/Patch Diffusion UNets expect one (e.g. 32, 64)`);
  }
  if (opts.channels !== undefined && opts.channels !== 1 && opts.channels !== 3) throw new Error(`--channels must be 1 or 3, got ${String(opts.channels)}`);
  if (opts.maxImages !== undefined && (!Number.isSafeInteger(opts.maxImages) || opts.maxImages < 1)) throw new Error(`--max-images must be a positive integer, got ${opts.maxImages}`);
  if (opts.seed !== undefined && (!Number.isSafeInteger(opts.seed) || opts.seed < 0)) throw new Error(`--seed must be a non-negative integer, got ${opts.seed}`);
  return warnings;
}

/** The command's work, callable from tests: validate, load, write, summarise via `log`. */
export async function runDatasetCommand(opts: DatasetCommandOptions, log: (line: string) => void = (l) => console.log(l)): Promise<DatasetCommandResult> {
  for (const w of await validateDatasetOptions(opts)) process.stderr.write(`warning: ${w}\n`);
  const skipped: SkippedFile[] = [];
  const dataset = await loadDataset(opts.source, {
    resolution: opts.resolution,
    channels: opts.channels,
    maxImages: opts.maxImages,
    seed: opts.seed ?? 0,
    skipBad: opts.skipBad ?? false,
    labels: opts.labels ?? true,
    onSkip: (s) => {
      skipped.push(s);
      process.stderr.write(`warning: skipped ${s.reason}\n`);
    },
  });
  const zip = await writeEdmZip(opts.dest, dataset);
  const labels = dataset.labelDim === 0 ? 'none' : dataset.classNames ? `${dataset.labelDim} classes (${dataset.classNames.join(', ')})` : `${dataset.labelDim}-wide`;
  log(`wrote ${zip.path}`);
  log(`  images:     ${dataset.length}`);
  log(`  resolution: ${dataset.resolution}×${dataset.resolution}`);
  log(`  channels:   ${dataset.channels} (${dataset.channels === 1 ? 'grey' : 'RGB'})`);
  log(`  labels:     ${labels}`);
  log(`  size:       ${formatBytes(zip.bytes)}`);
  if (skipped.length > 0) log(`  skipped:    ${skipped.length} unreadable file(s)`);
  if (zip.noticePath) log(`  licence:    see ${zip.noticePath} (also NOTICE inside the zip)`);
  return { dataset, zip, skipped };
}

export function datasetCommand(): Command {
  const builtins = Object.keys(BUILTIN_DATASETS).join(', ');
  return new Command('dataset')
    .description('write an EDM-style dataset zip from a folder/zip of PNG/JPEG images or a built-in set')
    .requiredOption('--source <path|builtin>', `folder or .zip of images, or a built-in: ${builtins}`)
    .requiredOption('--dest <out.zip>', 'output zip (written atomically)')
    .option('--resolution <n>', 'output side: centre-crop to square, then Lanczos resize (default: the source size)', intParser('--resolution', 1, 8192))
    .option('--channels <c>', '1 (grey) or 3 (RGB); default: 3 if any image is colour', (v: string): 1 | 3 => {
      if (v !== '1' && v !== '3') throw new InvalidArgumentError(`--channels must be 1 or 3, got '${v}'.`);
      return Number(v) as 1 | 3;
    })
    .option('--max-images <n>', 'keep a fixed seeded subset of at most n images (e.g. 5000)', intParser('--max-images', 1))
    .option('--seed <n>', 'seed for --max-images', intParser('--seed', 0), 0)
    .option('--skip-bad', 'skip unreadable images with a warning instead of failing (default: fail)')
    .option('--no-labels', 'drop labels (write {"labels": null})')
    .addHelpText('after', `\nBuilt-in datasets:\n${Object.entries(BUILTIN_DATASETS).map(([k, v]) => `  ${k.padEnd(18)} ${v}`).join('\n')}`)
    .action(async (opts: DatasetCommandOptions) => {
      await runDatasetCommand(opts);
    });
}
