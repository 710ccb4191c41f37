// A snapshot's metadata must match its tensors before a network is built
// from it: a few-kilobyte file that claims model_channels 65536 used to make
// `generate` allocate tens of gigabytes first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadSnapshotNetwork, minimumParameters } from '../src/model/load-network.js';
import { readNetworkSnapshot, saveNetworkSnapshot } from '../src/model/snapshot.js';
import { countParameters, parseNetworkConfig } from '../src/networks/config.js';
import { train } from '../src/train/train.js';
import { cleanup, durationForSteps, makeTempDir, tinyTrainRequest, writeShapeImages } from './helpers/train-fixtures.js';

test('metadata that asks for a larger network than the file holds is refused before building it', async () => {
  const tmp = makeTempDir('pd-meta-');
  try {
    const data = await writeShapeImages(join(tmp, 'data'), { count: 8, size: 16, channels: 1 });
    const run = await train(tinyTrainRequest(data, join(tmp, 'runs'), { duration: durationForSteps(1) }));
    const { info, weights } = readNetworkSnapshot(run!.lastSnapshot!);
    // The bound is a lower bound: the real network has at least that many parameters.
    const config = parseNetworkConfig(info.network);
    assert.ok(minimumParameters(config) <= countParameters(config));
    for (const channels of [1024, 65536]) {
      const forged = join(tmp, `forged-${channels}.safetensors`);
      saveNetworkSnapshot(forged, weights, { ...info, network: { ...info.network, model_channels: channels } });
      const started = Date.now();
      assert.throws(() => loadSnapshotNetwork(forged, 'cpu'), /its metadata describes a network of at least [\d,]+ parameters .* but the file holds [\d,]+ values/);
      assert.ok(Date.now() - started < 5000, 'refused at once, not after building');
    }
    for (const t of weights.values()) t.dispose();
  } finally {
    cleanup(tmp);
  }
});
