// One rank of the collective tests (test/dist-collectives.test.ts): joins the
// group from torchrun's environment, runs each collective on known values,
// and writes what it saw to <outdir>/rank-<r>.json.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readRankEnvironment } from '../../src/distributed/environment.js';
import { ProcessGroup } from '../../src/distributed/process-group.js';
import { tensor, zeros } from '../../src/tensor/index.js';

const outdir = process.argv[2]!;
const env = readRankEnvironment()!;
const dist = await ProcessGroup.join(env);
const r = dist.rank;

// Broadcast: rank-dependent values, one tensor in channels-last layout (not contiguous).
const a = tensor(Float32Array.from({ length: 6 }, (_, k) => 100 * r + k), [2, 3]);
const nhwc = tensor(Float32Array.from({ length: 2 * 3 * 2 * 2 }, (_, k) => (r + 1) * k), [2, 3, 2, 2]).channelsLast();
dist.broadcastTensors([a, nhwc], 'test tensors');

// Sums of numbers and a tensor.
const sums = dist.sum([r, 0.5, 2 ** 40 + r]);
const t = tensor(Float32Array.from([r + 1, 10 * (r + 1)]));
dist.sumTensor(t, 'a test tensor');

// Gradient averaging: parameter p gets gradient (r + 1)·(k + 1); q gets none on odd ranks.
const p = zeros([3, 4]).requiresGrad_();
const q = zeros([5]).requiresGrad_();
p.mul(tensor(Float32Array.from({ length: 12 }, (_, k) => (r + 1) * (k + 1)), [3, 4])).sum().backward();
if (r % 2 === 0) q.mul(tensor(Float32Array.from({ length: 5 }, () => 4))).sum().backward();
dist.averageGradients([p, q]);

const json = dist.gatherJson({ rank: r, text: 'é'.repeat(r + 1) }, 'test values');
const fromRank0 = dist.broadcastJson(r === 0 ? { hello: 'from rank 0', n: 42 } : undefined, 'a test value');
dist.barrier('the end of the test');

writeFileSync(join(outdir, `rank-${r}.json`), JSON.stringify({
  a: a.toArray(), nhwc: nhwc.contiguous().toArray(), sums, t: t.toArray(), pGrad: p.grad!.toArray(), qGrad: q.grad!.toArray(), json, fromRank0,
}));
