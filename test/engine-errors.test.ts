// Bad input never crashes the process and never gives a silent wrong value:
// it becomes a JS Error whose message names the op and describes the
// arguments (shapes and dtypes), or a TypeError for arguments of the wrong kind.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { F, Generator, cat, ones, resolveDevice, stack, tensor, zeros, type Tensor } from '../src/tensor/index.js';
import { native } from '../src/tensor/native.js';

/** The addon without its TypeScript signatures, for the calls that pass wrong kinds on purpose. */
const untyped = native as unknown as Record<string, (...args: unknown[]) => unknown>;

/** Asserts `fn` throws an instance of `kind` whose message matches every pattern. */
function throwsWith(fn: () => unknown, kind: ErrorConstructor, ...patterns: (RegExp | string)[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof kind, `expected a ${kind.name}, got ${e instanceof Error ? e.constructor.name : typeof e}: ${String(e)}`);
    const message = (e as Error).message;
    for (const p of patterns) {
      const ok = typeof p === 'string' ? message.includes(p) : p.test(message);
      assert.ok(ok, `message ${JSON.stringify(message)} does not mention ${String(p)}`);
    }
    return true;
  });
}

describe('shape errors name the op and the shapes', () => {
  it('matmul / mm / bmm / linear with mismatched inner dimensions', () => {
    throwsWith(() => ones([2, 3]).matmul(ones([4, 5])), Error, 'matmul', '[2, 3]', '[4, 5]', /cannot be multiplied/);
    throwsWith(() => ones([2, 3]).mm(ones([2, 3])), Error, 'mm', '[2, 3]');
    throwsWith(() => ones([2, 3, 4]).bmm(ones([3, 4, 5])), Error, 'bmm', '[2, 3, 4]', '[3, 4, 5]');
    throwsWith(() => F.linear(ones([2, 3]), ones([4, 5])), Error, 'linear', '[2, 3]', '[4, 5]');
  });

  it('conv2d with the wrong number of input channels, groups that do not divide, a bad bias', () => {
    throwsWith(() => F.conv2d(ones([1, 4, 5, 5]), ones([8, 3, 3, 3])), Error, 'conv2d', '[1, 4, 5, 5]', '[8, 3, 3, 3]', /channels/);
    throwsWith(() => F.conv2d(ones([1, 4, 5, 5]), ones([3, 1, 3, 3]), null, { groups: 3 }), Error, 'conv2d', /groups=3/);
    throwsWith(() => F.conv2d(ones([1, 4, 5, 5]), ones([4, 4, 3, 3]), ones([3])), Error, 'conv2d', /bias/);
    throwsWith(() => F.conv2d(ones([1, 4, 2, 2]), ones([4, 4, 3, 3])), Error, 'conv2d', /[Kk]ernel size/);
    throwsWith(() => F.conv2d(ones([1, 4, 5, 5]), ones([4, 4, 3, 3]), null, { groups: 0 }), Error, 'conv2d', /groups/);
    throwsWith(() => F.conv2d(ones([1, 4, 5, 5]), ones([4, 4, 3, 3]), null, { stride: 0 }), Error, 'conv2d', /stride/);
    throwsWith(() => F.convTranspose2d(ones([1, 4, 5, 5]), ones([3, 4, 3, 3])), Error, 'convTranspose2d', '[1, 4, 5, 5]');
  });

  it('cat / stack of mismatched shapes, bad reshapes and dims', () => {
    throwsWith(() => cat([zeros([2, 3]), zeros([2, 4])], 0), Error, 'cat', '[2, 3]', '[2, 4]', /[Ss]izes/);
    throwsWith(() => stack([zeros([2]), zeros([3])]), Error, 'stack', '[2]', '[3]');
    throwsWith(() => cat([]), Error, 'cat');
    throwsWith(() => ones([2, 3]).reshape(4, 2), Error, 'reshape', '[2, 3]', /invalid/);
    throwsWith(() => ones([2, 3]).permute(0, 1).transpose(0, 5), Error, 'transpose', /[Dd]imension out of range/);
    throwsWith(() => ones([2, 3]).add(ones([4])), Error, 'add', '[2, 3]', '[4]');
    throwsWith(() => ones([2]).expand(3, 3), Error, 'expand');
    throwsWith(() => ones([2, 3]).narrow(1, 2, 5), Error, 'narrow');
    throwsWith(() => F.groupNorm(ones([1, 4, 2, 2]), 3), Error, 'groupNorm', /4 channels/, /3 groups/);
    throwsWith(() => F.interpolate(ones([4, 6]), [3, 3]), Error, 'interpolate');
    throwsWith(() => zeros([2]).copy_(zeros([3])), Error, 'copy_');
    throwsWith(() => zeros([-1]), Error, 'zeros', /negative/);
  });

  it('backward with a gradient of the wrong shape', () => {
    const x = ones([2]).requiresGrad_();
    throwsWith(() => x.mul(2).backward(ones([3])), Error, 'backward', '[3]');
  });
});

