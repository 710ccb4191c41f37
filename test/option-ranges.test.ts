// Every number a user types has a range, checked before any work, with a
// message naming the flag, the value and the range. Each case here used to
// crash, hang, exhaust memory or be silently ignored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { train } from '../src/train/train.js';
import { cleanup, durationForSteps, makeTempDir, tinyTrainRequest, writeShapeImages } from './helpers/train-fixtures.js';
import { runCli } from '../src/cli/program.js';
import { captureWrites } from './helpers/capture.js';
import { DiffusionModel } from '../src/model/diffusion-model.js';
import { maxThreads, setNumThreads } from '../src/tensor/index.js';

/** Runs the command line in this process; returns its exit code and what it wrote to stderr. */
async function cli(args: string[]): Promise<{ code: number; stderr: string }> {
  const { value: code, written: stderr } = await captureWrites(process.stderr, () => runCli(args));
  return { code, stderr };
}

const cases: [string[], RegExp][] = [
  [['info', '--threads', '100000'], new RegExp(`--threads.*'100000'.*from 1 to ${maxThreads()}`)],
  [['info', '--threads', '0'], /--threads.*'0'.*from 1 to/],
  [['generate', '--network', 'x', '--outdir', 'x', '--seeds', '99999999999999999999'], /--seeds: 99999999999999999999 is beyond the largest seed, 4294967295/],
  [['generate', '--network', 'x', '--outdir', 'x', '--seeds', '0-20000000'], /--seeds: '0-20000000' names more than 10,000,000 seeds/],
  [['generate', '--network', 'x', '--outdir', 'x', '--steps', '1e9'], /--steps.*'1e9'.*from 1 to 10000/],
  [['generate', '--network', 'x', '--outdir', 'x', '--batch', '1e12'], /--batch.*'1e12'.*from 1 to 65536/],
  [['train', '--data', 'x', '--duration', '0.001', '--grid-seeds', '1e9', '--dry-run'], /--grid-seeds: .*4096 \(got 1000000000\)/],
  [['train', '--data', 'x', '--duration', '0.001', '--threads', '100000', '--dry-run'], /--threads: expected an integer from 1 to \d+ .*\(got 100000\)/],
  [['train', '--data', 'x', '--duration', '0.001', '--batch', '1e12', '--dry-run'], /--batch: .*65536 \(got 1000000000000\)/],
  [['train', '--data', 'x', '--duration', '0.001', '--ls', '0', '--dry-run'], /--ls: .*>0 \(got 0\)/],
  [['train', '--data', 'x', '--duration', '0.001', '--precision', 'fp8', '--dry-run'], /--precision.*'fp8'.*fp32, bf16, fp16/],
  [['metrics', '--images', 'x', '--kid-subsets', '0'], /--kid-subsets.*'0'.*from 1 to/],
  [['metrics', '--images', 'x', '--batch', '0'], /--batch.*'0'.*from 1 to 65536/],
  [['metrics', '--images', 'x', '--threads', '0'], /--threads.*'0'.*from 1 to/],
];

for (const [args, message] of cases) {
  test(`patch-diffusion ${args.join(' ')}: refused with the flag, the value and the range`, async () => {
    const { code, stderr } = await cli(args);
    assert.equal(code, 1, stderr);
    assert.match(stderr, message);
  });
}

test('the library checks the same: threads, and the sampler settings as given (not as clamped)', async () => {
  assert.throws(() => setNumThreads(100000), /threads must be an integer from 1 to \d+ .*got 100000/);
  const tmp = makeTempDir('pd-ranges-');
  const data = await writeShapeImages(join(tmp, 'data'), { count: 8, size: 16, channels: 1 });
  const run = await train(tinyTrainRequest(data, join(tmp, 'runs'), { duration: durationForSteps(1) }));
  const model = DiffusionModel.load(run!.runDir, { device: 'cpu' });
  try {
    assert.throws(() => model.sample({ seeds: [0], sigmaMin: -1 }), /--sigma-min: expected a number > 0, got -1/);
    assert.throws(() => model.sample({ seeds: [0], sigmaMin: 5, sigmaMax: 1 }), /--sigma-min 5 is above --sigma-max 1/);
    assert.throws(() => model.sample({ seeds: [0], steps: 1e9 }), /--steps: expected an integer from 1 to 10000, got 1000000000/);
    assert.throws(() => model.sample({ seeds: [0], imageSize: 1e6 }), /--image-size/);
  } finally {
    model.dispose();
    cleanup(tmp);
  }
});
