#!/usr/bin/env node
// Trains the Fashion-MNIST feature classifier (classifier.ts) on the 60,000
// training images on the CPU, evaluates it on the 10,000 test images and
// writes models/fashion-mnist-classifier.safetensors with its metadata.
//
//   node dist/src/metrics/train-classifier.js [--epochs 6] [--seed 0] [--batch 128] [--lr 0.002]
//        [--augment flip|flip+shift|none] [--dropout 0.3] [--threads N]
//        [--out models/fashion-mnist-classifier.safetensors]
//
// Deterministic for a given seed and thread count (shuffling, augmentation,
// initial weights and dropout all come from one seeded generator).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { loadFashionMnist, FASHION_MNIST_DIR } from '../data/fashion-mnist.js';
import { collectPixels, oneHotClass, type ImageDataset } from '../data/dataset.js';
import { writeSafetensors } from '../io/safetensors.js';
import { Adam } from '../optim/adam.js';
import { F, Generator, getNumThreads, noGrad, scope, setNumThreads, tensor, zeroGrad } from '../tensor/index.js';
import {
  CLASSIFIER_ARCHITECTURE, CLASSIFIER_FORMAT, CLASSIFIER_PREPROCESSING, DEFAULT_CLASSIFIER_PATH, FashionClassifier,
  preprocessForClassifier,
} from './classifier.js';
import { weightsSha256 } from './feature-network.js';

export type Augment = 'none' | 'flip' | 'flip+shift';

export interface TrainClassifierOptions {
  epochs?: number;
  seed?: number;
  batchSize?: number;
  lr?: number;
  /** 'flip' (default): random horizontal flips; 'flip+shift': also random ±2 px shifts; 'none'. */
  augment?: Augment;
  /** Dropout before the last layer (default 0.3). */
  dropout?: number;
  /** Limit the training images (for quick checks). */
  trainLimit?: number;
  out?: string;
  log?: (line: string) => void;
}

export interface TrainClassifierResult {
  testAccuracy: number;
  trainSeconds: number;
  parameters: number;
  path: string;
  weightsSha256: string;
  fileSha256: string;
}

function classIds(ds: ImageDataset): Uint8Array {
  const out = new Uint8Array(ds.length);
  for (let i = 0; i < ds.length; i++) out[i] = oneHotClass(ds.label(i)!);
  return out;
}

/** Copies image `src` (32×32 grey) into `dst`, shifted by (dx, dy) with zero fill and optionally mirrored. */
function augmentInto(src: Uint8Array, dst: Uint8Array, dx: number, dy: number, flip: boolean, side: number): void {
  dst.fill(0);
  for (let y = 0; y < side; y++) {
    const sy = y + dy;
    if (sy < 0 || sy >= side) continue;
    for (let x = 0; x < side; x++) {
      const sx0 = x + dx;
      if (sx0 < 0 || sx0 >= side) continue;
      const sx = flip ? side - 1 - sx0 : sx0;
      dst[y * side + x] = src[sy * side + sx]!;
    }
  }
}

/** Accuracy of a classifier on uint8 images [N, 1, 32, 32] with class ids. */
export function evaluateAccuracy(model: FashionClassifier, pixels: Uint8Array, labels: Uint8Array, batchSize = 1000): number {
  const size = 32 * 32;
  const n = labels.length;
  let correct = 0;
  const wasTraining = model.training;
  model.eval();
  noGrad(() => {
    for (let s = 0; s < n; s += batchSize) {
      const e = Math.min(n, s + batchSize);
      scope(() => {
        const x = tensor(pixels.subarray(s * size, e * size), [e - s, 1, 32, 32], { dtype: 'uint8' });
        const pred = model.forward(preprocessForClassifier(x)).argmax(1).toArray();
        for (let k = 0; k < pred.length; k++) if (pred[k] === labels[s + k]) correct++;
      });
    }
  });
  model.train(wasTraining);
  return correct / n;
}

