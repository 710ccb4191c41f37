// Measures a trained run: 200 samples from its latest snapshot against the
// data it was trained on, in the shipped Fashion-MNIST classifier's features
// (FD, KID) and by SWD. Usage: node evaluate.js <run directory>
import { DiffusionModel, data, metrics } from 'patch-diffusion';

const runDir = process.argv[2];
if (!runDir) throw new Error('usage: node evaluate.js <run directory>');
const model = DiffusionModel.load(runDir);
const generated = model.sample({ seeds: Array.from({ length: 200 }, (_, k) => k), steps: 18, layout: 'nchw' });
model.dispose();
// The training data, as the run's options name it (a built-in set, a folder or a zip).
const trainedOn = String(model.info?.trainingOptions?.data ?? 'fashion-mnist-5k');
const reference = await data.loadDataset(trainedOn, { labels: false });
const { metrics: m } = await metrics.computeMetrics({ generated, reference, metrics: ['fd-classifier', 'kid-classifier', 'swd'] });
console.log(`against ${trainedOn}: FD ${m['fd-classifier']?.toFixed(2)}  KID ${m['kid-classifier']?.mean.toFixed(4)}  SWD ${m.swd?.mean.toFixed(2)}`);
