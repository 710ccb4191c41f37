// A small CNN classifier for Fashion-MNIST whose penultimate layer is the
// feature map for the "Fréchet classifier distance" and classifier KID (the
// dataset-specific analogue of FID, as dfaroughy/FID-MNIST's LeNet distance).
// Trained by train-classifier.ts and shipped as
// models/fashion-mnist-classifier.safetensors; always report its hash.
//
// Input: uint8 images [N, C, H, W]. 3 channels are turned into grey with the
// ITU-R 601 luma weights (as PIL convert('L')); 28×28 images (raw
// Fashion-MNIST) are padded with 2 black pixels per side to 32×32 (as the
// dataset layer's default); any other size is resized to 32×32 with
// antialiased bilinear; then x/127.5 − 1 ∈ [−1, 1].
//
// Architecture ('cnn3-fc128'):
//   conv1 3×3 1→32 (no bias) · bn1 · ReLU · maxpool 2   32→16
//   conv2 3×3 32→64 · bn2 · ReLU · maxpool 2            16→8
//   conv3 3×3 64→128 · bn3 · ReLU · maxpool 2            8→4
//   flatten 2048 · fc1 2048→128 · ReLU  ← features (128-d)
//   dropout 0.3 (training only) · fc2 128→10 (logits)
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Module } from '../nn/module.js';
import { readSafetensors } from '../io/safetensors.js';
import { F, Generator, noGrad, scope, tensor, type Device, type Tensor } from '../tensor/index.js';
import { BatchNorm2d, Conv2d, Linear } from './layers.js';
import { weightsSha256, type FeatureNetwork } from './feature-network.js';

/** The shipped Fashion-MNIST classifier's name, recorded with the statistics made with it. */
export const CLASSIFIER_NAME = 'fashion-mnist-classifier';
/** The `format` metadata of the classifier's weights file. */
export const CLASSIFIER_FORMAT = 'patch-diffusion/fashion-mnist-classifier';
/** The classifier's architecture: three conv blocks, then a 128-wide layer (the features) and 10 logits. */
export const CLASSIFIER_ARCHITECTURE = 'cnn3-fc128';
/** How images are prepared for the classifier, recorded with its statistics. */
export const CLASSIFIER_PREPROCESSING = 'grey(luma);28→32 pad 2 (else bilinear-antialias to 32);x/127.5-1';
/** The classifier's input side in pixels. */
export const CLASSIFIER_RESOLUTION = 32;
/** The width of its features (the FD and KID space). */
export const CLASSIFIER_FEATURE_DIM = 128;
/** Its classes: Fashion-MNIST's 10. */
export const CLASSIFIER_CLASSES = 10;

/** models/fashion-mnist-classifier.safetensors in the package (from dist/src/metrics/). */
export const DEFAULT_CLASSIFIER_PATH = fileURLToPath(new URL('../../../models/fashion-mnist-classifier.safetensors', import.meta.url));

/**
 * The small Fashion-MNIST CNN whose 128-wide penultimate layer is the feature space of `fd-classifier` and
 * `kid-classifier` (not comparable with FID).
 */
export class FashionClassifier extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly conv3: Conv2d;
  readonly bn3: BatchNorm2d;
  readonly fc1: Linear;
  readonly fc2: Linear;
  dropout = 0.3;

  /** Weights are He-normal from `generator` (zeros without one, for loading). */
  constructor(generator?: Generator) {
    super();
    const g = generator ? { generator } : {};
    this.conv1 = this.registerModule('conv1', new Conv2d(1, 32, 3, { padding: 1, bias: false, ...g }));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(32));
    this.conv2 = this.registerModule('conv2', new Conv2d(32, 64, 3, { padding: 1, bias: false, ...g }));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(64));
    this.conv3 = this.registerModule('conv3', new Conv2d(64, 128, 3, { padding: 1, bias: false, ...g }));
    this.bn3 = this.registerModule('bn3', new BatchNorm2d(128));
    this.fc1 = this.registerModule('fc1', new Linear(128 * 4 * 4, CLASSIFIER_FEATURE_DIM, g));
    this.fc2 = this.registerModule('fc2', new Linear(CLASSIFIER_FEATURE_DIM, CLASSIFIER_CLASSES, { ...g, gain: 1 }));
  }

  /** Penultimate-layer features [N, 128] of preprocessed input [N, 1, 32, 32] in [−1, 1]. */
  forwardFeatures(x: Tensor): Tensor {
    let h = F.maxPool2d(this.bn1.forward(this.conv1.forward(x)).relu(), 2);
    h = F.maxPool2d(this.bn2.forward(this.conv2.forward(h)).relu(), 2);
    h = F.maxPool2d(this.bn3.forward(this.conv3.forward(h)).relu(), 2);
    return this.fc1.forward(h.flatten(1)).relu();
  }

  /** Logits [N, 10]; `generator` drives dropout in training mode. */
  forward(x: Tensor, generator?: Generator): Tensor {
    let h = this.forwardFeatures(x);
    if (this.training && this.dropout > 0) {
      if (!generator) throw new Error('FashionClassifier.forward: training mode needs a generator for dropout');
      h = F.dropout(h, this.dropout, generator);
    }
    return this.fc2.forward(h);
  }
}