describe('dtype errors', () => {
  it('matmul float32 × float64, conv2d float64 input with float32 weight', () => {
    throwsWith(() => ones([2, 2]).matmul(ones([2, 2], { dtype: 'float64' })), Error, 'matmul', 'float32', 'float64');
    throwsWith(() => F.conv2d(ones([1, 1, 3, 3], { dtype: 'float64' }), ones([1, 1, 1, 1])), Error, 'conv2d', 'float64', 'float32');
  });

  it('gather / indexSelect with a float index, out-of-range indices', () => {
    throwsWith(() => ones([2, 3]).gather(1, tensor([[0], [1]])), Error, 'gather', /int64/);
    throwsWith(() => ones([2, 3]).indexSelect(0, tensor([0])), Error, 'indexSelect');
    throwsWith(() => ones([2, 3]).gather(1, tensor([[7]], undefined, { dtype: 'int64' })), Error, 'gather', /out of bounds/);
    throwsWith(() => ones([2, 3]).indexSelect(0, tensor([5], undefined, { dtype: 'int64' })), Error, 'indexSelect', /out of range/);
  });

  it('masks must be bool (a float mask was silently ignored by libtorch)', () => {
    throwsWith(() => zeros([2]).maskedFill(tensor([1, 0]), 5), TypeError, 'maskedFill', /bool/);
    throwsWith(() => F.dropout(tensor([1, 2], undefined, { dtype: 'int64' }), 0.5, new Generator(0)), Error, 'dropout');
  });

  it('ops that do not exist for a dtype, and gradients of integer tensors', () => {
    throwsWith(() => tensor([1], undefined, { dtype: 'int64' }).mean(), Error, 'mean');
    throwsWith(() => tensor([1, 0], undefined, { dtype: 'bool' }).neg(), Error, 'neg');
    throwsWith(() => tensor([1], undefined, { dtype: 'int64' }).requiresGrad_(), Error, /floating point/);
  });
});

