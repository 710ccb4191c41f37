// TensorBoard event files: the record framing and CRC32C read back here (a
// small protobuf decoder of our own, independent of the writer's encoder),
// and a real run's events, resumed once, read back by TensorBoard itself
// (Python's EventAccumulator) when it is installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { crc32c, maskedCrc32c, readEventFile, readRecords, TFEventsWriter } from '../src/io/tfevents.js';
import { train } from '../src/train/train.js';
import { cleanup, durationForSteps, makeTempDir, NIMG_PER_STEP, readStats, tinyTrainRequest, writeShapeImages } from './helpers/train-fixtures.js';

// ---- a minimal protobuf reader (fields by number; varint, 64-bit, bytes, 32-bit) -------------
type Field = { wire: number; value: number | Buffer };
function decode(buf: Buffer): Map<number, Field[]> {
  const out = new Map<number, Field[]>();
  let pos = 0;
  const varint = () => {
    let v = 0, mul = 1, b: number;
    do {
      b = buf[pos++]!;
      v += (b & 0x7f) * mul;
      mul *= 128;
    } while (b & 0x80);
    return v;
  };
  while (pos < buf.length) {
    const key = varint();
    const field = Math.floor(key / 8), wire = key % 8;
    let value: number | Buffer;
    if (wire === 0) value = varint();
    else if (wire === 1) (value = buf.readDoubleLE(pos)), (pos += 8);
    else if (wire === 5) (value = buf.readFloatLE(pos)), (pos += 4);
    else if (wire === 2) {
      const n = varint();
      value = buf.subarray(pos, pos + n);
      pos += n;
    } else throw new Error(`wire type ${wire}`);
    if (!out.has(field)) out.set(field, []);
    out.get(field)!.push({ wire, value });
  }
  return out;
}
const one = (m: Map<number, Field[]>, f: number) => m.get(f)?.[0]?.value;

interface DecodedEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  sessionStatus?: number;
  scalars: Record<string, number>;
  images: { tag: string; height: number; width: number; colorspace: number; png: Buffer }[];
}
function decodeEvent(data: Buffer): DecodedEvent {
  const e = decode(data);
  const ev: DecodedEvent = { wallTime: one(e, 1) as number, step: (one(e, 2) as number | undefined) ?? 0, scalars: {}, images: [] };
  const version = one(e, 3);
  if (version) ev.fileVersion = (version as Buffer).toString('utf8');
  const session = one(e, 7);
  if (session) ev.sessionStatus = one(decode(session as Buffer), 1) as number;
  const summary = one(e, 5);
  if (summary)
    for (const { value } of decode(summary as Buffer).get(1) ?? []) {
      const v = decode(value as Buffer);
      const tag = (one(v, 1) as Buffer).toString('utf8');
      if (v.has(2)) ev.scalars[tag] = one(v, 2) as number;
      const img = one(v, 4);
      if (img) {
        const i = decode(img as Buffer);
        ev.images.push({ tag, height: one(i, 1) as number, width: one(i, 2) as number, colorspace: one(i, 3) as number, png: one(i, 4) as Buffer });
      }
    }
  return ev;
}

test('CRC32C: the standard check values, and TensorFlow\'s mask', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.equal(crc32c(Buffer.alloc(32)), 0x8a9136aa); // RFC 3720, 32 zero bytes
  assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43); // RFC 3720, 32 bytes of 0xFF
  assert.equal(crc32c(Buffer.alloc(0)), 0);
  const crc = crc32c(Buffer.from('123456789'));
  assert.equal(maskedCrc32c(Buffer.from('123456789')), ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0);
});

