// The sampling page in a real headless Chromium: `serve` exports a trained
// network to ONNX and serves the page; the page, on onnxruntime-web's WASM
// back-end (and WebGPU where the browser offers it), draws images whose
// pixels equal `generate`'s for the same seeds within one quantisation
// level; a missing or broken model gives a clear message on the page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { startSampling } from '../src/cli/commands/serve.js';
import { decodeSimplePng } from '../src/data/png.js';
import { generate } from '../src/generate/generate.js';
import { pageFiles, servePage } from '../src/web/serve.js';
import { train } from '../src/train/train.js';
import { findChromium, NO_BROWSER } from './helpers/browser.js';
import { cleanup, makeTempDir, tinyTrainRequest, writeShapeImages } from './helpers/train-fixtures.js';

let tmp: string;
let runDir: string;
let browser: Browser | null = null;
before(async () => {
  tmp = makeTempDir('web-page');
  const data = await writeShapeImages(join(tmp, 'data'));
  const run = await train(tinyTrainRequest(data, join(tmp, 'runs'), { duration: 28 / 1e6 }));
  runDir = run!.runDir;
  const chromium = findChromium();
  if (chromium) browser = await (await import('playwright-core')).chromium.launch({ executablePath: chromium, headless: true, args: ['--enable-unsafe-webgpu'] });
});
after(async () => {
  await browser?.close();
  cleanup(tmp);
});

type PdState = { status: string; message: string; backend: string; images: number[][]; size: number };
const pdState = (page: Page) => page.evaluate(() => (window as unknown as { pd: PdState }).pd);

async function sampleOnPage(url: string, backend: string, seeds: [number, number], steps: number): Promise<{ page: Page; state: PdState }> {
  const page = await browser!.newPage();
  await page.goto(`${url}?backend=${backend}`);
  await page.waitForFunction(() => ['ready', 'error'].includes((window as unknown as { pd: PdState }).pd.status), null, { timeout: 120_000 });
  let state = await pdState(page);
  if (state.status === 'error') return { page, state };
  await page.fill('#seed', String(seeds[0]));
  await page.fill('#count', String(seeds[1] - seeds[0] + 1));
  await page.fill('#steps', String(steps));
  await page.click('#run');
  await page.waitForFunction(() => ['done', 'error'].includes((window as unknown as { pd: PdState }).pd.status), null, { timeout: 300_000 });
  state = await pdState(page);
  return { page, state };
}

test('the page samples what generate samples, for the same seeds (WASM, and WebGPU when the browser has it)', async (t) => {
  if (!browser) return t.skip(NO_BROWSER);
  const cli = await generate({ network: runDir, outdir: join(tmp, 'cli'), seeds: [3, 4], steps: 4, grid: false, quiet: true, threads: 1, device: 'cpu' });
  const site = await startSampling({ network: runDir, port: 0 });
  try {
    for (const backend of ['wasm', 'webgpu']) {
      const { page, state } = await sampleOnPage(site.url!, backend, [3, 4], 4);
      if (backend === 'webgpu' && state.status === 'error') {
        t.diagnostic(`WebGPU not available in this headless Chromium: ${state.message}`);
        await page.close();
        continue;
      }
      assert.equal(state.status, 'done', state.message);
      assert.equal(state.images.length, 2);
      cli.files.forEach((file, k) => {
        const png = decodeSimplePng(readFileSync(file))!;
        let worst = 0;
        for (let p = 0; p < png.width * png.height; p++)
          for (let ch = 0; ch < 3; ch++) worst = Math.max(worst, Math.abs(state.images[k]![p * 4 + ch]! - png.data[p * 3 + ch]!));
        assert.ok(worst <= 1, `${backend}: seed ${3 + k} differs from generate's PNG by ${worst} levels`);
      });
      await page.screenshot({ path: join(tmp, `page-${backend}.png`) });
      if (process.env.PD_DOCS_SCREENSHOTS) writeFileSync(new URL('../../docs/sampling-page.png', import.meta.url), readFileSync(join(tmp, `page-${backend}.png`)));
      await page.close();
    }
  } finally {
    await site.stop();
  }
});

test('a missing or broken model gives a clear message on the page', async (t) => {
  if (!browser) return t.skip(NO_BROWSER);
  const bundle = join(tmp, 'bundle');
  const written = await startSampling({ network: runDir, bundle });
  assert.ok(existsSync(join(bundle, 'index.html')) && existsSync(join(bundle, 'model.onnx')) && existsSync(join(bundle, 'web', 'ort', 'ort.min.mjs')));
  const files = pageFiles(join(bundle, 'model.onnx'), written.info);
  // A broken model file.
  writeFileSync(join(tmp, 'broken.onnx'), 'not an onnx model');
  files.set('model.onnx', { file: join(tmp, 'broken.onnx') });
  let server = await servePage(files, { host: '127.0.0.1', port: 0 });
  let port = (server.address() as { port: number }).port;
  let r = await sampleOnPage(`http://127.0.0.1:${port}/`, 'wasm', [0, 0], 2);
  assert.equal(r.state.status, 'error');
  assert.match(r.state.message, /could not load the model/);
  assert.match(await r.page.textContent('#status') ?? '', /could not load the model/);
  await r.page.close();
  server.close();
  // No model.json (a folder that is not a bundle).
  files.delete('model.json');
  server = await servePage(files, { host: '127.0.0.1', port: 0 });
  port = (server.address() as { port: number }).port;
  r = await sampleOnPage(`http://127.0.0.1:${port}/`, 'wasm', [0, 0], 2);
  assert.equal(r.state.status, 'error');
  assert.match(r.state.message, /model\.json: HTTP 404/);
  await r.page.close();
  server.close();
  rmSync(bundle, { recursive: true, force: true });
});
