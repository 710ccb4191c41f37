// Which Fashion-MNIST classes a model draws: the shipped classifier's prediction
// for each image of one or more folders (`generate`'s output) or data sets, as
// shares per class, and each set's total-variation distance from a reference
// set's shares (default: the training set, fashion-mnist-5k). FD in the
// classifier's features mixes "wrong proportions" with "wrong-looking images";
// this separates the first.
//
//   node dist/bench/class-balance.js --sets "full images=DIR1,real_p 0.5=DIR2" [--ref fashion-mnist-5k] [--threads 1]
import { loadDataset } from '../src/data/index.js';
import { GRID_FILE } from '../src/generate/generate.js';
import { loadClassifier } from '../src/metrics/classifier.js';
import { setNumThreads } from '../src/tensor/index.js';
import { CLASSES, classShares, predictDataset, totalVariation } from './class-shares.js';
import { benchMain, labelledList, parseOptions, UsageError, type OptionSpec } from './common.js';

const SPEC: Record<string, OptionSpec> = {
  sets: { type: 'string', help: 'label=folder or data set name, comma-separated' },
  ref: { type: 'string', default: 'fashion-mnist-5k', help: 'the set whose class shares the others are compared with' },
  threads: { type: 'int', default: 1, help: 'libtorch threads' },
};

async function predictedShares(spec: string, classifier: ReturnType<typeof loadClassifier>): Promise<{ shares: number[]; count: number }> {
  const ds = await loadDataset(spec, { labels: false, channels: 1, filter: (rel) => rel !== GRID_FILE });
  if (ds.resolution !== 32 && ds.resolution !== 28) throw new UsageError(`${spec}: ${ds.resolution}×${ds.resolution} images; the classifier reads Fashion-MNIST's 28 or 32`);
  return { shares: classShares(predictDataset(ds, classifier)), count: ds.length };
}

benchMain('class-balance', async () => {
  const o = parseOptions(process.argv.slice(2), SPEC, 'node dist/bench/class-balance.js --sets "a=DIR,b=DIR" [--ref fashion-mnist-5k]');
  if (typeof o.sets !== 'string') throw new UsageError('--sets is required');
  setNumThreads(o.threads as number);
  const sets = labelledList(o.sets, '--sets', 'folder').map(({ label, value }) => ({ label, spec: value }));
  const classifier = loadClassifier();
  try {
    const ref = await predictedShares(o.ref as string, classifier);
    const rows = [{ label: `${o.ref as string} (reference)`, ...ref }, ...(await Promise.all(sets.map(async (s) => ({ label: s.label, ...(await predictedShares(s.spec, classifier)) }))))];
    const width = Math.max(...rows.map((r) => r.label.length), 10);
    console.log(`${'set'.padEnd(width)} ${'images'.padStart(6)} ${CLASSES.map((c) => c.padStart(9)).join('')}  TV from reference`);
    for (const r of rows)
      console.log(`${r.label.padEnd(width)} ${String(r.count).padStart(6)} ${r.shares.map((v) => `${(v * 100).toFixed(1)}%`.padStart(9)).join('')}  ${totalVariation(r.shares, ref.shares).toFixed(3)}`);
    console.log('\nshares of the classifier\'s predictions (models/fashion-mnist-classifier.safetensors); TV: total-variation distance, 0 = the same proportions');
  } finally {
    classifier.dispose();
  }
});
