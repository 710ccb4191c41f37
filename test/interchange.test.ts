// Reading (and writing) the PyTorch world's files without running pickle
// code: the restricted unpickler, torch.save zip/legacy files, official
// EDM / Patch Diffusion snapshot pickles (D and the official generate.py's
// images), NumPy .npz statistics and pytorch-fid's Inception weights. The
// fixtures come from the official code under torch 1.13 and 2.x:
// ../shared/interchange and test/fixtures/interchange (made by make_refs.py there).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { decodeSimplePng } from '../src/data/png.js';
import { generate } from '../src/generate/generate.js';
import { readNpz, writeNpz } from '../src/io/npz.js';
import { PickleError, unpickle, decodeLong, PyTuple } from '../src/io/pickle.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { readTorchFile, stateDictOf, torchGlobals } from '../src/io/torch-file.js';
import { writeTorchStateDict } from '../src/io/torch-save.js';
import { createNetwork } from '../src/networks/config.js';
import { loadOfficialNetwork } from '../src/networks/official-snapshot.js';
import { frechetDistance, loadStatistics, saveStatistics } from '../src/metrics/frechet.js';
import { loadInception, preprocessForInception } from '../src/metrics/inception.js';
import { noGrad, scope, type Tensor } from '../src/tensor/index.js';
import { transferWeights } from '../src/train/transfer.js';

