// Every reader of files from outside, fed seeded mutations of a valid file
// (flipped bits, overwritten bytes, truncations, insertions, swapped
// blocks): each must end in a clear error or a valid result, never a crash,
// a hang, an internal JavaScript error or unbounded memory. Each reader runs
// in a child process whose peak memory and slowest read are asserted; a
// failure prints the seed and iteration to replay it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { encodeSafetensors } from '../src/io/safetensors.js';
import { encodeTorchStateDict } from '../src/io/torch-save.js';
import { writeNpz } from '../src/io/npz.js';
import { storedZipChunks } from '../src/data/zip-writer.js';
import { tensor } from '../src/tensor/index.js';
import { train } from '../src/train/train.js';
import { durationForSteps, tinyTrainRequest, writeShapeImages } from './helpers/train-fixtures.js';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../../test/fixtures/interchange/', import.meta.url));
let tmp = '';
before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'pd-fuzz-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

interface FuzzReport {
  iterations: number;
  valid: number;
  errors: number;
  bad: string[];
  peakMiB: number;
  slowestMs: number;
}

/**
 * Fuzzes `read` (an async function body over `bytes` and `file`, the mutated
 * file's bytes and a path holding them) in a child process.
 */
function fuzz(seedFile: string, iterations: number, read: string): FuzzReport {
  const script = `
    import { writeFileSync } from 'node:fs';
    import { readFileSync } from 'node:fs';
    import { resourceUsage } from 'node:process';
    const original = readFileSync(${JSON.stringify(seedFile)});
    const file = ${JSON.stringify(join(tmp, 'mutant'))} + '-' + process.pid + ${JSON.stringify(extname(seedFile))};
    // mulberry32: a small seeded generator, so a failure replays.
    let state = 12345;
    const rand = () => { state = (state + 0x6d2b79f5) | 0; let t = Math.imul(state ^ (state >>> 15), 1 | state); t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t; return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
    const pick = (n) => Math.floor(rand() * n);
    function mutate() {
      let b = Buffer.from(original);
      const rounds = 1 + pick(4);
      for (let r = 0; r < rounds; r++) {
        const kind = pick(6);
        // Mutations near the start hit headers, where the parsing is.
        const at = rand() < 0.5 ? pick(Math.min(b.length, 256)) : pick(b.length);
        if (kind === 0) b[at] ^= 1 << pick(8);
        else if (kind === 1) b[at] = [0, 0xff, 0x7f, 0x80][pick(4)];
        else if (kind === 2) b = b.subarray(0, pick(b.length));
        else if (kind === 3) b = Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: 1 + pick(16) }, () => pick(256))), b.subarray(at)]);
        else if (kind === 4) { const n = 1 + pick(8); for (let i = 0; i < n && at + i < b.length; i++) b[at + i] = 0xff; }
        else { const len = 1 + pick(32), to = pick(b.length); b.copy(b, to, at, Math.min(b.length, at + len)); }
      }
      return b;
    }
    const read = async (bytes, file) => { ${read} };
    const INTERNAL = /Cannot read propert|undefined is not|is not a function|is not iterable|Maximum call stack|Invalid array length|Invalid typed array length|out of memory/;
    const report = { iterations: ${iterations}, valid: 0, errors: 0, bad: [], peakMiB: 0, slowestMs: 0 };
    for (let i = 0; i < ${iterations}; i++) {
      const bytes = mutate();
      writeFileSync(file, bytes);
      const t0 = performance.now();
      try {
        await read(bytes, file);
        report.valid++;
      } catch (e) {
        report.errors++;
        const message = e instanceof Error ? e.message : String(e);
        if (!(e instanceof Error) || !message || INTERNAL.test(message)) report.bad.push('iteration ' + i + ': ' + (e?.constructor?.name ?? typeof e) + ': ' + message.slice(0, 300));
      }
      report.slowestMs = Math.max(report.slowestMs, performance.now() - t0);
    }
    report.peakMiB = resourceUsage().maxRSS / 1024;
    console.log(JSON.stringify(report));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: SRC, timeout: 240_000, maxBuffer: 1 << 24 });
  return JSON.parse(out.trim().split('\n').at(-1)!) as FuzzReport;
}

function check(name: string, r: FuzzReport, peakMiB = 700): void {
  console.log(`fuzz ${name}: ${r.iterations} mutants, ${r.valid} read, ${r.errors} refused, peak ${r.peakMiB.toFixed(0)} MiB, slowest ${r.slowestMs.toFixed(0)} ms`);
  assert.deepEqual(r.bad.slice(0, 5), [], `${name}: unclear errors`);
  assert.ok(r.errors > 0, `${name}: no mutant was refused: the fuzzing did not reach the parser`);
  assert.ok(r.peakMiB < peakMiB, `${name}: peak memory ${r.peakMiB.toFixed(0)} MiB`);
  assert.ok(r.slowestMs < 10_000, `${name}: a read took ${r.slowestMs.toFixed(0)} ms`);
}

test('safetensors', () => {
  const file = join(tmp, 'seed.safetensors');
  writeFileSync(file, Buffer.concat(encodeSafetensors({ a: tensor([1, 2, 3]), b: tensor([[1, 2], [3, 4]]).to('float64') }, { format: 'x', note: 'n' })));
  check('safetensors', fuzz(file, 2000, `const { decodeSafetensors } = await import('./io/safetensors.js'); const r = decodeSafetensors(bytes, 'mutant'); for (const t of r.tensors.values()) t.dispose();`));
});

test('torch zip (torch.save) and npz/npy', () => {
  const pth = join(tmp, 'seed.pth');
  writeFileSync(pth, Buffer.concat(encodeTorchStateDict(new Map([['w', tensor([1, 2, 3, 4])], ['b', tensor([0.5])]]))));
  check('torch zip', fuzz(pth, 1500, `const { readTorchFile } = await import('./io/torch-file.js'); readTorchFile(bytes, { source: 'mutant.pth' });`));
  const npz = join(tmp, 'seed.npz');
  writeNpz(npz, { mu: { dtype: 'float64', shape: [3], data: new Float64Array([1, 2, 3]) }, sigma: { dtype: 'float64', shape: [2, 2], data: new Float64Array([1, 0, 0, 1]) } });
  check('npz', fuzz(npz, 1500, `const { readNpz } = await import('./io/npz.js'); readNpz(file);`));
});

test('official snapshot pickles (EDM / Patch Diffusion network-snapshot .pkl)', () => {
  const pkl = join(tmp, 'seed.pkl');
  copyFileSync(join(FIXTURES, 'pedm_adm_t213.pkl'), pkl);
  check('pickle', fuzz(pkl, 800, `const { loadOfficialNetwork } = await import('./networks/official-snapshot.js'); const o = loadOfficialNetwork(file); for (const t of o.weights.values()) t.dispose();`));
});

test('a zip data set of PNGs', async () => {
  const pngs: [string, Uint8Array][] = [];
  for (let k = 0; k < 3; k++) pngs.push([`img${k}.png`, await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 40 * k, g: 100, b: 200 } } }).png().toBuffer()]);
  const zip = join(tmp, 'seed.zip');
  writeFileSync(zip, Buffer.concat(storedZipChunks(pngs)));
  check('png zip', fuzz(zip, 400, `const { readImages } = await import('./data/images.js'); await readImages(file);`));
});

test('our training states', async () => {
  const data = await writeShapeImages(join(tmp, 'data'), { count: 8, size: 16, channels: 1 });
  const run = await train(tinyTrainRequest(data, join(tmp, 'runs'), { duration: durationForSteps(1) }));
  const state = join(run!.runDir, 'training-state-000000.safetensors');
  assert.ok(readFileSync(state).length > 0);
  check('training state', fuzz(state, 600, `const { TrainingState } = await import('./train/training-state.js'); TrainingState.read(file);`));
});
