// Our stored-zip writer and sync zip reader, cross-checked against yauzl/yazl
// (and Python's zipfile when present), including zip64 and corruption.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createWriteStream, promises as fsp } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import yazl from 'yazl';
import { StoredZipWriter } from '../src/data/zip-writer.js';
import { ZipReader } from '../src/data/zip-reader.js';
import { DatasetError } from '../src/data/errors.js';

let tmp: string;
before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'pd-data-ziprw-'));
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

const files: Record<string, Buffer> = {
  'a.txt': Buffer.from('hello'),
  'dir/b.bin': Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 31) & 255)),
  'ünïcode/名前.png': Buffer.from('x'),
  'empty': Buffer.alloc(0),
};

async function readWithYauzl(file: string): Promise<Map<string, Buffer>> {
  const zip = await yauzl.openPromise(file, { lazyEntries: true, autoClose: false });
  const out = new Map<string, Buffer>();
  for await (const e of zip.eachEntry()) {
    const chunks: Buffer[] = [];
    for await (const c of await zip.openReadStreamPromise(e)) chunks.push(c as Buffer);
    out.set(e.fileName, Buffer.concat(chunks));
  }
  zip.close();
  return out;
}

const python = spawnSync('python3', ['-c', 'import zipfile'], { stdio: 'ignore' }).status === 0;

describe('zip writer/reader', { timeout: 20_000 }, () => {
  test('our writer → yauzl and our reader agree, entries stored, names UTF-8', async () => {
    const file = path.join(tmp, 'ours.zip');
    const w = await StoredZipWriter.create(file);
    for (const [name, data] of Object.entries(files)) await w.add(name, data);
    const size = await w.finish();
    assert.equal(size, (await fsp.stat(file)).size);
    assert.deepEqual(await readWithYauzl(file), new Map(Object.entries(files)));
    const r = ZipReader.open(file);
    assert.deepEqual(r.entries.map((e) => e.name), Object.keys(files));
    for (const e of r.entries) {
      assert.equal(e.method, 0);
      assert.deepEqual(r.read(e), files[e.name]);
    }
    r.close();
    await assert.rejects(w.add('late', Buffer.alloc(1)), /after finish/);
  });

  test('our reader reads yazl zips with deflated entries', async () => {
    const file = path.join(tmp, 'yazl.zip');
    const z = new yazl.ZipFile();
    for (const [name, data] of Object.entries(files)) z.addBuffer(data, name, { compress: true });
    z.end();
    await pipeline(z.outputStream, createWriteStream(file));
    const r = ZipReader.open(file);
    assert.ok(r.entries.some((e) => e.method === 8));
    for (const e of r.entries) assert.deepEqual(r.read(e), files[e.name]);
    r.close();
  });

  test('zip64: 70,000 entries round-trip (and Python agrees when available)', async () => {
    const file = path.join(tmp, 'many.zip');
    const w = await StoredZipWriter.create(file);
    for (let i = 0; i < 70_000; i++) await w.add(`d/${i}`, Buffer.from(String(i)));
    await w.finish();
    const r = ZipReader.open(file);
    assert.equal(r.entries.length, 70_000);
    assert.equal(r.read(r.entries[69_999]!).toString(), '69999');
    assert.equal(r.read(r.entries[65_535]!).toString(), '65535');
    r.close();
    if (python) {
      const py = spawnSync('python3', ['-c', 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print(len(z.namelist()), z.read("d/69999").decode())', file], { encoding: 'utf8' });
      assert.equal(py.status, 0, py.stderr);
      assert.equal(py.stdout.trim(), '70000 69999');
    }
  });

  test('Python zipfile validates our CRCs (skipped without python3)', { skip: python ? false : 'python3 not available' }, async () => {
    const file = path.join(tmp, 'py.zip');
    const w = await StoredZipWriter.create(file);
    for (const [name, data] of Object.entries(files)) await w.add(name, data);
    await w.finish();
    const py = spawnSync('python3', ['-c', 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); print(z.testzip(), [i.compress_type for i in z.infolist()])', file], { encoding: 'utf8' });
    assert.equal(py.stdout.trim(), 'None [0, 0, 0, 0]');
  });

  test('corruption: flipped data byte (CRC), truncation, garbage, missing file', async () => {
    const file = path.join(tmp, 'c.zip');
    const w = await StoredZipWriter.create(file);
    for (const [name, data] of Object.entries(files)) await w.add(name, data);
    await w.finish();
    const bytes = await fsp.readFile(file);
    const flipped = Buffer.from(bytes);
    const at = bytes.indexOf(files['dir/b.bin']!.subarray(100, 120));
    flipped[at]! ^= 0x55;
    const fpath = path.join(tmp, 'flipped.zip');
    await fsp.writeFile(fpath, flipped);
    const r = ZipReader.open(fpath);
    assert.deepEqual(r.read(r.entries[0]!), files['a.txt']);
    assert.throws(() => r.read(r.entries[1]!), (e: unknown) => e instanceof DatasetError && /flipped\.zip:dir\/b\.bin: CRC-32 mismatch/.test(e.message));
    r.close();
    const tpath = path.join(tmp, 'trunc.zip');
    await fsp.writeFile(tpath, bytes.subarray(0, bytes.length - 10));
    assert.throws(() => ZipReader.open(tpath), /trunc\.zip is not a readable zip file \(no end-of-central-directory record/);
    await fsp.writeFile(tpath, bytes.subarray(0, 200));
    assert.throws(() => ZipReader.open(tpath), /trunc\.zip is not a readable zip file/);
    await fsp.writeFile(tpath, '');
    assert.throws(() => ZipReader.open(tpath), /file too short/);
    assert.throws(() => ZipReader.open(path.join(tmp, 'nope.zip')), /cannot open .*nope\.zip/);
  });
});