describe('invalid arguments are TypeErrors', () => {
  it('a string (or anything else) where a tensor is expected', () => {
    const x = ones([2]);
    const bad = 'not a tensor' as unknown as Tensor;
    throwsWith(() => x.add(bad), TypeError, 'add', /must be a Tensor/);
    throwsWith(() => x.matmul(bad), TypeError, 'matmul', /argument 1 must be a Tensor/);
    throwsWith(() => F.linear(x, { handle: {} } as unknown as Tensor), TypeError, 'linear');
    throwsWith(() => cat([x, bad]), TypeError, 'cat', /\[1\] must be a Tensor/);
    throwsWith(() => F.dropout(x, 0.5, 'gen' as unknown as Generator), TypeError, 'dropout', /Generator/);
    // A Generator handle is not a tensor, and a tensor is not a Generator.
    throwsWith(() => untyped.add!(new Generator(0).handle, x.handle), TypeError, /must be a Tensor/);
    throwsWith(() => untyped.randn!(x.handle, [2], 'float32'), TypeError, /must be a Generator/);
  });

  it('non-integers where integers are expected, wrong kinds of numbers', () => {
    const x = ones([2, 3]);
    throwsWith(() => x.reshape(2.5, 2), TypeError, 'reshape', /integer/);
    throwsWith(() => x.select(0, Number.NaN), TypeError, 'select', /integer/);
    throwsWith(() => x.sum(Infinity), TypeError, 'sum', /integer/);
    throwsWith(() => x.add(1, 'two' as unknown as number), TypeError, 'add', /number/);
    throwsWith(() => F.dropout(x, 1.5, new Generator(0)), TypeError, 'dropout', /probability/);
    throwsWith(() => new Generator(-1), Error, /seed/);
    throwsWith(() => F.interpolate(x.reshape(1, 1, 2, 3), [2, 2], 'cubic' as 'bicubic'), TypeError, /mode/);
  });

  it('invalid dtype and device names', () => {
    throwsWith(() => zeros([2], { dtype: 'float8' as 'float32' }), TypeError, 'zeros', /unknown dtype 'float8'/);
    throwsWith(() => ones([2]).to('complex' as 'float32'), TypeError, /'complex'/);
    throwsWith(() => zeros([2], { device: 'tpu' as 'cpu' }), TypeError, 'zeros', /unknown device 'tpu'/);
    throwsWith(() => resolveDevice('tpu'), Error, /unknown device 'tpu'/);
    if (!native.cudaAvailable()) {
      // A valid device name this build cannot use is an Error too, not a crash.
      // (A CPU build: libtorch's "not compiled with CUDA"; a CUDA build without a GPU: CUDA's "no NVIDIA driver" or "no CUDA GPUs".)
      throwsWith(() => zeros([2], { device: 'cuda' }), Error, 'zeros', /CUDA|NVIDIA/);
      throwsWith(() => resolveDevice('cuda'), Error, native.cudaBuild() ? /no GPU is visible: the addon is a CUDA build/ : /has no CUDA: the addon is a CPU build/);
    }
  });

  it('a buffer whose length does not match the shape', () => {
    throwsWith(() => tensor(new Float32Array(5), [2, 3]), TypeError, 'fromBuffer', /20 bytes/, /6 × 4/);
    throwsWith(() => tensor(new Float64Array(4), [5]), TypeError, /32 bytes/);
    throwsWith(() => tensor([1, 2, 3], [2, 2]), TypeError, 'fromBuffer');
    throwsWith(() => tensor(new Float32Array(2), [-1, -2]), TypeError, /negative/);
    throwsWith(() => untyped.fromBuffer!([1, 2], [2], 'float32'), TypeError, /typed array/);
    throwsWith(() => tensor(new Uint16Array(2)), Error, /Uint16Array/);
  });

  it('padding lists of the wrong length (reflect/replicate used to read past the list and crash)', () => {
    const x = ones([1, 1, 4, 4]);
    throwsWith(() => F.pad(x, [1, 1], 'reflect'), TypeError, 'pad', /4 padding values/);
    throwsWith(() => F.pad(x, [], 'reflect'), TypeError, 'pad', /4 padding values/);
    throwsWith(() => F.pad(x, [1, 1, 1, 1, 1, 1], 'reflect'), TypeError, 'pad', /4 padding values/);
    throwsWith(() => F.pad(x, [1, 1], 'replicate'), TypeError, 'pad');
    throwsWith(() => F.pad(x, [1, 1, 1], 'constant'), Error, 'pad', /even/);
    throwsWith(() => F.pad(x, [1, 1, 1, 1], 'wrap' as 'reflect'), TypeError, /mode/);
  });

  it('item() of a tensor that is not one element, randint with an empty range, a bad generator state', () => {
    throwsWith(() => ones([2]).item(), TypeError, 'item', /one element/);
    throwsWith(() => new Generator(0).randint(3, 3, [2]), Error, 'randint');
    throwsWith(() => new Generator(0).setState(new Uint8Array(10)), Error, 'generatorSetState', /size/);
  });
});

describe('the process survives every bad call', () => {
  it('a child process making all the bad calls exits normally', () => {
    // The calls that reached libtorch's unchecked paths (a short padding list) killed the
    // process with SIGSEGV before the fix; run them where a crash is observable.
    const script = `
      const T = await import(${JSON.stringify(new URL('../src/tensor/index.js', import.meta.url).href)});
      const { native } = await import(${JSON.stringify(new URL('../src/tensor/native.js', import.meta.url).href)});
      const x = T.ones([1, 1, 4, 4]);
      const calls = [
        () => native.pad(x.handle, [], 'reflect', 0),
        () => native.pad(x.handle, [1], 'replicate', 0),
        () => native.conv2d(x.handle, T.ones([1, 1, 3, 3]).handle, null, [], [], [], 1),
        () => native.avgPool2d(x.handle, [], [], [], true),
        () => native.maxPool2d(x.handle, [2, 2, 2], [], [], true),
        () => native.interpolate(x.handle, [], 'bilinear', false),
        () => native.adaptiveAvgPool2d(x.handle, []),
        () => native.dispose('x'),
        () => native.shape(new T.Generator(0).handle),
        () => native.generatorSetState(new T.Generator(0).handle, x.handle),
        () => native.adamStep([x.handle], [], [], 1, 0.1, 0.9, 0.999, 1e-8, 0),
        () => native.emaUpdate([x.handle], [T.ones([2]).handle], 0.5),
        () => native.fromBuffer(new Float32Array(1), [2 ** 31, 2 ** 31, 4, 4, 4], 'float32'),
        () => T.zeros([2 ** 40, 2 ** 20]),
        () => native.setNumThreads(0),
        () => native.gradNanToNum([x.handle, 'x'], 0, 1, -1),
      ];
      let errors = 0;
      for (const c of calls) { try { c(); } catch { errors++; } }
      console.log('errors', errors, 'of', calls.length);
    `;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: fileURLToPath(new URL('.', import.meta.url)) });
    assert.equal(child.signal, null, `child killed by ${child.signal}: ${child.stderr}`);
    assert.equal(child.status, 0, child.stderr);
    assert.match(child.stdout, /errors 16 of 16/);
  });
});
