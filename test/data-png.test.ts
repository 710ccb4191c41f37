// The fast PNG path must agree with sharp exactly, and step aside for anything it does not handle.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import { crc32, decodeSimplePng, encodePngRaw } from '../src/data/png.js';

function noise(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    b[i] = s >>> 24;
  }
  return b;
}

/** Smooth content so PNG's adaptive filtering picks Sub/Up/Average/Paeth, not just None. */
function smooth(w: number, h: number, c: number): Buffer {
  const b = Buffer.alloc(w * h * c);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) b[(y * w + x) * c + k] = (x * 3 + y * 5 + k * 40 + ((x * y) % 7)) & 255;
  return b;
}

async function sharpRaw(png: Buffer, grey: boolean): Promise<Buffer> {
  return sharp(png).toColourspace(grey ? 'b-w' : 'srgb').raw().toBuffer();
}

describe('PNG codec', () => {
  test('crc32 matches the standard check value', () => {
    assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  });

  test('decodes sharp/libpng output with every filter type, bit-exact with sharp', async () => {
    for (const [w, h, c] of [[17, 13, 3], [32, 32, 1], [5, 9, 1], [64, 64, 3]] as const) {
      for (const content of [smooth(w, h, c), noise(w * h * c, w + h)]) {
        let img = sharp(content, { raw: { width: w, height: h, channels: c } });
        if (c === 1) img = img.toColourspace('b-w');
        for (const opts of [{ compressionLevel: 9, adaptiveFiltering: true }, { compressionLevel: 0, adaptiveFiltering: false }]) {
          const png = await img.clone().png(opts).toBuffer();
          const d = decodeSimplePng(png);
          assert.ok(d, `${w}×${h}×${c} must take the fast path`);
          assert.equal(d.width, w);
          assert.equal(d.height, h);
          assert.equal(d.channels, c);
          assert.deepEqual(Buffer.from(d.data), content);
          assert.deepEqual(Buffer.from(d.data), await sharpRaw(png, c === 1));
        }
      }
    }
  });

  test('our encoder is read identically by sharp', async () => {
    const rgb = noise(12 * 7 * 3, 3);
    const png = encodePngRaw(rgb, 12, 7, 3);
    assert.deepEqual(await sharpRaw(png, false), rgb);
    const meta = await sharp(png).metadata();
    assert.equal(meta.channels, 3);
    const grey = noise(9 * 9, 4);
    const gpng = encodePngRaw(grey, 9, 9, 1);
    assert.deepEqual(await sharpRaw(gpng, true), grey);
    assert.equal((await sharp(gpng).metadata()).channels, 1);
    assert.deepEqual(encodePngRaw(grey, 9, 9, 1), gpng, 'deterministic');
  });

  test('steps aside (null) for alpha, palette, 16-bit, interlaced, damaged data', async () => {
    const rgba = await sharp(noise(8 * 8 * 4, 5), { raw: { width: 8, height: 8, channels: 4 } }).png().toBuffer();
    assert.equal(decodeSimplePng(rgba), null);
    const pal = await sharp(noise(8 * 8 * 3, 6), { raw: { width: 8, height: 8, channels: 3 } }).png({ palette: true }).toBuffer();
    assert.equal(decodeSimplePng(pal), null);
    const inter = await sharp(noise(8 * 8 * 3, 7), { raw: { width: 8, height: 8, channels: 3 } }).png({ progressive: true }).toBuffer();
    assert.equal(decodeSimplePng(inter), null);
    const good = encodePngRaw(noise(16 * 16 * 3, 8), 16, 16, 3);
    assert.ok(decodeSimplePng(good));
    assert.equal(decodeSimplePng(good.subarray(0, good.length >> 1)), null, 'truncated');
    const flipped = Buffer.from(good);
    flipped[100] = flipped[100]! ^ 0xff;
    assert.equal(decodeSimplePng(flipped), null, 'CRC mismatch');
    assert.equal(decodeSimplePng(Buffer.from('not a png at all, just text......................')), null);
    // 16-bit grey: IHDR depth 16.
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(1, 0);
    ihdr.writeUInt32BE(1, 4);
    ihdr[8] = 16;
    const chunk = (t: string, d: Buffer) => {
      const b = Buffer.alloc(12 + d.length);
      b.writeUInt32BE(d.length, 0);
      b.write(t, 4, 'ascii');
      d.copy(b, 8);
      b.writeUInt32BE(crc32(b.subarray(4, 8 + d.length)), 8 + d.length);
      return b;
    };
    const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const png16 = Buffer.concat([sig, chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(Buffer.from([0, 0x12, 0x34]))), chunk('IEND', Buffer.alloc(0))]);
    assert.equal(decodeSimplePng(png16), null);
    assert.deepEqual([...(await sharp(png16).toColourspace('b-w').raw().toBuffer())], [0x12], 'sharp handles what we skip');
  });
});
