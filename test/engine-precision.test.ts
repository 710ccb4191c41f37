// Mixed precision and memory format (src/nn/precision.ts, Preconditioner.setCompute):
// bf16 runs the convolutions and matrix products in bfloat16 and gives the
// float32 result to bf16 accuracy (against the official reference vectors),
// group norms compute in float32, gradients reach the float32 weights in
// float32; fp16 runs the image path in float16 as the official use_fp16
// (group norms too, with float16 weight and bias), the embedding path in
// float32, and gives the float32 result to fp16 accuracy; channels-last gives
// the NCHW result to float32 rounding.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors } from '../src/io/safetensors.js';
import { createNetwork, parseNetworkConfig } from '../src/networks/config.js';
import { Conv2d } from '../src/nn/conv2d.js';
import { GroupNorm } from '../src/nn/group-norm.js';
import { Linear } from '../src/nn/linear.js';
import { applyPrecision, checkPrecisionSupport, cpuFloat16Kernels, groupNormInFloat32, matmulDtype, unetInputDtype, PRECISIONS } from '../src/nn/precision.js';
import { UNetBlock } from '../src/nn/unet-block.js';
import { F, Generator, engineInfo, noGrad, scope, type Tensor } from '../src/tensor/index.js';
import { REFERENCE_DIR } from './helpers/reference.js';
import { TEST_DEVICE, onDevice } from './helpers/device.js';

const skip = existsSync(join(REFERENCE_DIR, 'cases.json')) ? false : `reference vectors not found in ${REFERENCE_DIR}`;

function relErr(out: Tensor, ref: Tensor): number {
  return scope(() => out.sub(ref).norm().item() / ref.norm().item());
}

function loadReference(name: string) {
  const { tensors, metadata } = readSafetensors(join(REFERENCE_DIR, `${name}.safetensors`));
  const net = createNetwork(parseNetworkConfig(JSON.parse(metadata.config!)), { initialize: false });
  const params = new Map<string, Tensor>();
  for (const [k, v] of tensors) if (k.startsWith('param.')) params.set(k.slice('param.'.length), v);
  net.loadStateDict(params, { strict: true });
  net.eval();
  // On PD_TEST_DEVICE (default cpu; scripts/gpu-check.sh: cuda): the network and the vectors.
  net.to({ device: TEST_DEVICE });
  return { net, t: new Map([...tensors].map(([k, v]) => [k, onDevice(v)] as const)) };
}

describe('layers under bf16', () => {
  const g = new Generator(3);
  test('Conv2d and Linear compute in bfloat16 from float32 input and weights; fp32 restores float32', () => {
    const conv = new Conv2d(4, 8, 3, { generator: g });
    const lin = new Linear(6, 5, { generator: g });
    const x = g.randn([2, 4, 8, 8]);
    const v = g.randn([3, 6]);
    applyPrecision(conv, 'bf16');
    applyPrecision(lin, 'bf16');
    noGrad(() => {
      const y = conv.forward(x);
      assert.equal(y.dtype, 'bfloat16');
      assert.equal(lin.forward(v).dtype, 'bfloat16');
      applyPrecision(conv, 'fp32');
      const y32 = conv.forward(x);
      assert.equal(y32.dtype, 'float32');
      const e = relErr(y.float(), y32);
      assert.ok(e > 0 && e < 2e-2, `bf16 conv relative error ${e}`);
    });
    assert.equal(conv.weight!.dtype, 'float32', 'the weights themselves stay float32');
  });

  test('gradients reach the float32 weights in float32', () => {
    const conv = new Conv2d(4, 4, 3, { generator: g });
    applyPrecision(conv, 'bf16');
    for (const p of conv.parameters()) p.requiresGrad_();
    conv.forward(g.randn([2, 4, 8, 8])).float().square().sum().backward();
    assert.equal(conv.weight!.grad!.dtype, 'float32');
    assert.ok(conv.weight!.grad!.abs().sum().item() > 0);
  });

  test('GroupNorm normalises bfloat16 input in float32', () => {
    const gn = new GroupNorm(8);
    applyPrecision(gn, 'bf16');
    const x = g.randn([2, 8, 4, 4]).mul(3).add(1);
    noGrad(() => {
      const y = gn.forward(x.to('bfloat16'));
      assert.equal(y.dtype, 'float32');
      const ref = new GroupNorm(8).forward(x.to('bfloat16').float());
      assert.equal(y.sub(ref).abs().amax().item(), 0);
    });
  });
});

