// Dropout with a 1-byte mask (native/dropout.cc) against the composite
// libtorch ops it replaces, x · (mask / (1 − p)) with a float mask drawn from
// the same generator state: the same values and gradients bit for bit, in
// every float dtype, the same draws (so reference parity and exact resume
// hold), and only the 1-byte mask kept for backward. On the CPU always, and
// on CUDA too whenever a GPU is visible.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpuFloat16Kernels } from '../src/nn/precision.js';
import { F, Generator, cpuCacheStats, cudaAvailable, cudaMemoryStats, scope, synchronize, type Device, type DType, type Tensor } from '../src/tensor/index.js';

const DEVICES: Device[] = ['cpu', ...(cudaAvailable() ? (['cuda'] as Device[]) : [])];
const DTYPES: DType[] = ['float32', 'float64', 'float16', 'bfloat16'];

/** The values' bit patterns are equal (so −0 ≠ 0; float16/bfloat16 compare through their exact float32 values). */
function sameBits(a: Tensor, b: Tensor): boolean {
  const x = a.data();
  const y = b.data();
  return Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));
}

/** The composite formula the fused op replaces: the float mask, divided by 1 − p in x's dtype, times x. */
function composite(x: Tensor, p: number, g: Generator): Tensor {
  const keep = F.dropoutMask(x, p, g, x.dtype);
  return x.mul(keep.div(1 - p));
}

for (const device of DEVICES) {
  describe(`dropout on ${device}`, () => {
    for (const dtype of DTYPES) {
      // Debian's libtorch 1.13 cannot draw a float16 mask on the CPU (no bernoulli_ for Half there).
      const skip = dtype === 'float16' && device === 'cpu' && !cpuFloat16Kernels() ? 'this libtorch has no float16 CPU kernels (1.13)' : false;
      test(`${dtype}: values and gradients equal the composite ops bit for bit, the generator advances alike`, { skip }, () => {
        scope(() => {
          const data = new Generator(11);
          for (const [p, shape] of [[0.1, [2, 8, 16, 16]], [0.13, [3, 5, 7, 9]], [0.5, [4, 33]], [0.77, [1000]]] as const) {
            const x0 = data.randn([...shape]).mul(3).to({ dtype, device });
            const upstream = data.randn([...shape]).to({ dtype, device });
            const seed = 1000 + Math.round(p * 100);
            const g1 = new Generator(seed);
            const g2 = new Generator(seed);

            const x1 = x0.detach().requiresGrad_();
            const fused = F.dropout(x1, p, g1);
            const x2 = x0.detach().requiresGrad_();
            const ref = composite(x2, p, g2);
            assert.equal(fused.dtype, dtype);
            assert.equal(fused.device, ref.device);
            assert.ok(sameBits(fused, ref), `${dtype} p=${p}: the fused values differ from x·(mask/(1−p))`);
            assert.deepEqual(g1.getState(), g2.getState(), 'the generator must advance as the composite draw advances it');

            fused.backward(upstream);
            ref.backward(upstream);
            assert.ok(sameBits(x1.grad!, x2.grad!), `${dtype} p=${p}: the fused gradient differs from the composite one`);

            // About p of the values are dropped (a wrong mask dtype or probability shows here).
            const kept = fused.ne(0).float().mean().item();
            const n = x0.numel;
            assert.ok(Math.abs(kept - (1 - p)) < 5 * Math.sqrt((p * (1 - p)) / n) + 1e-9, `kept share ${kept} for p=${p}`);
          }
        });
      });
    }

    test('the bool mask holds the same draws as a float one; channels-last input gives the NCHW result', () => {
      scope(() => {
        const x = new Generator(5).randn([2, 6, 10, 10]).to({ device });
        const maskBool = F.dropoutMask(x, 0.3, new Generator(9));
        const maskFloat = F.dropoutMask(x, 0.3, new Generator(9), 'float32');
        assert.equal(maskBool.dtype, 'bool');
        assert.ok(sameBits(maskBool.float(), maskFloat));
        const nchw = F.dropout(x, 0.3, new Generator(9));
        const cl = F.dropout(x.channelsLast(), 0.3, new Generator(9));
        assert.ok(sameBits(cl.contiguous(), nchw), 'the mask follows the logical (NCHW) order whatever the memory layout');
      });
    });

    test('p = 0 returns the input; p outside [0, 1) and integer input are refused', () => {
      scope(() => {
        const x = new Generator(1).randn([4, 4]).to({ device });
        const g = new Generator(2);
        const before = g.getState();
        assert.ok(sameBits(F.dropout(x, 0, g), x));
        assert.deepEqual(g.getState(), before, 'p = 0 draws nothing');
        assert.throws(() => F.dropout(x, 1, g), /dropout probability must be in \[0, 1\), got 1/);
        assert.throws(() => F.dropout(x, -0.1, g), /dropout probability/);
        assert.throws(() => F.dropout(x.to('int64'), 0.5, g), /floating-point/);
      });
    });
  });
}

/** Bytes of tensor storage in use on `device` now (the CPU allocator's count, or CUDA's caching allocator's), null where the build cannot tell. */
function allocated(device: Device): number | null {
  if (device === 'cpu') return cpuCacheStats().enabled ? cpuCacheStats().allocatedBytes : null;
  synchronize(device);
  return cudaMemoryStats(device)?.allocated ?? null;
}

for (const device of DEVICES) {
  test(`backward keeps the 1-byte mask, not a float one (${device}, allocator figures)`, { skip: allocated(device) === null ? `no allocator figures on ${device}` : false }, () => {
    const n = 1 << 20;
    const x = new Generator(3).randn([n]).to({ device }).requiresGrad_();
    const g = new Generator(4);
    const measure = (f: () => Tensor): number => {
      const before = allocated(device)!;
      const y = f();
      const held = allocated(device)! - before;
      y.dispose();
      return held;
    };
    // What stays allocated while the output (and with it the graph) lives.
    const fused = measure(() => F.dropout(x, 0.1, g));
    const reference = measure(() => composite(x, 0.1, g));
    const floatBytes = 4 * n;
    // CUDA's caching allocator rounds each block up to 512 bytes: within a few KiB either way.
    assert.ok(fused >= floatBytes + n && fused < floatBytes + n + 8192, `fused dropout holds ${fused} bytes: expected the float32 output (${floatBytes}) and a 1-byte mask (${n})`);
    assert.ok(reference >= 2 * floatBytes, `the composite holds ${reference} bytes (output and float mask)`);
    // Nothing is left once the output is gone.
    const after = allocated(device);
    const y = F.dropout(x, 0.1, g);
    y.dispose();
    assert.equal(allocated(device), after);
  });
}
