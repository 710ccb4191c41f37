// Shared fixtures for the train-* and generate-* tests: a folder of small
// PNG images (simple shapes, so they differ), temporary directories, the
// tiny training configuration, and helpers to compare safetensors files
// tensor by tensor, byte for byte.
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { readSafetensors } from '../../src/io/safetensors.js';
import { tensorBytes } from '../../src/tensor/raw-bytes.js';
import type { TrainRequest } from '../../src/train/train.js';
import { TEST_DEVICE } from './device.js';

/** A fresh temporary directory (removed by `cleanup`). */
export function makeTempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `pd-${prefix}-`));
}

export function cleanup(...dirs: (string | undefined)[]): void {
  for (const d of dirs) if (d) rmSync(d, { recursive: true, force: true });
}

/**
 * Writes `count` PNG images of side `size` into `dir` (created if needed):
 * a filled rectangle, a disc or a diagonal band at a varying place and
 * brightness on a varying background, so no two are alike.
 */
export async function writeShapeImages(dir: string, { count = 24, size = 16, channels = 3 as 1 | 3 } = {}): Promise<string> {
  mkdirSync(dir, { recursive: true });
  for (let k = 0; k < count; k++) {
    const raw = Buffer.alloc(size * size * channels);
    const bg = (k * 37) % 96;
    const fg = 140 + ((k * 53) % 116);
    const cx = 3 + (k % 9), cy = 3 + ((k * 5) % 9), r = 2 + (k % 4);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        let inside: boolean;
        if (k % 3 === 0) inside = Math.abs(x - cx) <= r && Math.abs(y - cy) <= r;
        else if (k % 3 === 1) inside = (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
        else inside = Math.abs(x - y - (k % 7) + 3) <= 1 + (k % 2);
        for (let c = 0; c < channels; c++) {
          const tint = channels === 3 ? [1, 0.6, 0.3][(c + k) % 3]! : 1;
          raw[(y * size + x) * channels + c] = Math.round((inside ? fg : bg) * tint);
        }
      }
    }
    await sharp(raw, { raw: { width: size, height: size, channels } }).png().toFile(join(dir, `img${String(k).padStart(3, '0')}.png`));
  }
  return dir;
}

/** Patch samples per optimizer step of the tiny config: floor(batch · batch_mul_avg) = floor(4 · 1.9) = 7. */
export const NIMG_PER_STEP = 7;

/** Duration (Mimg) that ends after exactly `steps` optimizer steps of the tiny config. */
export const durationForSteps = (steps: number): number => (steps * NIMG_PER_STEP) / 1e6;

/**
 * The tiny training configuration: 16×16 images, a 2-level DDPM++ with 8
 * base channels (size multiple 2, so the patch sizes 4/8/16 all fit), batch 4,
 * one status line and one snapshot per `tick` (default: every step),
 * a 4-image, 2-step sample grid, one thread, quiet.
 */
export function tinyTrainRequest(data: string, outdir: string, extra: Partial<TrainRequest> = {}): TrainRequest {
  return {
    data,
    outdir,
    arch: 'small',
    cbase: 8,
    cres: [1, 1],
    numBlocks: 1,
    attn: [],
    batch: 4,
    duration: durationForSteps(2),
    tick: NIMG_PER_STEP / 1000,
    snap: 1,
    dump: 1,
    gridSeeds: 4,
    gridSteps: 2,
    lrRampup: 0.035, // 35 patch samples: the ramp spans the first five steps
    threads: 1,
    device: TEST_DEVICE, // cpu unless PD_TEST_DEVICE says otherwise (scripts/gpu-check.sh: cuda)
    quiet: true,
    ...extra,
  };
}

/** The same configuration as command-line flags for `node dist/src/cli/main.js train`. */
export function tinyTrainFlags(data: string, outdir: string, duration: number): string[] {
  return [
    '--data', data, '--outdir', outdir, '--arch', 'small', '--cbase', '8', '--cres', '1,1', '--num-blocks', '1', '--attn', '',
    '--batch', '4', '--duration', String(duration), '--tick', String(NIMG_PER_STEP / 1000), '--snap', '1', '--dump', '1',
    '--grid-seeds', '4', '--grid-steps', '2', '--lr-rampup', '0.035', '--threads', '1', '--device', TEST_DEVICE,
  ];
}

/** Every tensor of a safetensors file as raw bytes, with its dtype and shape, and the metadata. */
export function safetensorsBytes(path: string): { tensors: Map<string, { dtype: string; shape: number[]; bytes: Buffer }>; metadata: Record<string, string> } {
  const { tensors, metadata } = readSafetensors(path);
  const out = new Map<string, { dtype: string; shape: number[]; bytes: Buffer }>();
  for (const [name, t] of tensors) {
    out.set(name, { dtype: t.dtype, shape: [...t.shape], bytes: Buffer.from(tensorBytes(t)) });
    t.dispose();
  }
  return { tensors: out, metadata };
}

/**
 * Asserts two safetensors files hold the same tensor names, dtypes, shapes
 * and bytes. `only` restricts the comparison to names with one of the given
 * prefixes (all names otherwise). Returns how many tensors were compared.
 */
export function assertSameTensors(pathA: string, pathB: string, only?: readonly string[]): number {
  const a = safetensorsBytes(pathA).tensors;
  const b = safetensorsBytes(pathB).tensors;
  const keep = (n: string) => !only || only.some((p) => n.startsWith(p));
  const namesA = [...a.keys()].filter(keep).sort();
  const namesB = [...b.keys()].filter(keep).sort();
  assert.deepEqual(namesA, namesB, 'the two files hold different tensors');
  assert.ok(namesA.length > 0, 'no tensors to compare');
  const differing: string[] = [];
  for (const n of namesA) {
    const x = a.get(n)!, y = b.get(n)!;
    assert.equal(x.dtype, y.dtype, `${n}: dtype`);
    assert.deepEqual(x.shape, y.shape, `${n}: shape`);
    if (!x.bytes.equals(y.bytes)) differing.push(n);
  }
  assert.deepEqual(differing, [], `${differing.length} of ${namesA.length} tensors differ between ${pathA} and ${pathB}`);
  return namesA.length;
}

/** Files in a run directory matching a pattern, sorted. */
export function listRunFiles(dir: string, pattern: RegExp): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => pattern.test(f)).sort() : [];
}

/** stats.jsonl of a run directory as objects. */
export function readStats(runDir: string): Record<string, number>[] {
  const path = join(runDir, 'stats.jsonl');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number>);
}
