// The networks against the official implementation's outputs: the reference
// vectors in ../shared/reference (Patch_EDMPrecond with SongUNet DDPM++,
// NCSN++, DhariwalUNet and class-conditional DDPM++ at resolution 16, with
// randomly perturbed weights). Loading with strict names proves our state-dict
// names equal the official ones; matching D on full images and on 8×8 patches
// proves the forward pass.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors } from '../src/io/safetensors.js';
import { createNetwork, parseNetworkConfig, type NetworkConfig } from '../src/networks/config.js';
import { Preconditioner } from '../src/networks/precond.js';
import { full, noGrad, scope, zeros, zeroGrad, type Tensor } from '../src/tensor/index.js';
import { REFERENCE_DIR } from './helpers/reference.js';
import { TEST_DEVICE, onDevice } from './helpers/device.js';

const REF = REFERENCE_DIR;
const skip = existsSync(join(REF, 'cases.json')) ? false : `reference vectors not found in ${REF}`;
const CASES = ['net_ddpmpp', 'net_ncsnpp', 'net_adm', 'net_ddpmpp_cond'] as const;

function relErr(out: Tensor, ref: Tensor): number {
  assert.deepEqual([...out.shape], [...ref.shape], 'output shape');
  return scope(() => out.sub(ref).norm().item() / ref.norm().item());
}

interface Loaded {
  net: Preconditioner;
  t: Map<string, Tensor>;
  config: NetworkConfig;
  numParameters: number;
}
// On PD_TEST_DEVICE (default cpu): the network and every vector (test/helpers/device.ts).
function load(name: string): Loaded {
  const { tensors: onCpu, metadata } = readSafetensors(join(REF, `${name}.safetensors`));
  const tensors = new Map([...onCpu].map(([k, v]) => [k, onDevice(v)] as const));
  const config = parseNetworkConfig(JSON.parse(metadata.config!));
  const net = createNetwork(config, { initialize: false });
  const params = new Map<string, Tensor>();
  for (const [k, v] of tensors) if (k.startsWith('param.')) params.set(k.slice('param.'.length), v);
  net.loadStateDict(params, { strict: true });
  net.to({ device: TEST_DEVICE });
  net.eval();
  return { net, t: tensors, config, numParameters: Number(metadata.num_parameters) };
}

