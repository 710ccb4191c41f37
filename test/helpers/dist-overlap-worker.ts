// One rank of the overlapped all-reduce test (test/dist-overlap.test.ts):
// two accumulation rounds per step, the last one's backward with the
// all-reduce overlapped (small buckets, so there are many, launched from
// autograd's hooks), against the blocking all-reduce of the same gradients
// and against the exact float32 values. Parameter 2 is channels-last (so is
// its gradient); parameter 3 gets a gradient in the first round on every rank
// but in the last round on even ranks only (unused there, with a gradient
// from the earlier round); parameter 4 never gets one (zeros). Writes
// <outdir>/overlap-rank-<r>.json.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readRankEnvironment } from '../../src/distributed/environment.js';
import { ProcessGroup } from '../../src/distributed/process-group.js';
import { awaitGradients, backwardOverlapped, type OverlapReport } from '../../src/tensor/collectives.js';
import { tensor, zeroGrad, zeros, type Tensor } from '../../src/tensor/index.js';

const outdir = process.argv[2]!;
const dist = await ProcessGroup.join(readRankEnvironment()!);
const rank = dist.rank;
const shapes = [[64, 33], [100], [2, 3, 4, 4], [5], [3], [257], [16, 16]];
const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

const makeParams = () => shapes.map((s, k) => (k === 2 ? zeros(s).channelsLast() : zeros(s)).requiresGrad_());

/** Rank `r`'s gradient of parameter k in a round: values of many magnitudes, so sums round. */
function weights(r: number, step: number, k: number, round: number): Float32Array {
  return Float32Array.from({ length: numel(shapes[k]!) }, (_, i) => Math.sin(1 + 0.37 * i + 1.3 * k + 2.1 * round + 0.71 * r + 3.7 * step) * 10 ** ((i % 7) - 3));
}
const uses = (r: number, k: number, round: number) => k !== 4 && !(k === 3 && round === 1 && r % 2 === 1);

function roundLoss(params: Tensor[], step: number, round: number): Tensor {
  const terms = params.flatMap((p, k) => (uses(rank, k, round) ? [p.mul(tensor(weights(rank, step, k, round), shapes[k]!)).sum()] : []));
  return terms.reduce((a, b) => a.add(b));
}

/** What the mean over two ranks must be, in float32 arithmetic: (a0 + a1) / 2, each a the sum of its rounds. */
function expected(step: number, k: number): number[] {
  const perRank = [0, 1].map((r) => {
    const a = new Float32Array(numel(shapes[k]!));
    for (const round of [0, 1]) if (uses(r, k, round)) weights(r, step, k, round).forEach((w, i) => (a[i] = Math.fround(a[i]! + w)));
    return a;
  });
  return Array.from(perRank[0]!, (x, i) => Math.fround(x + perRank[1]![i]!) / 2);
}

const grads = (params: Tensor[]) => params.map((p) => p.grad!.contiguous().toArray());

const overlapped = makeParams(), blocking = makeParams();
const steps: { caps: [number, number]; report: OverlapReport; sameAsBlocking: boolean; exact: boolean; sameLayout: boolean }[] = [];
const capsPerStep: [number, number][] = [[512, 128], [512, 128], [96, 96], [25 * 2 ** 20, 2 ** 20]];
for (const [step, caps] of capsPerStep.entries()) {
  zeroGrad(overlapped);
  zeroGrad(blocking);
  roundLoss(overlapped, step, 0).backward();
  const report = backwardOverlapped(roundLoss(overlapped, step, 1), overlapped, caps[0], caps[1]);
  awaitGradients();
  roundLoss(blocking, step, 0).backward();
  roundLoss(blocking, step, 1).backward();
  dist.averageGradients(blocking);
  const a = grads(overlapped), b = grads(blocking);
  steps.push({
    caps,
    report,
    sameAsBlocking: a.every((g, k) => g.length === b[k]!.length && g.every((x, i) => Object.is(x, b[k]![i]))),
    exact: a.every((g, k) => expected(step, k).every((x, i) => Object.is(x, g[i]))),
    sameLayout: overlapped[2]!.grad!.isContiguous === blocking[2]!.grad!.isContiguous,
  });
}
dist.barrier('the end of the test');
writeFileSync(join(outdir, `overlap-rank-${rank}.json`), JSON.stringify({ steps }));