/** Debian's libtorch 1.13 has no float16 convolutions (nor dropout draws) on the CPU, where these layers run. */
const noFloat16 = cpuFloat16Kernels() ? false : 'this libtorch has no float16 CPU kernels (1.13)';

describe('layers under fp16', () => {
  const g = new Generator(4);
  test('the casting rules of each precision', () => {
    assert.deepEqual(PRECISIONS, ['fp32', 'bf16', 'fp16']);
    assert.deepEqual(PRECISIONS.map(matmulDtype), [null, 'bfloat16', null], 'fp16 computes in the input dtype (float16 image path, float32 embeddings)');
    assert.deepEqual(PRECISIONS.map(unetInputDtype), [null, null, 'float16'], 'only fp16 casts the UNet input down');
    assert.deepEqual(PRECISIONS.map(groupNormInFloat32), [false, true, false], 'fp16 normalises in float16, as the official GroupNorm');
  });

  test('Conv2d runs float16 input in float16; Linear keeps float32 input in float32', { skip: noFloat16 }, () => {
    const conv = new Conv2d(4, 8, 3, { generator: g, down: true });
    const lin = new Linear(6, 5, { generator: g });
    applyPrecision(conv, 'fp16');
    applyPrecision(lin, 'fp16');
    const x = g.randn([2, 4, 8, 8]);
    noGrad(() => {
      const y = conv.forward(x.to('float16'));
      assert.equal(y.dtype, 'float16');
      assert.equal(lin.forward(g.randn([3, 6])).dtype, 'float32');
      applyPrecision(conv, 'fp32');
      const e = relErr(y.float(), conv.forward(x));
      assert.ok(e > 0 && e < 3e-3, `fp16 conv relative error ${e}`);
    });
    assert.equal(conv.weight!.dtype, 'float32');
  });

  test('GroupNorm normalises float16 input in float16 with float16 weight and bias (as the official use_fp16), gradients float32', { skip: noFloat16 }, () => {
    const gn = new GroupNorm(8);
    noGrad(() => {
      gn.weight.copy_(g.randn([8]));
      gn.bias.copy_(g.randn([8]));
    });
    applyPrecision(gn, 'fp16');
    const x = g.randn([2, 8, 4, 4]).mul(3).add(1).to('float16');
    noGrad(() => {
      const y = gn.forward(x);
      assert.equal(y.dtype, 'float16');
      const ref = F.groupNorm(x, gn.numGroups, gn.weight.to('float16'), gn.bias.to('float16'), gn.eps);
      assert.equal(y.float().sub(ref.float()).abs().amax().item(), 0);
    });
    for (const p of gn.parameters()) p.requiresGrad_();
    gn.forward(x).float().square().sum().backward();
    assert.equal(gn.weight.grad!.dtype, 'float32');
    assert.ok(gn.weight.grad!.abs().sum().item() > 0);
  });

  test('a UNet block keeps its image path in float16 and takes a float32 embedding', { skip: noFloat16 }, () => {
    const block = new UNetBlock({ inChannels: 8, outChannels: 16, embChannels: 12, attention: true, channelsPerHead: 8, dropout: 0.2, generator: g });
    applyPrecision(block, 'fp16');
    for (const p of block.parameters()) p.requiresGrad_();
    assert.ok(block.training, 'dropout runs (in float16)');
    const x = g.randn([2, 8, 8, 8]).to('float16').requiresGrad_();
    const y = block.forward(x, g.randn([2, 12]));
    assert.equal(y.dtype, 'float16');
    y.float().sum().backward();
    assert.equal(x.grad!.dtype, 'float16');
    for (const [name, p] of block.namedParameters()) assert.equal(p.grad?.dtype, 'float32', `${name}: gradient dtype`);
  });
});