describe(`networks vs the official Patch_EDMPrecond (on ${TEST_DEVICE})`, { skip }, () => {
  const cases = skip ? {} : (JSON.parse(readFileSync(join(REF, 'cases.json'), 'utf8')) as Record<string, { num_parameters: number; config: NetworkConfig }>);

  for (const name of CASES) {
    test(`${name}: names, parameter count, full-image D and patch D`, () => {
      const { net, t, config, numParameters } = load(name);
      try {
        // Names: every official tensor loaded and none of ours left out (strict load above);
        // also check the reverse direction explicitly, buffers included.
        const ours = [...net.stateDict().keys()].sort();
        const theirs = [...t.keys()].filter((k) => k.startsWith('param.')).map((k) => k.slice(6)).sort();
        assert.deepEqual(ours, theirs);
        assert.ok(ours.every((k) => k.startsWith('model.')));
        assert.equal(net.parameterCount(), numParameters);
        assert.equal(net.parameterCount(), cases[name]!.num_parameters);
        assert.deepEqual(config, cases[name]!.config);

        const labels = t.get('in.class_labels') ?? null;
        noGrad(() => {
          const D = net.forward(t.get('in.x')!, t.get('in.sigma')!, t.get('in.x_pos')!, labels);
          const eFull = relErr(D, t.get('out.D')!);
          assert.ok(eFull < 1e-4, `full-image relative error ${eFull}`);
          const P = net.forward(t.get('in.patch_x')!, t.get('in.sigma')!, t.get('in.patch_x_pos')!, labels);
          const ePatch = relErr(P, t.get('out.patch_D')!);
          assert.ok(ePatch < 1e-4, `patch relative error ${ePatch}`);
        });
      } finally {
        net.dispose();
      }
    });
  }

  test('sigma as a number, 0-dim, [1], [N] and [N,1,1,1] all give the same D (0-dim broadcasts over the batch)', () => {
    const { net, t } = load('net_ddpmpp');
    try {
      noGrad(() =>
        scope(() => {
          const x = t.get('in.x')!;
          const pos = t.get('in.x_pos')!;
          const s0 = t.get('in.sigma')!.select(0, 1); // 0-dim
          const value = s0.item();
          const ref = net.forward(x, full([3], value, { device: TEST_DEVICE }), pos);
          for (const s of [value, s0, s0.reshape(1), s0.reshape(1, 1, 1, 1), full([3, 1, 1, 1], value, { device: TEST_DEVICE })]) {
            const D = net.forward(x, s, pos);
            assert.equal(D.sub(ref).abs().amax().item(), 0);
          }
          // Per-sample sigmas differ from the broadcast one.
          const perSample = net.forward(x, t.get('in.sigma')!, pos);
          assert.ok(perSample.sub(ref).abs().amax().item() > 1e-3);
        }),
      );
    } finally {
      net.dispose();
    }
  });

  test('float64 input (the sampler state) is cast to float32 and gives the float32 result', () => {
    const { net, t } = load('net_ncsnpp');
    try {
      noGrad(() =>
        scope(() => {
          const D32 = net.forward(t.get('in.x')!, t.get('in.sigma')!, t.get('in.x_pos')!);
          const D64 = net.forward(t.get('in.x')!.double(), t.get('in.sigma')!.double(), t.get('in.x_pos')!);
          assert.equal(D64.dtype, 'float32');
          assert.ok(relErr(D64, t.get('out.D')!) < 1e-4);
          assert.ok(relErr(D64, D32) < 1e-6);
        }),
      );
    } finally {
      net.dispose();
    }
  });

  test('conditional net: missing labels mean zero labels; wrong label width is an error', () => {
    const { net, t } = load('net_ddpmpp_cond');
    try {
      noGrad(() =>
        scope(() => {
          const x = t.get('in.x')!;
          const s = t.get('in.sigma')!;
          const pos = t.get('in.x_pos')!;
          const none = net.forward(x, s, pos);
          const zero1 = net.forward(x, s, pos, zeros([1, 10], { device: TEST_DEVICE }));
          const zeroN = net.forward(x, s, pos, zeros([3, 10], { device: TEST_DEVICE }));
          assert.equal(none.sub(zero1).abs().amax().item(), 0);
          assert.ok(none.sub(zeroN).abs().amax().item() < 1e-6);
          const cond = net.forward(x, s, pos, t.get('in.class_labels')!);
          assert.ok(cond.sub(none).abs().amax().item() > 1e-3, 'labels change the output');
          assert.throws(() => net.forward(x, s, pos, zeros([3, 9], { device: TEST_DEVICE })), /label_dim = 10/);
          assert.throws(() => net.forward(x, s, pos, zeros([2, 10], { device: TEST_DEVICE })), /1 or N = 3/);
        }),
      );
    } finally {
      net.dispose();
    }
  });

  test('gradients reach every parameter, finite and non-zero (perturbed reference weights)', () => {
    for (const name of CASES) {
      const { net, t } = load(name);
      try {
        net.train();
        scope(() => {
          const D = net.forward(t.get('in.patch_x')!, t.get('in.sigma')!, t.get('in.patch_x_pos')!, t.get('in.class_labels') ?? null);
          D.sum().backward();
        });
        for (const [pname, p] of net.namedParameters()) {
          const g = p.grad;
          assert.ok(g, `${name}: ${pname} has no gradient`);
          assert.ok(g.allFinite(), `${name}: ${pname} has a non-finite gradient`);
          assert.ok(g.abs().amax().item() > 0, `${name}: ${pname} has an all-zero gradient`);
          g.dispose();
        }
        zeroGrad(net.parameters());
      } finally {
        net.dispose();
      }
    }
  });
});