export async function trainClassifier(options: TrainClassifierOptions = {}): Promise<TrainClassifierResult> {
  const epochs = options.epochs ?? 6;
  const seed = options.seed ?? 0;
  const batchSize = options.batchSize ?? 128;
  const baseLr = options.lr ?? 2e-3;
  const augment = options.augment ?? 'flip';
  if (!['none', 'flip', 'flip+shift'].includes(augment)) throw new Error(`augment must be none, flip or flip+shift, got ${augment}`);
  const out = options.out ?? DEFAULT_CLASSIFIER_PATH;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));

  const train = await loadFashionMnist({ split: 'train', resolution: 32, install: false, ...(options.trainLimit ? { limit: options.trainLimit, seed } : {}) });
  const test = await loadFashionMnist({ split: 'test', resolution: 32, install: false });
  const trainPixels = collectPixels(train);
  const trainLabels = classIds(train);
  const testPixels = collectPixels(test);
  const testLabels = classIds(test);
  log(`training on ${train.length} images, testing on ${test.length}; ${epochs} epochs, batch ${batchSize}, lr ${baseLr}, seed ${seed}, ${getNumThreads()} threads`);

  const g = new Generator(seed);
  const model = new FashionClassifier(g);
  model.dropout = options.dropout ?? 0.3;
  model.train();
  const params = model.parameters();
  const adam = new Adam(params, { lr: baseLr });
  const n = train.length;
  const stepsPerEpoch = Math.floor(n / batchSize);
  const totalSteps = epochs * stepsPerEpoch;
  const side = 32;
  const size = side * side;
  const batch = new Uint8Array(batchSize * size);
  const labels = new BigInt64Array(batchSize);
  const t0 = performance.now();
  let step = 0;
  for (let epoch = 0; epoch < epochs; epoch++) {
    const perm = scope(() => g.randperm(n).toArray());
    let lossSum = 0;
    let correct = 0;
    for (let b = 0; b < stepsPerEpoch; b++) {
      // Augmentation draws: shifts in [−2, 2] and flips, from the same generator.
      let draws: number[] = [];
      if (augment !== 'none') {
        draws = scope(() => g.randint(0, 5 * 5 * 2, [batchSize]).toArray());
      }
      for (let k = 0; k < batchSize; k++) {
        const i = perm[b * batchSize + k]!;
        const src = trainPixels.subarray(i * size, (i + 1) * size);
        const dst = batch.subarray(k * size, (k + 1) * size);
        if (augment !== 'none') {
          const r = draws[k]!;
          const shift = augment === 'flip+shift';
          augmentInto(src, dst, shift ? (r % 5) - 2 : 0, shift ? (Math.floor(r / 5) % 5) - 2 : 0, r >= 25, side);
        } else dst.set(src);
        labels[k] = BigInt(trainLabels[i]!);
      }
      // Cosine decay from baseLr to 0 over the run (after a short warm-up).
      const warm = Math.min(1, (step + 1) / 200);
      const lr = baseLr * warm * 0.5 * (1 + Math.cos((Math.PI * step) / totalSteps));
      const [loss, hits] = scope(() => {
        const x = preprocessForClassifier(tensor(batch, [batchSize, 1, side, side], { dtype: 'uint8' })).channelsLast();
        const y = tensor(labels, [batchSize, 1], { dtype: 'int64' });
        const logits = model.forward(x, g);
        const nll = F.logSoftmax(logits, 1).gather(1, y).mean().neg();
        nll.backward();
        const acc = logits.argmax(1).eq(y.squeeze(1)).sum().item();
        return [nll.item(), acc] as const;
      });
      adam.step(lr);
      zeroGrad(params);
      lossSum += loss;
      correct += hits;
      step++;
      if ((b + 1) % 100 === 0) {
        const el = (performance.now() - t0) / 1000;
        log(`epoch ${epoch + 1} step ${b + 1}/${stepsPerEpoch} loss ${(lossSum / (b + 1)).toFixed(4)} train-acc ${(correct / ((b + 1) * batchSize)).toFixed(4)} lr ${lr.toExponential(2)} ${el.toFixed(0)} s`);
      }
    }
    const acc = evaluateAccuracy(model, testPixels, testLabels);
    log(`epoch ${epoch + 1}: train loss ${(lossSum / stepsPerEpoch).toFixed(4)}, test accuracy ${(acc * 100).toFixed(2)}%, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  const trainSeconds = (performance.now() - t0) / 1000;
  model.eval();
  const testAccuracy = evaluateAccuracy(model, testPixels, testLabels);
  const state = model.stateDict();
  const wsha = weightsSha256(state);
  const metadata: Record<string, string> = {
    format: CLASSIFIER_FORMAT,
    architecture: CLASSIFIER_ARCHITECTURE,
    description: 'Fashion-MNIST CNN classifier; features = fc1 after ReLU (128-d), for Fréchet classifier distance and KID',
    preprocessing: CLASSIFIER_PREPROCESSING,
    input: 'uint8 [N,1,32,32] (Fashion-MNIST 28x28 padded by 2 px of 0)',
    feature_layer: 'fc1 (post-ReLU)',
    feature_dim: '128',
    classes: 'T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot',
    test_accuracy: testAccuracy.toFixed(4),
    test_set: `Fashion-MNIST t10k (${test.length} images) from ${FASHION_MNIST_DIR}`,
    train_images: String(train.length),
    seed: String(seed),
    epochs: String(epochs),
    batch_size: String(batchSize),
    optimizer: `adam lr ${baseLr} cosine, 200-step warm-up`,
    augmentation: { none: 'none', flip: 'random horizontal flip', 'flip+shift': 'random horizontal flip, random shift ±2 px (zero fill)' }[augment],
    dropout: String(model.dropout),
    train_seconds: trainSeconds.toFixed(1),
    threads: String(getNumThreads()),
    weights_sha256: wsha,
    created: new Date().toISOString(),
  };
  writeSafetensors(out, state, metadata);
  const fileSha256 = createHash('sha256').update(readFileSync(out)).digest('hex');
  const result = { testAccuracy, trainSeconds, parameters: model.parameterCount(), path: out, weightsSha256: wsha, fileSha256 };
  adam.dispose();
  model.dispose();
  return result;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      epochs: { type: 'string' },
      seed: { type: 'string' },
      batch: { type: 'string' },
      lr: { type: 'string' },
      threads: { type: 'string' },
      out: { type: 'string' },
      augment: { type: 'string' },
      dropout: { type: 'string' },
      'train-limit': { type: 'string' },
    },
  });
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  setNumThreads(num(values.threads) ?? availableParallelism());
  const opts: TrainClassifierOptions = {};
  if (values.augment) opts.augment = values.augment as Augment;
  if (values.dropout) opts.dropout = Number(values.dropout);
  for (const [k, v] of [['epochs', num(values.epochs)], ['seed', num(values.seed)], ['batchSize', num(values.batch)], ['lr', num(values.lr)], ['trainLimit', num(values['train-limit'])]] as const)
    if (v !== undefined) (opts as Record<string, unknown>)[k] = v;
  if (values.out) opts.out = values.out;
  const r = await trainClassifier(opts);
  console.log(JSON.stringify(r, null, 2));
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