test('TFEvents writer: records framed and CRC-checked, events decoded field by field, corruption detected', async () => {
  const dir = makeTempDir('tfevents');
  try {
    const png = await sharp({ create: { width: 6, height: 4, channels: 3, background: { r: 200, g: 10, b: 60 } } }).png().toBuffer();
    const w = new TFEventsWriter(dir, { startStep: 21 });
    w.scalars(28, { 'Loss/loss': 0.123456789, 'Progress/kimg': 0.028, big: 3e38 }, 1700000000.25);
    w.image(28, 'Samples/grid', png, 1700000001.5);
    w.scalars(35, { 'Loss/loss': Number.NaN }, 1700000002);
    w.close();
    assert.match(w.path, /[/\\]events\.out\.tfevents\.\d{10}\.[\w.-]+\.\d+\.\d+$/);
    const events = readEventFile(w.path).map(decodeEvent);
    assert.equal(events.length, 5);
    assert.equal(events[0]!.fileVersion, 'brain.Event:2');
    assert.equal(events[1]!.sessionStatus, 1, 'a SessionLog START');
    assert.equal(events[1]!.step, 21, 'at the step the segment starts from');
    assert.equal(events[2]!.step, 28);
    assert.equal(events[2]!.wallTime, 1700000000.25);
    assert.deepEqual(events[2]!.scalars, { 'Loss/loss': Math.fround(0.123456789), 'Progress/kimg': Math.fround(0.028), big: Math.fround(3e38) });
    assert.deepEqual(events[3]!.images.map(({ png: _, ...rest }) => rest), [{ tag: 'Samples/grid', height: 4, width: 6, colorspace: 3 }]);
    assert.ok(events[3]!.images[0]!.png.equals(png), 'the PNG bytes as given');
    assert.ok(Number.isNaN(events[4]!.scalars['Loss/loss']));
    // One flipped bit anywhere in a record's data is caught by its CRC.
    const bytes = readFileSync(w.path);
    const bad = Buffer.from(bytes);
    bad[bytes.length - 10]! ^= 0x04;
    assert.throws(() => readRecords(bad), /bad data CRC/);
    const badLength = Buffer.from(bytes);
    badLength[0]! ^= 0x01;
    assert.throws(() => readRecords(badLength), /bad length CRC/);
    assert.throws(() => readRecords(bytes.subarray(0, bytes.length - 3)), /truncated/);
    // A writer whose folder cannot be made reports it once and writes nothing more; it never throws.
    writeFileSync(join(dir, 'a-file'), 'x');
    const messages: string[] = [];
    const off = new TFEventsWriter(join(dir, 'a-file', 'sub'), { onError: (m) => messages.push(m) });
    off.scalars(1, { x: 1 });
    off.close();
    assert.equal(off.enabled, false);
    assert.equal(messages.length, 1);
    assert.match(messages[0]!, /TensorBoard events .* are off/);
  } finally {
    cleanup(dir);
  }
});

/**
 * A Python that can import tensorboard: .venv's or python3, with tensorboard
 * where scripts/setup.sh puts it (.cache/python-tensorboard, a pip --target
 * folder), in PD_TENSORBOARD_PATH, or installed in that Python.
 */
function findTensorboardPython(): { python: string; env: NodeJS.ProcessEnv } | string {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const pythons = [process.env.PD_PYTHON, join(root, '.venv/bin/python'), 'python3'].filter((p): p is string => !!p && (!p.includes('/') || existsSync(p)));
  const extra = [process.env.PD_TENSORBOARD_PATH, join(root, '.cache/python-tensorboard')].filter((p): p is string => !!p && existsSync(p));
  const env = { ...process.env, ...(extra.length ? { PYTHONPATH: [...extra, process.env.PYTHONPATH].filter(Boolean).join(':') } : {}) };
  for (const python of pythons) {
    const r = spawnSync(python, ['-c', 'import tensorboard.backend.event_processing.event_accumulator'], { env, encoding: 'utf8' });
    if (r.status === 0) return { python, env };
  }
  return `tensorboard for Python is not installed (tried ${pythons.join(', ')}${extra.length ? ` with PYTHONPATH=${extra.join(':')}` : ''}; scripts/setup.sh installs it into .cache/python-tensorboard, or set PD_TENSORBOARD_PATH to a \`pip install --target\` folder)`;
}

const READ_BACK = `
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={'scalars': 0, 'images': 0})
acc.Reload()
tags = acc.Tags()
out = {'scalars': {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags['scalars']},
       'images': {t: [[e.step, e.width, e.height, e.encoded_image_string.hex()] for e in acc.Images(t)] for t in tags['images']}}
print(json.dumps(out))
`;