describe(`Patch_EDMPrecond compute modes against the official reference (on ${TEST_DEVICE})`, { skip }, () => {
  for (const name of ['net_ddpmpp', 'net_ncsnpp', 'net_adm'] as const) {
    test(`${name}: bf16 and fp16 within their accuracy, channels-last within float32 rounding, all float32 out`, () => {
      const { net, t } = loadReference(name);
      try {
        noGrad(() => {
          const ref = t.get('out.D')!;
          const run = () => net.forward(t.get('in.x')!, t.get('in.sigma')!, t.get('in.x_pos')!);
          net.setCompute({ precision: 'bf16' });
          const dBf16 = run();
          assert.equal(dBf16.dtype, 'float32');
          const eBf16 = relErr(dBf16, ref);
          assert.ok(eBf16 < 3e-2, `bf16 relative error ${eBf16}`);
          assert.ok(eBf16 > 1e-6, 'bf16 mode must actually run in bf16');
          net.setCompute({ precision: 'fp32', channelsLast: true });
          const eCl = relErr(run(), ref);
          assert.ok(eCl < 1e-4, `channels-last relative error ${eCl}`);
          net.setCompute({ precision: 'bf16', channelsLast: true });
          assert.ok(relErr(run(), ref) < 3e-2);
          // fp16: measured 5.6e-4–6.5e-4 on the three networks (libtorch 2.13, CPU); 1.13 has no float16 CPU kernels.
          if (TEST_DEVICE.startsWith('cpu') && noFloat16) return;
          net.setCompute({ precision: 'fp16', channelsLast: false });
          const dFp16 = run();
          assert.equal(dFp16.dtype, 'float32');
          const eFp16 = relErr(dFp16, ref);
          assert.ok(eFp16 < 3e-3, `fp16 relative error ${eFp16}`);
          assert.ok(eFp16 > 1e-6, 'fp16 mode must actually run in fp16');
          net.setCompute({ precision: 'fp16', channelsLast: true });
          assert.ok(relErr(run(), ref) < 3e-3);
        });
      } finally {
        net.dispose();
      }
    });
  }
});

test('fp16 is refused on a CPU without float16 arithmetic, with the way out named; allowed on CUDA', () => {
  const e = engineInfo();
  const saved = process.env.PD_FP16_EMULATED;
  delete process.env.PD_FP16_EMULATED;
  try {
    checkPrecisionSupport('fp16', 'cuda');
    checkPrecisionSupport('fp16', 'cuda:1');
    if (!cpuFloat16Kernels()) {
      // libtorch 1.13: no float16 CPU kernels at all, so not even PD_FP16_EMULATED can run it.
      process.env.PD_FP16_EMULATED = '1';
      assert.throws(() => checkPrecisionSupport('fp16', 'cpu'), /--precision fp16: this libtorch \(1\.[\d.]+\) has no float16 kernels on the CPU.*train on a GPU, or use --precision fp32/s);
      return;
    }
    if (e.avx512Fp16 || e.amxFp16) checkPrecisionSupport('fp16', 'cpu');
    else assert.throws(() => checkPrecisionSupport('fp16', 'cpu'), /--precision fp16: .*no float16 arithmetic.*GPUs without bfloat16.*--precision fp32.*PD_FP16_EMULATED=1/s);
    process.env.PD_FP16_EMULATED = '1';
    checkPrecisionSupport('fp16', 'cpu');
  } finally {
    if (saved === undefined) delete process.env.PD_FP16_EMULATED;
    else process.env.PD_FP16_EMULATED = saved;
  }
});

test('bf16 is refused on a CPU without bfloat16 arithmetic, with the way out named', () => {
  const e = engineInfo();
  const saved = process.env.PD_BF16_EMULATED;
  delete process.env.PD_BF16_EMULATED;
  try {
    checkPrecisionSupport('fp32', 'cpu');
    checkPrecisionSupport('bf16', 'cuda');
    if (e.avx512Bf16 || e.amxBf16) checkPrecisionSupport('bf16', 'cpu');
    else assert.throws(() => checkPrecisionSupport('bf16', 'cpu'), /no bfloat16 arithmetic.*--precision fp32.*PD_BF16_EMULATED=1/s);
    process.env.PD_BF16_EMULATED = '1';
    checkPrecisionSupport('bf16', 'cpu');
  } finally {
    if (saved === undefined) delete process.env.PD_BF16_EMULATED;
    else process.env.PD_BF16_EMULATED = saved;
  }
});
