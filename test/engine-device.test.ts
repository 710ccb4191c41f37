// The build kind and the device: what `info` says about CUDA (a CPU build, a
// CUDA build without a GPU, or the GPUs it sees), the error for a device the
// build cannot use, and, on PD_TEST_DEVICE (cpu by default, cuda on a GPU
// machine: scripts/gpu-check.sh), that a seed draws the same numbers there as
// on the CPU, that a training step's gradients match the CPU's, and the GPU
// memory figures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors } from '../src/io/safetensors.js';
import { createNetwork, parseNetworkConfig } from '../src/networks/config.js';
import {
  F, Generator, cudaAvailable, cudaBuild, cudaDeviceCount, cudaDevices, cudaMemoryStats, engineInfo, ones, resetCudaPeakMemory, resolveDevice, scope,
  synchronize, zeroGrad, type Tensor,
} from '../src/tensor/index.js';
import { collectiveBackends } from '../src/tensor/collectives.js';
import { REFERENCE_DIR } from './helpers/reference.js';
import { TEST_DEVICE, onDevice } from './helpers/device.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

test('info names the build kind and the GPUs (or why there are none)', () => {
  const r = spawnSync(process.execPath, [MAIN, 'info', '--threads', '1'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n');
  const cuda = lines.filter((l) => l.startsWith('cuda: '));
  assert.equal(cuda.length, 1, r.stdout);
  if (!cudaBuild()) {
    assert.match(cuda[0]!, /^cuda: no \(CPU build/);
    assert.equal(engineInfo().cuda, null);
  } else if (!cudaAvailable()) {
    assert.match(cuda[0]!, /^cuda: CUDA build \(CUDA [\d.]+\), no device: \S/);
  } else {
    assert.match(cuda[0]!, new RegExp(`^cuda: CUDA build \\(CUDA [\\d.]+\\), ${cudaDeviceCount()} device\\(s\\)`));
    const listed = lines.filter((l) => /^ {2}cuda:\d+ /.test(l));
    assert.equal(listed.length, cudaDeviceCount(), r.stdout);
  }
  const backends = lines.find((l) => l.startsWith('multi-process training (c10d): '));
  assert.ok(backends, r.stdout);
  for (const b of collectiveBackends()) assert.ok(backends.includes(b), backends);
});

test('a CUDA device the build cannot use is a clear error', () => {
  if (cudaAvailable()) {
    assert.equal(resolveDevice('cuda'), 'cuda');
    assert.throws(() => resolveDevice(`cuda:${cudaDeviceCount()}`), /does not exist: \d+ GPU\(s\) visible/);
    return;
  }
  assert.throws(() => resolveDevice('cuda'), cudaBuild() ? /no GPU is visible: the addon is a CUDA build \(libtorch [\d.]+, CUDA [\d.]+\) and CUDA says: \S/ : /the addon is a CPU build/);
  assert.throws(() => resolveDevice('cuda:1'), cudaBuild() ? /is a CUDA build/ : /is a CPU build/);
  assert.equal(resolveDevice('auto'), 'cpu');
  assert.deepEqual(cudaDevices(), []);
});

test(`a seed draws the same numbers on ${TEST_DEVICE} as on the CPU`, () => {
  scope(() => {
    const cpu = new Generator(123).randn([2, 3, 8, 8]);
    const dev = new Generator(123).randn([2, 3, 8, 8], { device: TEST_DEVICE });
    assert.equal(dev.device.replace(/^cuda:0$/, 'cuda'), TEST_DEVICE.replace(/^cuda:0$/, 'cuda'));
    assert.deepEqual(dev.toArray(), cpu.toArray());
    const perm = new Generator(5).randperm(100, { device: TEST_DEVICE });
    assert.deepEqual(perm.toArray(), new Generator(5).randperm(100).toArray());
  });
});

// On a GPU the mask comes from the device's generator, reseeded from ours (native/ops_nn.cc): still fixed by
// the generator's state, not equal to the CPU's mask.
test(`dropout on ${TEST_DEVICE}: the generator's state fixes the mask, the kept share is 1 − p, kept values are scaled by 1/(1 − p)`, () => {
  scope(() => {
    const p = 0.25;
    const x = ones([16, 32, 16, 16], { device: TEST_DEVICE });
    const g = new Generator(7);
    const a = F.dropout(x, p, g).toArray() as number[];
    const second = F.dropout(x, p, g).toArray() as number[];
    const again = F.dropout(x, p, new Generator(7)).toArray() as number[];
    assert.deepEqual(again, a, 'the same seed gave another mask');
    assert.notDeepEqual(second, a, 'the next draw from the generator repeated the mask');
    const kept = a.filter((v) => v !== 0);
    assert.ok(kept.every((v) => Math.abs(v - 1 / (1 - p)) < 1e-6), 'a kept value is not 1/(1 − p)');
    const share = kept.length / a.length; // 131072 draws: the share's standard deviation is 0.0012
    assert.ok(Math.abs(share - (1 - p)) < 0.01, `kept share ${share}, expected ${1 - p}`);
  });
});

test(`GPU memory figures and synchronisation on ${TEST_DEVICE}`, () => {
  synchronize(TEST_DEVICE);
  if (TEST_DEVICE === 'cpu') {
    assert.equal(cudaMemoryStats('cpu'), null);
    return;
  }
  resetCudaPeakMemory(TEST_DEVICE);
  scope(() => {
    const t = new Generator(0).randn([1024, 1024], { device: TEST_DEVICE });
    synchronize(TEST_DEVICE);
    const m = cudaMemoryStats(TEST_DEVICE);
    assert.ok(m, 'this CUDA build has no memory statistics (built without the CUDA runtime headers)');
    assert.ok(m.allocated >= t.numel * 4 && m.peakAllocated >= m.allocated && m.reserved >= m.allocated, JSON.stringify(m));
  });
});

const REF_CASE = join(REFERENCE_DIR, 'net_ddpmpp.safetensors');
test(`a training step's gradients on ${TEST_DEVICE} match the CPU's (fp32, 1e-4 relative)`, { skip: existsSync(REF_CASE) ? false : `no reference vectors at ${REFERENCE_DIR}` }, () => {
  const { tensors, metadata } = readSafetensors(REF_CASE);
  const config = parseNetworkConfig(JSON.parse(metadata.config!));
  const grads = (device: typeof TEST_DEVICE): Float64Array[] => {
    const net = createNetwork(config, { initialize: false });
    try {
      const params = new Map<string, Tensor>();
      for (const [k, v] of tensors) if (k.startsWith('param.')) params.set(k.slice('param.'.length), v);
      net.loadStateDict(params, { strict: true });
      net.to({ device }).train();
      const put = (t: Tensor) => (device === 'cpu' ? t : onDevice(t));
      scope(() => {
        const D = net.forward(put(tensors.get('in.patch_x')!), put(tensors.get('in.sigma')!), put(tensors.get('in.patch_x_pos')!), null);
        D.square().mean().backward();
      });
      const out = net.parameters().map((p) => Float64Array.from(p.grad!.data() as Float32Array));
      zeroGrad(net.parameters());
      return out;
    } finally {
      net.dispose();
    }
  };
  const cpu = grads('cpu');
  const dev = grads(TEST_DEVICE);
  let num = 0;
  let den = 0;
  for (let i = 0; i < cpu.length; i++)
    for (let j = 0; j < cpu[i]!.length; j++) {
      num += (dev[i]![j]! - cpu[i]![j]!) ** 2;
      den += cpu[i]![j]! ** 2;
    }
  const rel = Math.sqrt(num / den);
  assert.ok(den > 0);
  assert.ok(rel < 1e-4, `gradient relative error ${rel} on ${TEST_DEVICE}`);
});