test('a run writes TensorBoard events beside stats.jsonl; resumed, a new file that supersedes orphaned ticks; TensorBoard reads scalars and sample grids back', async (t) => {
  const tmp = makeTempDir('tb-run');
  try {
    const data = await writeShapeImages(join(tmp, 'data'));
    const first = await train(tinyTrainRequest(data, join(tmp, 'runs'), { duration: durationForSteps(2) }));
    const runDir = first!.runDir;
    const firstGrid = readFileSync(join(runDir, 'samples-000000.png'));
    const tbDir = join(runDir, 'tensorboard');
    // As if a process had gone on past the saved state and died: a tick TensorBoard must drop once the run resumes.
    const orphan = new TFEventsWriter(tbDir);
    orphan.scalars(3 * NIMG_PER_STEP, { 'Loss/loss': 999 });
    orphan.close();
    await train(tinyTrainRequest(data, join(tmp, 'runs'), { resume: runDir, duration: durationForSteps(4) }));
    const files = readdirSync(tbDir).sort();
    assert.equal(files.length, 3, `one event file per training process (and the orphan's): ${files.join(', ')}`);
    assert.ok(files.every((f) => f.startsWith('events.out.tfevents.')));
    assert.equal(join(tbDir, files[1]!), orphan.path, 'event files sort in the order they were made');
    const resumedStart = readEventFile(join(tbDir, files[2]!)).map(decodeEvent)[1]!;
    assert.deepEqual([resumedStart.sessionStatus, resumedStart.step], [1, 2 * NIMG_PER_STEP + 1], 'the resumed file starts with a SessionLog START just past the state');

    // Our own read-back: every numeric stats.jsonl entry of every tick is a scalar at step = patch samples seen.
    const stats = readStats(runDir);
    assert.equal(stats.length, 4);
    const events = [files[0]!, files[2]!].flatMap((f) => readEventFile(join(tbDir, f)).map(decodeEvent));
    const scalarEvents = events.filter((e) => Object.keys(e.scalars).length);
    assert.deepEqual(scalarEvents.map((e) => e.step), [1, 2, 3, 4].map((k) => k * NIMG_PER_STEP));
    for (const [k, e] of scalarEvents.entries()) {
      const expected = Object.fromEntries(Object.entries(stats[k]!).filter(([key, v]) => typeof v === 'number' && key !== 'timestamp').map(([key, v]) => [key, Math.fround(v)]));
      assert.deepEqual(e.scalars, expected, `tick ${k}`);
      assert.equal(e.wallTime, stats[k]!.timestamp);
    }
    const imageEvents = events.filter((e) => e.images.length);
    assert.equal(imageEvents.length, 4, 'a grid at each snapshot');
    assert.ok(imageEvents[1]!.images[0]!.png.equals(firstGrid), 'the second snapshot\'s grid is the PNG of samples-000000.png as it was then');
    assert.ok(imageEvents[3]!.images[0]!.png.equals(readFileSync(join(runDir, 'samples-000000.png'))));

    const py = findTensorboardPython();
    if (typeof py === 'string') return t.skip(py);
    const r = spawnSync(py.python, ['-c', READ_BACK, tbDir], { env: py.env, encoding: 'utf8', maxBuffer: 64 << 20 });
    assert.equal(r.status, 0, r.stderr);
    const tb = JSON.parse(r.stdout) as { scalars: Record<string, [number, number][]>; images: Record<string, [number, number, number, string][]> };
    assert.deepEqual(tb.scalars['Loss/loss']!.map(([s]) => s), [7, 14, 21, 28], 'the orphaned tick is gone, the resumed one in its place');
    for (const [k, [, v]] of tb.scalars['Loss/loss']!.entries()) assert.equal(v, Math.fround(stats[k]!['Loss/loss']!), `Loss/loss at tick ${k}`);
    assert.deepEqual(tb.scalars['Progress/kimg']!.map(([, v]) => v), [0.007, 0.014, 0.021, 0.028].map(Math.fround));
    assert.deepEqual(tb.scalars['Schedule/lr']!.map(([, v]) => v), stats.map((s) => Math.fround(s['Schedule/lr']!)));
    for (const key of Object.keys(stats[0]!).filter((k) => k !== 'timestamp')) assert.ok(key in tb.scalars, `${key} in TensorBoard`);
    const grids = tb.images['Samples/grid']!;
    assert.equal(grids.length, 4);
    const meta = await sharp(readFileSync(join(runDir, 'samples-000000.png'))).metadata();
    assert.deepEqual(grids.map(([step, w, h]) => [step, w, h]), [7, 14, 21, 28].map((s) => [s, meta.width, meta.height]));
    assert.equal(grids[3]![3], readFileSync(join(runDir, 'samples-000000.png')).toString('hex'));
  } finally {
    cleanup(tmp);
  }
});

test('--no-tensorboard (tensorboard: false) writes no event files', async () => {
  const tmp = makeTempDir('tb-off');
  try {
    const data = await writeShapeImages(join(tmp, 'data'), { count: 8 });
    const r = await train(tinyTrainRequest(data, join(tmp, 'runs'), { duration: durationForSteps(1), tensorboard: false }));
    assert.ok(!existsSync(join(r!.runDir, 'tensorboard')));
    assert.equal(readStats(r!.runDir).length, 1);
  } finally {
    cleanup(tmp);
  }
});
