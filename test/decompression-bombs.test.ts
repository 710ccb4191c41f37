// Files that inflate to far more than they hold are refused before the
// memory is taken: a data-set zip entry, a gzipped .pth, and a torch zip
// whose storage record declares more than its tensor needs. Each read runs
// in a child process whose peak memory is asserted (the bombs here declare
// 320 MiB; the reader must stay far below that).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import yazl from 'yazl';
import { ZipReader } from '../src/data/zip-reader.js';
import { encodeTorchStateDict } from '../src/io/torch-save.js';
import { tensor } from '../src/tensor/index.js';

const BOMB_BYTES = 320 * 2 ** 20;
const DIST = fileURLToPath(new URL('../src/', import.meta.url));
let tmp = '';
before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'pd-bombs-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

/** BOMB_BYTES of zeros, 1 MiB at a time. */
function zeros(): Readable {
  let left = BOMB_BYTES;
  const chunk = Buffer.alloc(2 ** 20);
  return new Readable({
    read() {
      this.push(left > 0 ? chunk : null);
      left -= chunk.length;
    },
  });
}

/** A zip of named entries (bytes, or the stream of zeros), deflated. */
async function writeZip(file: string, entries: [string, Buffer | 'zeros'][]): Promise<void> {
  const zip = new yazl.ZipFile();
  for (const [name, data] of entries) {
    if (data === 'zeros') zip.addReadStream(zeros(), name, { compress: true });
    else zip.addBuffer(data, name, { compress: true });
  }
  zip.end();
  await pipeline(zip.outputStream, createWriteStream(file));
}

/** Runs `body` (an ES module body that may await) in a child; returns its error message and its peak RSS in MiB. */
function inChild(body: string): { error: string; peakMiB: number } {
  const script = `
    import { resourceUsage } from 'node:process';
    let error = '';
    try { ${body} } catch (e) { error = e.message; }
    console.log(JSON.stringify({ error, peakMiB: resourceUsage().maxRSS / 1024 }));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: DIST });
  return JSON.parse(out.trim().split('\n').at(-1)!) as { error: string; peakMiB: number };
}

test('a data-set zip entry that inflates 1000×: refused from its header, in bounded memory', async () => {
  const file = join(tmp, 'images.zip');
  await writeZip(file, [['bomb.png', 'zeros']]);
  const r = inChild(`
    const { ZipReader } = await import('./data/zip-reader.js');
    const zip = ZipReader.open(${JSON.stringify(file)});
    zip.read(zip.entries[0]);`);
  assert.match(r.error, /bomb\.png: it declares 335544320 bytes from \d+ compressed, more than 100× \(a decompression bomb/);
  assert.ok(r.peakMiB < 200, `peak ${r.peakMiB.toFixed(0)} MiB`);
});

test('a gzipped .pth that inflates to hundreds of megabytes: stopped at its limit', async () => {
  const file = join(tmp, 'weights.pth.gz');
  await pipeline(zeros(), createGzip(), createWriteStream(file));
  const r = inChild(`
    const { readTorchFile } = await import('./io/torch-file.js');
    readTorchFile(${JSON.stringify(file)});`);
  assert.match(r.error, /weights\.pth\.gz: the gzip data inflates to more than \d+ bytes .*a decompression bomb/);
  assert.ok(r.peakMiB < 250, `peak ${r.peakMiB.toFixed(0)} MiB`);
});

test('a torch zip whose storage record declares more than its tensor: refused before inflating', async () => {
  // A real state dict (4 floats), then its storage record replaced by 320 MiB of zeros.
  const real = Buffer.concat(encodeTorchStateDict(new Map([['w', tensor([1, 2, 3, 4])]])));
  const realFile = join(tmp, 'real.pth');
  (await import('node:fs')).writeFileSync(realFile, real);
  const zip = ZipReader.open(realFile);
  const storage = zip.entries.find((e) => /\/data\/0$/.test(e.name))!;
  const entries: [string, Buffer | 'zeros'][] = zip.entries.map((e) => [e.name, e === storage ? 'zeros' : zip.read(e)]);
  zip.close();
  const file = join(tmp, 'bomb.pth');
  await writeZip(file, entries);
  const r = inChild(`
    const { readTorchFile } = await import('./io/torch-file.js');
    readTorchFile(${JSON.stringify(file)});`);
  assert.match(r.error, /data\/0: it declares 335544320 bytes where 16 are expected/);
  assert.ok(r.peakMiB < 200, `peak ${r.peakMiB.toFixed(0)} MiB`);
});