/**
 * uint8 images [N, C, H, W] → float [N, 1, 32, 32] in [−1, 1] (see the file
 * comment). The output lives on the input's device.
 */
export function preprocessForClassifier(images: Tensor): Tensor {
  if (images.ndim !== 4) throw new Error(`classifier: expected images [N, C, H, W], got [${images.shape}]`);
  const [, c, h, w] = images.shape as [number, number, number, number];
  if (c !== 1 && c !== 3) throw new Error(`classifier: images must have 1 or 3 channels, got ${c}`);
  return scope(() => {
    let x = images.float();
    if (c === 3) {
      const weights = tensor([0.299, 0.587, 0.114], [1, 3, 1, 1], { device: images.device });
      x = x.mul(weights).sum(1, true);
    }
    if (h === 28 && w === 28) x = F.pad(x, [2, 2, 2, 2], 'constant', 0);
    else if (h !== CLASSIFIER_RESOLUTION || w !== CLASSIFIER_RESOLUTION)
      x = F.interpolate(x, [CLASSIFIER_RESOLUTION, CLASSIFIER_RESOLUTION], 'bilinear-antialias').clamp(0, 255);
    return x.div(127.5).sub(1);
  });
}

/** The shipped classifier loaded as a feature network, with its logits and predictions too. */
export interface LoadedClassifier extends FeatureNetwork {
  readonly model: FashionClassifier;
  readonly path: string;
  readonly metadata: Record<string, string>;
  /** Logits [N, 10] of uint8 images. */
  logits(images: Tensor): Tensor;
  /** Predicted classes of uint8 images. */
  predict(images: Tensor): Int32Array;
}

/**
 * Loads the shipped (or a given) classifier file: checks the format, the
 * tensor names and shapes (strict) and the weights hash recorded in the
 * metadata (`weights_sha256`), then puts the network in eval mode.
 */
export function loadClassifier(path: string = DEFAULT_CLASSIFIER_PATH, options: { device?: Device } = {}): LoadedClassifier {
  if (!existsSync(path))
    throw new Error(`classifier weights not found at ${path}; train them with: node dist/src/metrics/train-classifier.js`);
  const { tensors, metadata } = readSafetensors(path);
  try {
    if (metadata.format !== CLASSIFIER_FORMAT)
      throw new Error(`${path} is not a Fashion-MNIST classifier file (metadata format ${JSON.stringify(metadata.format)}, expected '${CLASSIFIER_FORMAT}')`);
    if (metadata.architecture !== CLASSIFIER_ARCHITECTURE)
      throw new Error(`${path}: architecture ${JSON.stringify(metadata.architecture)} is not '${CLASSIFIER_ARCHITECTURE}'`);
    const sha256 = weightsSha256(tensors);
    if (metadata.weights_sha256 && metadata.weights_sha256 !== sha256)
      throw new Error(`${path}: weights hash ${sha256} does not match the recorded ${metadata.weights_sha256} (file corrupted?)`);
    const model = new FashionClassifier();
    model.loadStateDict(tensors);
    model.eval();
    if (options.device && options.device !== 'cpu') model.to({ device: options.device });
    return classifierNetwork(model, { path, sha256, metadata });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

/** Wraps a classifier (eval mode) as a FeatureNetwork. */
export function classifierNetwork(model: FashionClassifier, info: { path: string; sha256: string; metadata: Record<string, string> }): LoadedClassifier {
  const device = () => model.conv1.weight.device;
  const onDevice = (images: Tensor) => images.to({ device: device() });
  return {
    name: CLASSIFIER_NAME,
    sha256: info.sha256,
    dim: CLASSIFIER_FEATURE_DIM,
    preprocessing: CLASSIFIER_PREPROCESSING,
    model,
    path: info.path,
    metadata: info.metadata,
    features: (images) => noGrad(() => scope(() => model.forwardFeatures(preprocessForClassifier(onDevice(images))))),
    logits: (images) => noGrad(() => scope(() => model.forward(preprocessForClassifier(onDevice(images))))),
    predict: (images) =>
      noGrad(() =>
        scope(() => {
          const p = model.forward(preprocessForClassifier(onDevice(images))).argmax(1).to({ dtype: 'int32', device: 'cpu' });
          return p.data() as Int32Array;
        }),
      ),
    dispose: () => model.dispose(),
  };
}
