import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { inspectSafetensors } from '../src/io/safetensors.js';
import { scope, tensor } from '../src/tensor/index.js';
import {
  CLASSIFIER_ARCHITECTURE, CLASSIFIER_FORMAT, DEFAULT_CLASSIFIER_PATH, FashionClassifier, loadClassifier, preprocessForClassifier,
} from '../src/metrics/classifier.js';
import { FASHION_MNIST_DIR, readFashionMnistSplit } from '../src/data/fashion-mnist.js';
import { padImages } from '../src/data/resize.js';

const path = DEFAULT_CLASSIFIER_PATH;
const readme = join(dirname(path), 'README.md');

test('the shipped classifier file: format, names and shapes, size', () => {
  assert.ok(existsSync(path), `${path} is missing (node dist/src/metrics/train-classifier.js)`);
  assert.ok(statSync(path).size < 2 * 1024 * 1024, `file is ${statSync(path).size} bytes`);
  const { entries, metadata } = inspectSafetensors(path);
  assert.equal(metadata.format, CLASSIFIER_FORMAT);
  assert.equal(metadata.architecture, CLASSIFIER_ARCHITECTURE);
  for (const key of ['test_accuracy', 'seed', 'epochs', 'weights_sha256', 'preprocessing', 'train_seconds']) assert.ok(metadata[key], `metadata ${key}`);
  assert.ok(Number(metadata.test_accuracy) >= 0.9, `stated test accuracy ${metadata.test_accuracy}`);
  const model = new FashionClassifier();
  try {
    const own = model.stateDict();
    assert.deepEqual([...entries.keys()].sort(), [...own.keys()].sort());
    for (const [name, t] of own) {
      assert.deepEqual(entries.get(name)!.shape, [...t.shape], name);
      assert.equal(entries.get(name)!.dtype, 'float32', name);
    }
  } finally {
    model.dispose();
  }
});

test('the sha256 of the file and of its weights are the ones models/README.md states', () => {
  const fileSha = createHash('sha256').update(readFileSync(path)).digest('hex');
  const net = loadClassifier(path);
  try {
    assert.equal(net.sha256, net.metadata.weights_sha256);
    const text = readFileSync(readme, 'utf8');
    assert.ok(text.includes(fileSha), `models/README.md does not state the file sha256 ${fileSha}`);
    assert.ok(text.includes(net.sha256), `models/README.md does not state the weights sha256 ${net.sha256}`);
    assert.ok(text.includes(net.metadata.test_accuracy!), 'models/README.md does not state the test accuracy');
  } finally {
    net.dispose();
  }
});

test('a corrupted weights file is refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pd-classifier-'));
  try {
    const bytes = Buffer.from(readFileSync(path));
    bytes[bytes.length - 100] = bytes[bytes.length - 100]! ^ 0x40; // inside the last tensor's data
    const bad = join(dir, 'bad.safetensors');
    writeFileSync(bad, bytes);
    assert.throws(() => loadClassifier(bad), /does not match the recorded/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('preprocessing: raw 28×28 equals padded 32×32, grey-as-RGB equals grey, output in [−1, 1]', () => {
  scope(() => {
    const raw = Uint8Array.from({ length: 2 * 28 * 28 }, (_, k) => (k * 37) % 256);
    const padded = padImages(raw, 2, 1, 28, 32, 0);
    const a = preprocessForClassifier(tensor(raw, [2, 1, 28, 28], { dtype: 'uint8' }));
    const b = preprocessForClassifier(tensor(padded, [2, 1, 32, 32], { dtype: 'uint8' }));
    assert.deepEqual(a.shape, [2, 1, 32, 32]);
    assert.equal(a.sub(b).abs().amax().item(), 0);
    assert.equal(b.amin().item(), -1);
    assert.ok(b.amax().item() <= 1);
    const rgb = tensor(padded, [2, 1, 32, 32], { dtype: 'uint8' }).expand(2, 3, 32, 32).contiguous();
    assert.ok(preprocessForClassifier(rgb).sub(b).abs().amax().item() < 1e-5);
    assert.deepEqual(preprocessForClassifier(tensor(new Uint8Array(64 * 64), [1, 1, 64, 64], { dtype: 'uint8' })).shape, [1, 1, 32, 32]);
  });
});

const haveData = existsSync(join(FASHION_MNIST_DIR, 't10k-images-idx3-ubyte.gz'));

test('reaches its stated accuracy on the real Fashion-MNIST test set', { skip: !haveData && `Fashion-MNIST not installed at ${FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)` }, async () => {
  const net = loadClassifier(path);
  try {
    const { images, labels } = await readFashionMnistSplit(FASHION_MNIST_DIR, 'test');
    const n = images.count; // all 10,000: a few seconds on the CPU
    let correct = 0;
    for (let s = 0; s < n; s += 1000) {
      const e = Math.min(n, s + 1000);
      // Raw 28×28 input: the classifier pads it to 32×32 itself.
      const pred = scope(() => net.predict(tensor(images.pixels.subarray(s * 784, e * 784), [e - s, 1, 28, 28], { dtype: 'uint8' })));
      for (let k = 0; k < pred.length; k++) if (pred[k] === labels[s + k]) correct++;
    }
    const accuracy = correct / n;
    const stated = Number(net.metadata.test_accuracy);
    // Thread counts change float round-off; allow a handful of flipped predictions.
    assert.ok(accuracy >= stated - 0.001, `accuracy ${accuracy} below the stated ${stated}`);
    assert.ok(accuracy >= 0.9);
  } finally {
    net.dispose();
  }
});