const SHARED = process.env.PD_INTERCHANGE_DIR ?? fileURLToPath(new URL('../../../shared/interchange/', import.meta.url));
const OWN = fileURLToPath(new URL('../../test/fixtures/interchange/', import.meta.url));
const shared = (f: string) => join(SHARED, f);
const own = (f: string) => join(OWN, f);
const tmp = mkdtempSync(join(tmpdir(), 'pd-interchange-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const maxAbs = (a: Tensor, b: Tensor) => scope(() => a.to('float64').sub(b.to('float64')).abs().amax().item());
const maxRel = (a: Tensor, b: Tensor) => scope(() => maxAbs(a, b) / b.abs().amax().item());

// ---- the unpickler --------------------------------------------------------------------------------

// Hand-assembled pickles (bytes as Python 3.11 writes them).
const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

test('pickle values: LONG1 of any length and sign, tuples kept apart from lists, dicts, floats, bytes', () => {
  assert.equal(decodeLong(hex('6c fc 9c 46 f9 20 6a a8 50 19')), 0x1950a86a20f9469cfc6cn); // torch's legacy magic
  assert.equal(decodeLong(hex('00 00 00 00 00 ff')), -(2 ** 40)); // -(2**40): npm pickleparser gets this wrong
  assert.equal(decodeLong(hex('ff ff ff 7f ff')), -(2 ** 31) - 1);
  assert.equal(decodeLong(hex('00 00 00 00 00 00 00 80 00')), 2n ** 63n);
  // pickle.dumps(((1, -2), [3.5, b'\x00\x01'], {'a': None, 'b': True}), protocol=4)
  const { value } = unpickle(hex('80 04 95 2c 00 00 00 00 00 00 00 4b 01 4a fe ff ff ff 86 94 5d 94 28 47 40 0c 00 00 00 00 00 00 43 02 00 01 94 65 7d 94 28 8c 01 61 94 4e 8c 01 62 94 88 75 87 94 2e'), { source: 't', globals: new Map() });
  assert.ok(value instanceof PyTuple);
  const [pair, list, dict] = (value as PyTuple).items as [PyTuple, unknown[], Map<string, unknown>];
  assert.ok(pair instanceof PyTuple && !Array.isArray(pair));
  assert.deepEqual(pair.items, [1, -2]);
  assert.equal(list[0], 3.5);
  assert.deepEqual([...(list[1] as Uint8Array)], [0, 1]);
  assert.equal(dict.get('a'), null);
  assert.equal(dict.get('b'), true);
});

test('a hostile pickle (os.system) is refused by name and nothing runs', () => {
  const marker = join(tmp, 'pwned');
  // pickle.dumps of an object whose __reduce__ returns (os.system, ('touch <marker>',)), protocol 2 (GLOBAL) and 4 (STACK_GLOBAL)
  const cmd = Buffer.from(`touch ${marker}`);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(cmd.length);
  const p2 = Buffer.concat([hex('80 02'), Buffer.from('cposix\nsystem\n'), hex('58'), len, cmd, hex('85 52 2e')]);
  const name = (s: string) => Buffer.concat([hex('8c'), Buffer.from([s.length]), Buffer.from(s)]);
  const p4 = Buffer.concat([hex('80 04'), name('os'), name('system'), hex('93 58'), len, cmd, hex('85 52 2e')]);
  assert.throws(() => unpickle(p2, { source: 'evil.pkl', globals: torchGlobals() }), (e: Error) => e instanceof PickleError && /evil\.pkl: refuses the global 'posix\.system'/.test(e.message));
  assert.throws(() => unpickle(p4, { source: 'evil.pkl', globals: torchGlobals() }), /refuses the global 'os\.system'.*nothing was run/);
  // The same refusal through every entry point that reads user files.
  const evil = join(tmp, 'network-snapshot-000000.pkl');
  writeFileSync(evil, p4);
  assert.throws(() => loadOfficialNetwork(evil), /refuses the global 'os\.system'/);
  assert.throws(() => readTorchFile(evil), /refuses the global 'os\.system'/);
  assert.ok(!existsSync(marker), 'the command never ran');
});

test('truncated, corrupt and out-of-range inputs are clear errors', () => {
  const good = readFileSync(shared('pd_snapshot_t113.pkl'));
  const cut = join(tmp, 'cut.pkl');
  writeFileSync(cut, good.subarray(0, 200_000));
  assert.throws(() => loadOfficialNetwork(cut), /cut\.pkl: truncated/);
  const junk = join(tmp, 'junk.pkl');
  writeFileSync(junk, Buffer.concat([hex('80 04'), Buffer.from([0xff, 0, 0])]));
  assert.throws(() => loadOfficialNetwork(junk), /byte 0xff is not a pickle opcode/);
  assert.throws(() => readTorchFile(Buffer.from('hello world')), /not a torch\.save file/);
  // A legacy torch.save file whose tensor view reaches past its storage.
  const legacy = gunzipSync(readFileSync(shared('fid_inception_random_t113_legacy.pth.gz')));
  const value = readTorchFile(legacy, { source: 'legacy.pth' }) as Map<string, { storage: unknown; offset: number; shape: number[]; stride: number[] }>;
  const ref = value.get('Conv2d_1a_3x3.conv.weight')!;
  const shifted = Object.assign(Object.create(Object.getPrototypeOf(ref)), ref, { offset: 10 });
  assert.throws(() => stateDictOf(new Map([['w', shifted]]), 'legacy.pth'), /points past the end/);
  const cutZip = gunzipSync(readFileSync(shared('fid_inception_random_t213.pth.gz'))).subarray(0, 5_000_000);
  assert.throws(() => readTorchFile(cutZip, { source: 'cut.pth' }), /cut\.pth/);
});

// ---- torch.save files and Inception -------------------------------------------------------------

test('torch.save zip (1.13, 2.13) and legacy files give the same 566 tensors, int64 counters intact', () => {
  const sds = ['fid_inception_random_t113.pth.gz', 'fid_inception_random_t213.pth.gz', 'fid_inception_random_t113_legacy.pth.gz'].map((f) => stateDictOf(readTorchFile(shared(f)), f));
  try {
    for (const sd of sds) assert.equal(sd.size, 566);
    const nbt = sds[0]!.get('Mixed_7c.branch_pool.bn.num_batches_tracked')!;
    assert.equal(nbt.dtype, 'int64');
    assert.ok((nbt.data() as BigInt64Array)[0]! > 2n ** 33n, 'a 64-bit counter is not truncated to 32 bits');
    for (const [k, t] of sds[0]!) for (const other of sds.slice(1)) assert.equal(maxAbs(other.get(k)!, t), 0, k);
  } finally {
    for (const sd of sds) for (const t of sd.values()) t.dispose();
  }
});

test('pytorch-fid Inception from its .pth: preprocessing, the four blocks and pool3 equal pytorch-fid\'s within 1e-4', () => {
  const { tensors: ref } = readSafetensors(shared('fid_inception_ref_t113.safetensors'));
  const inc = loadInception(shared('fid_inception_random_t213.pth.gz'));
  try {
    assert.equal(inc.mode, 'pytorch-fid');
    assert.equal(inc.name, 'inception-v3-pytorch-fid');
    scope(() => {
      const images = ref.get('images_u8')!.permute(0, 3, 1, 2).contiguous();
      const x = preprocessForInception(images, 'pytorch-fid');
      assert.ok(maxRel(x, ref.get('x299_normalised')!) < 1e-4);
      const blocks = noGrad(() => inc.model.forwardBlocks(x));
      blocks.forEach((b, i) => assert.ok(maxRel(b, ref.get(`block${i}`)!) < 1e-4, `block${i}: ${maxRel(b, ref.get(`block${i}`)!)}`));
      const pool3 = inc.features(images);
      assert.ok(maxRel(pool3, ref.get('pool3')!) < 1e-4, `pool3: ${maxRel(pool3, ref.get('pool3')!)}`);
      // The other preprocessing gives other features: the two are never mixed.
      const tf1 = loadInception(shared('fid_inception_random_t213.pth.gz'), { preprocessing: 'tf1' });
      try {
        assert.equal(tf1.name, 'inception-v3-fid');
        assert.ok(maxRel(tf1.features(images), ref.get('pool3')!) > 1e-3);
      } finally {
        tf1.dispose();
      }
    });
  } finally {
    inc.dispose();
    for (const t of ref.values()) t.dispose();
  }
});

// ---- .npz statistics ----------------------------------------------------------------------------

test('EDM (stored) and pytorch-fid (deflated) .npz statistics give the official FID, and round-trip', () => {
  const expected = JSON.parse(readFileSync(shared('fid_tiny_expected.json'), 'utf8')) as { fid_edm: number };
  const gen = loadStatistics(shared('fid_gen_tiny.npz'));
  for (const refFile of ['fid_ref_tiny_edm.npz', 'fid_ref_tiny_pfid.npz']) {
    const ref = loadStatistics(shared(refFile));
    assert.equal(ref.stats.dim, 16);
    assert.ok(Math.abs(frechetDistance(gen.stats, ref.stats) - expected.fid_edm) < 1e-9 * expected.fid_edm, refFile);
  }
  const out = join(tmp, 'roundtrip.npz');
  saveStatistics(out, gen.stats, { featureNetwork: 'x', featureNetworkSha256: '', dataset: 'd' });
  const back = readNpz(out);
  assert.deepEqual(back.get('sigma')!.shape, [16, 16]);
  assert.deepEqual([...(back.get('mu')!.data as Float64Array)], [...gen.stats.mu]);
  // Byte for byte what numpy writes for the same arrays (np.savez of EDM's file, re-encoded).
  const edm = readNpz(shared('fid_ref_tiny_edm.npz'));
  const again = join(tmp, 'again.npz');
  writeNpz(again, edm);
  assert.deepEqual(readNpz(again), edm);
  const bad = join(tmp, 'bad.npz');
  writeNpz(bad, { mu: { dtype: 'int32', shape: [2], data: Int32Array.from([1, 2]) } });
  assert.throws(() => loadStatistics(bad), /needs arrays 'mu' and 'sigma'/);
});

// ---- official snapshots -------------------------------------------------------------------------

test('official Patch_EDMPrecond snapshots (torch 1.13 and 2.13 pickles) give the official D within 1e-5', () => {
  for (const v of ['t113', 't213']) {
    const o = loadOfficialNetwork(shared(`pd_snapshot_${v}.pkl`));
    const net = createNetwork(o.config, { initialize: false });
    const { tensors: ref } = readSafetensors(shared(`pd_ref_${v}.safetensors`));
    try {
      assert.equal(o.className, 'Patch_EDMPrecond');
      assert.equal(o.config.model_type, 'SongUNet');
      assert.equal(o.weights.size, 146);
      assert.deepEqual(o.loss, { className: 'Patch_EDMLoss', state: { P_mean: -1.2, P_std: 1.2, sigma_data: 0.5 } });
      net.loadStateDict(o.weights);
      net.eval();
      for (const c of ['a', 'b']) {
        const D = noGrad(() => net.forward(ref.get(`${c}.x`)!, ref.get(`${c}.sigma`)!, ref.get(`${c}.x_pos`)!));
        assert.ok(maxRel(D, ref.get(`${c}.D`)!) < 1e-5, `${v} ${c}: ${maxRel(D, ref.get(`${c}.D`)!)}`);
        D.dispose();
      }
    } finally {
      net.dispose();
      for (const t of [...o.weights.values(), ...ref.values()]) t.dispose();
    }
  }
});

test('EDMPrecond (conditional) and Patch_EDMPrecond with DhariwalUNet and augment labels give the official D', () => {
  const cases: [string, string, (net: ReturnType<typeof createNetwork>, r: Map<string, Tensor>) => [Tensor, Tensor][]][] = [
    ['edm_song_cond_t113.pkl', 'edm_song_cond_ref_t113.safetensors', (net, r) => [[net.forward(r.get('D_x')!, r.get('D_sigma')!, null, r.get('D_class_labels')!), r.get('D')!]]],
    ['pedm_adm_t213.pkl', 'pedm_adm_ref_t213.safetensors', (net, r) => [
      [net.forward(r.get('D_x')!, r.get('D_sigma')!, r.get('D_x_pos')!, null, r.get('D_aug0_labels')!), r.get('D_aug0')!],
      [net.forward(r.get('D_x')!, r.get('D_sigma')!, r.get('D_x_pos')!, null, r.get('D_aug1_labels')!), r.get('D_aug1')!],
    ]],
  ];
  for (const [pkl, refFile, run] of cases) {
    const o = loadOfficialNetwork(own(pkl));
    const net = createNetwork(o.config, { initialize: false });
    const { tensors: ref } = readSafetensors(own(refFile));
    try {
      net.loadStateDict(o.weights);
      net.eval();
      noGrad(() => scope(() => {
        for (const [ours, theirs] of run(net, ref)) assert.ok(maxRel(ours, theirs) < 1e-5, `${pkl}: ${maxRel(ours, theirs)}`);
      }));
    } finally {
      net.dispose();
      for (const t of [...o.weights.values(), ...ref.values()]) t.dispose();
    }
  }
});

test('generate --network x.pkl writes the official generate.py\'s images byte for byte (Heun, churn, random and fixed classes)', async () => {
  const cases: { pkl: string; ref: string; key: string; seeds: number; extra?: object }[] = [
    { pkl: shared('pd_snapshot_t213.pkl'), ref: own('pd_snapshot_t213_ref_t213.safetensors'), key: 'images_u8', seeds: 8 },
    { pkl: shared('pd_snapshot_t113.pkl'), ref: own('pd_snapshot_t113_ref_t113.safetensors'), key: 'churn_images_u8', seeds: 4, extra: { sChurn: 40, sMin: 0.05, sMax: 50, sNoise: 1.003 } },
    { pkl: own('edm_song_cond_t213.pkl'), ref: own('edm_song_cond_ref_t213.safetensors'), key: 'images_u8', seeds: 4 },
    { pkl: own('edm_song_cond_t113.pkl'), ref: own('edm_song_cond_ref_t113.safetensors'), key: 'class2_images_u8', seeds: 4, extra: { classIndex: 2 } },
    { pkl: own('pedm_adm_t213.pkl'), ref: own('pedm_adm_ref_t213.safetensors'), key: 'images_u8', seeds: 4 },
  ];
  for (const c of cases) {
    const { tensors } = readSafetensors(c.ref);
    const expected = tensors.get(c.key)!.data() as Uint8Array;
    for (const t of tensors.values()) t.dispose();
    const outdir = join(tmp, `gen-${c.key}-${c.seeds}-${c.pkl.length}`);
    const s = await generate({ network: c.pkl, outdir, seeds: [...Array(c.seeds).keys()], threads: 1, quiet: true, grid: false, ...c.extra });
    const got = Buffer.concat(s.files.map((f) => decodeSimplePng(readFileSync(f))!.data));
    // Quantisation can only differ where the float images differ (~1e-6 across torch versions); allow one level on a handful of pixels.
    let off = 0;
    for (let k = 0; k < got.length; k++) {
      const d = Math.abs(got[k]! - expected[k]!);
      assert.ok(d <= 1, `${c.pkl} ${c.key}: pixel ${k} differs by ${d}`);
      off += d;
    }
    assert.ok(off <= 2, `${c.pkl} ${c.key}: ${off} pixels off by one level`);
  }
});

test('unsupported classes in a snapshot are refused by name', () => {
  // The VP snapshot with its class renamed (same length, so the pickle stays well formed).
  const renamed = join(tmp, 'vq_song.pkl');
  writeFileSync(renamed, Buffer.from(readFileSync(own('vp_song_t213.pkl')).toString('latin1').replaceAll('VPPrecond', 'VQPrecond'), 'latin1'));
  assert.throws(() => loadOfficialNetwork(renamed), /the network class 'VQPrecond' is not supported \(supported: Patch_EDMPrecond, EDMPrecond, VPPrecond, VEPrecond/);
});

test('convert to a torch.save state dict reads back identically (and loads in PyTorch when it is installed)', () => {
  const o = loadOfficialNetwork(shared('pd_snapshot_t113.pkl'));
  const pt = join(tmp, 'ema.pt');
  try {
    writeTorchStateDict(pt, o.weights);
    const back = stateDictOf(readTorchFile(pt), pt);
    assert.deepEqual([...back.keys()], [...o.weights.keys()]);
    for (const [k, t] of back) assert.equal(maxAbs(t, o.weights.get(k)!), 0, k);
    for (const t of back.values()) t.dispose();
    const python = [join(fileURLToPath(new URL('../../.venv/bin/python', import.meta.url))), '/usr/bin/python3'].find((p) => existsSync(p));
    const script = 'import sys, torch\nsd = torch.load(sys.argv[1])\nprint(len(sd), sum(float(v.double().sum()) for v in sd.values() if v.is_floating_point()))';
    const r = python ? spawnSync(python, ['-c', script, pt], { encoding: 'utf8' }) : null;
    if (!r || r.status !== 0 || /No module named 'torch'/.test(r.stderr)) return; // no PyTorch here: the reader check above stands
    const [n, sum] = r.stdout.trim().split(' ').map(Number) as [number, number];
    assert.equal(n, 146);
    const ours = [...o.weights.values()].reduce((s, t) => s + (t.dtype.startsWith('float') ? t.to('float64').sum().item() : 0), 0);
    assert.ok(Math.abs(sum - ours) <= 1e-9 * Math.max(1, Math.abs(ours)), `PyTorch reads ${sum}, ours ${ours}`);
  } finally {
    for (const t of o.weights.values()) t.dispose();
  }
});

test('--transfer copies a snapshot into a matching network and names the first mismatched tensor otherwise', () => {
  const o = loadOfficialNetwork(shared('pd_snapshot_t113.pkl'));
  const same = createNetwork(o.config, { initialize: false });
  const other = createNetwork({ ...o.config, model_channels: 16 }, { initialize: false });
  try {
    const r = transferWeights(shared('pd_snapshot_t113.pkl'), [same]);
    assert.equal(r.copied, 146);
    for (const [k, t] of same.stateDict()) assert.equal(maxAbs(t, o.weights.get(k)!), 0, k);
    assert.throws(() => transferWeights(shared('pd_snapshot_t113.pkl'), [other]), /does not match the snapshot's: 'model\.[^']+' is \[/);
  } finally {
    same.dispose();
    other.dispose();
    for (const t of o.weights.values()) t.dispose();
  }
});
