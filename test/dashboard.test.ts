// The training dashboard: the server's API and refusals (plain HTTP), and the
// page itself in headless Chromium (Debian's `chromium`, driven by
// playwright-core): a tiny run's loss curve and sample grid, updated as the
// run trains on; `train --dashboard` from the command line (live while the
// run goes on, gone or kept when it ends); and `patch-diffusion dashboard
// <run>` on the finished run. Screenshots go to a temporary folder (printed),
// and to docs/ with PD_DOCS_SCREENSHOTS=1.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import type { Browser, Page } from 'playwright-core';
import { findChromium, NO_BROWSER } from './helpers/browser.js';
import { startDashboard } from '../src/dashboard/server.js';
import { train } from '../src/train/train.js';
import { cleanup, durationForSteps, makeTempDir, readStats, tinyTrainFlags, tinyTrainRequest, writeShapeImages } from './helpers/train-fixtures.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
const SHOTS = makeTempDir('dashboard-shots');

let browser: Browser | null = null;
before(async () => {
  const chromiumPath = findChromium();
  if (!chromiumPath) return;
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true });
});
after(async () => {
  await browser?.close();
  console.log(`# dashboard screenshots: ${SHOTS}`);
});

async function newPage(): Promise<Page> {
  const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && !/Failed to load resource|EventSource/.test(m.text()) && problems.push(`console: ${m.text()}`));
  (page as Page & { problems: string[] }).problems = problems;
  return page;
}
const problemsOf = (page: Page) => (page as Page & { problems: string[] }).problems;

async function screenshot(page: Page, name: string): Promise<string> {
  const path = join(SHOTS, name);
  await page.screenshot({ path, fullPage: true });
  if (process.env.PD_DOCS_SCREENSHOTS === '1') {
    mkdirSync(join(ROOT, 'docs'), { recursive: true });
    copyFileSync(path, join(ROOT, 'docs', name));
  }
  return path;
}

/** The page's view: ticks drawn on the loss chart, the grid shown, the status pill. */
async function pageView(page: Page) {
  return page.evaluate(() => {
    const img = document.getElementById('grid') as HTMLImageElement;
    return {
      ticks: Number(document.body.dataset.ticks ?? -1),
      lossPoints: Number(document.querySelector('#chart-loss path.series')?.getAttribute('data-points') ?? 0),
      speedPoints: Number(document.querySelector('#chart-speed path.series')?.getAttribute('data-points') ?? 0),
      memorySeries: document.querySelectorAll('#chart-memory path.series').length,
      gridName: img.dataset.name ?? null,
      gridLoaded: img.dataset.loaded ?? null,
      gridWidth: img.complete ? img.naturalWidth : 0,
      status: document.getElementById('status')!.dataset.state ?? '',
      statusText: document.getElementById('status')!.textContent ?? '',
      cards: [...document.querySelectorAll('.card')].map((c) => c.textContent),
    };
  });
}

async function waitForView(page: Page, what: string, ok: (v: Awaited<ReturnType<typeof pageView>>) => boolean, timeoutMs = 20_000) {
  const start = Date.now();
  let v = await pageView(page);
  while (!ok(v)) {
    if (Date.now() - start > timeoutMs) assert.fail(`the page never showed ${what}; it shows ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
    v = await pageView(page);
  }
  return v;
}

/** Lines of a child's stdout as they come, and a wait for the first one that matches. */
function watchOutput(child: ChildProcess) {
  let text = '';
  const waiters: { re: RegExp; done: (m: RegExpMatchArray) => void }[] = [];
  const onData = (chunk: Buffer) => {
    text += chunk.toString();
    for (const w of [...waiters]) {
      const m = text.match(w.re);
      if (m) waiters.splice(waiters.indexOf(w), 1), w.done(m);
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  return {
    text: () => text,
    waitFor: (re: RegExp, timeoutMs = 60_000) =>
      new Promise<RegExpMatchArray>((done, fail) => {
        const m = text.match(re);
        if (m) return done(m);
        const timer = setTimeout(() => fail(new Error(`no ${re} in the output within ${timeoutMs} ms:\n${text}`)), timeoutMs);
        waiters.push({ re, done: (mm) => (clearTimeout(timer), done(mm)) });
      }),
    exited: new Promise<number | null>((done) => child.on('exit', (code) => done(code))),
  };
}

// ---- the server, without a browser -------------------------------------------------------

test('dashboard server: the run as JSON, grids and nothing else, events as the run grows, localhost only, a taken port named', async () => {
  const dir = makeTempDir('dash-api');
  try {
    writeFileSync(join(dir, 'training_options.json'), JSON.stringify({ data: '/x/data', arch: 'small', duration: 0.01 }));
    writeFileSync(join(dir, 'stats.jsonl'), JSON.stringify({ 'Progress/tick': 0, 'Progress/kimg': 1, 'Loss/loss': 0.5 }) + '\n');
    await sharp({ create: { width: 8, height: 8, channels: 3, background: '#336699' } }).png().toFile(join(dir, 'samples-000001.png'));
    const server = await startDashboard({ runDir: dir, port: 0, pollMs: 50 });
    try {
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
      const run = (await (await fetch(server.url + 'api/run')).json()) as { stats: unknown[]; grids: { name: string }[]; options: { arch: string } };
      assert.equal(run.stats.length, 1);
      assert.deepEqual(run.grids.map((g) => g.name), ['samples-000001.png']);
      assert.equal(run.options.arch, 'small');
      const page = await fetch(server.url);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<svg id="chart-loss"/);
      const png = await fetch(server.url + 'files/samples-000001.png');
      assert.equal(png.headers.get('content-type'), 'image/png');
      assert.ok(Buffer.from(await png.arrayBuffer()).equals(readFileSync(join(dir, 'samples-000001.png'))));
      for (const path of ['files/training_options.json', 'files/..%2Fetc%2Fpasswd', 'files/samples-000002.png', 'nothing'])
        assert.equal((await fetch(server.url + path)).status, 404, path);
      assert.equal((await fetch(server.url + 'api/run', { method: 'POST' })).status, 405);
      // A page served from another host name (DNS rebinding) is refused.
      const { request } = await import('node:http');
      const status = await new Promise<number>((done) => request(server.url + 'api/run', { headers: { host: 'evil.example:80' } }, (res) => done(res.statusCode!)).end());
      assert.equal(status, 403);

      // Server-sent events: everything first, then each new stats line, a rewritten grid, the end of the run.
      const ac = new AbortController();
      const res = await fetch(server.url + 'api/events', { signal: ac.signal });
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      const nextEvent = async (): Promise<{ event: string; data: unknown }> => {
        for (;;) {
          const m = /event: (\w+)\ndata: (.*)\n\n/.exec(buffer);
          if (m) {
            buffer = buffer.slice(m.index + m[0].length);
            return { event: m[1]!, data: JSON.parse(m[2]!) };
          }
          const { value, done } = await reader.read();
          if (done) throw new Error('the event stream ended');
          buffer += value;
        }
      };
      const init = await nextEvent();
      assert.equal(init.event, 'init');
      assert.equal((init.data as { stats: unknown[] }).stats.length, 1);
      appendFileSync(join(dir, 'stats.jsonl'), JSON.stringify({ 'Progress/tick': 1, 'Progress/kimg': 2, 'Loss/loss': 0.4 }) + '\n{"Progress/tick": 2, "Progr');
      assert.deepEqual(await nextEvent(), { event: 'stats', data: [{ 'Progress/tick': 1, 'Progress/kimg': 2, 'Loss/loss': 0.4 }] });
      appendFileSync(join(dir, 'stats.jsonl'), 'ess/kimg": 3, "Loss/loss": 0.3}\n');
      assert.deepEqual(await nextEvent(), { event: 'stats', data: [{ 'Progress/tick': 2, 'Progress/kimg': 3, 'Loss/loss': 0.3 }] }, 'a line written in two pieces arrives whole');
      await new Promise((r) => setTimeout(r, 20));
      await sharp({ create: { width: 8, height: 8, channels: 3, background: '#996633' } }).png().toFile(join(dir, 'samples-000001.png'));
      const grids = await nextEvent();
      assert.equal(grids.event, 'grids');
      writeFileSync(join(dir, 'progress.json'), JSON.stringify({ curNimg: 3000, finished: true, lastSnapshot: null }));
      assert.deepEqual(await nextEvent(), { event: 'status', data: { live: false, progress: { curNimg: 3000, finished: true, lastSnapshot: null } } });
      ac.abort();

      await assert.rejects(startDashboard({ runDir: dir, port: server.port }), new RegExp(`port ${server.port} on 127\\.0\\.0\\.1 is in use`));
    } finally {
      await server.close();
    }
    await assert.rejects(fetch(server.url), 'closed');
  } finally {
    cleanup(dir);
  }
});

// ---- the page in Chromium ------------------------------------------------------------------

test('the page in headless Chromium: a run\'s loss curve and sample grid, updated when the run trains on', async (t) => {
  if (!browser) return t.skip(NO_BROWSER);
  const tmp = makeTempDir('dash-page');
  try {
    const data = await writeShapeImages(join(tmp, 'data'));
    const outdir = join(tmp, 'runs');
    const first = await train(tinyTrainRequest(data, outdir, { duration: durationForSteps(2), gridSeeds: 9 }));
    const runDir = first!.runDir;
    const server = await startDashboard({ runDir, port: 0 });
    try {
      const page = await newPage();
      await page.goto(server.url);
      const v1 = await waitForView(page, 'two ticks and a grid', (v) => v.lossPoints === 2 && v.gridWidth > 0);
      assert.equal(v1.ticks, 2);
      assert.equal(v1.speedPoints, 2);
      assert.equal(v1.memorySeries, 2, 'RSS and peak RSS');
      assert.equal(v1.gridName, 'samples-000000.png');
      const meta = await sharp(join(runDir, 'samples-000000.png')).metadata();
      assert.equal(v1.gridWidth, meta.width, 'the grid PNG as the run wrote it');
      assert.equal(v1.status, 'finished', 'progress.json of the first segment');
      assert.ok(v1.cards.some((c) => c?.startsWith('loss')), 'a loss card');
      const lossText = v1.cards.find((c) => c?.startsWith('loss'))!;
      const stats1 = readStats(runDir);
      assert.equal(lossText, `loss${+stats1[1]!['Loss/loss']!.toPrecision(4)}`);
      await screenshot(page, 'dashboard-tiny-2-ticks.png');

      // The run goes on (resumed for two more steps, in this process): the open page follows.
      // Meanwhile a second dashboard asked for the same port cannot start: the training goes on without it.
      const second = await train(tinyTrainRequest(data, outdir, { resume: runDir, duration: durationForSteps(4), dashboard: { port: server.port } }));
      assert.equal(second!.stoppedEarly, false);
      assert.match(readFileSync(join(runDir, 'log.txt'), 'utf8'), new RegExp(`dashboard: port ${server.port} on 127\\.0\\.0\\.1 is in use.*training goes on without it`));
      const v2 = await waitForView(page, 'four ticks, the rewritten grid and the run finished', (v) => v.lossPoints === 4 && v.gridLoaded !== null && v.gridLoaded !== v1.gridLoaded && v.status === 'finished');
      assert.equal(v2.ticks, 4);
      assert.equal(v2.status, 'finished');
      assert.equal(await page.isHidden('#panel-metrics'), true, 'no metrics panel without metrics');
      // A metrics entry as `--metrics` writes it: the quality panel appears, with a card.
      appendFileSync(join(runDir, 'stats.jsonl'), JSON.stringify({ 'Progress/kimg': 0.028, 'Metrics/samples': 100, 'Metrics/seeds': '0-99', 'Metrics/sampler_steps': 2, 'Metrics/fd_classifier': 12.5, 'Timing/metrics_sec': 1 }) + '\n');
      const v3 = await waitForView(page, 'the metrics', (v) => v.cards.includes('fd classifier12.5'));
      assert.equal(v3.ticks, 4, 'a metrics entry is no tick');
      assert.equal(await page.isVisible('#panel-metrics'), true);
      assert.equal(await page.getAttribute('#chart-metrics path.series', 'data-points'), '1');
      assert.deepEqual(problemsOf(page), []);
      await screenshot(page, 'dashboard-tiny-4-ticks.png');
      await page.close();
    } finally {
      await server.close();
    }
  } finally {
    cleanup(tmp);
  }
});

test('train --dashboard 0 --dashboard-keep (CLI): the page at the printed URL follows the run live, then shows it finished until SIGTERM; `dashboard <run>` shows its history', async (t) => {
  if (!browser) return t.skip(NO_BROWSER);
  const tmp = makeTempDir('dash-cli');
  let child: ChildProcess | null = null;
  try {
    const data = await writeShapeImages(join(tmp, 'data'));
    const outdir = join(tmp, 'runs');
    const steps = 30;
    // --snap 5: a grid every 5 ticks, so the page has something new often; --dump 10 keeps the state writes few.
    const flags = [...tinyTrainFlags(data, outdir, durationForSteps(steps)), '--snap', '5', '--dump', '10', '--grid-seeds', '16', '--grid-steps', '4', '--dashboard', '0', '--dashboard-keep'];
    const started = Date.now();
    child = spawn(process.execPath, [CLI, 'train', ...flags], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = watchOutput(child);
    const url = (await out.waitFor(/Dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/))[1]!;
    const runDir = (await out.waitFor(/Run directory: (.*)\n/))[1]!;
    const page = await newPage();
    await page.goto(url);
    const first = await waitForView(page, 'the live run', (v) => v.status === 'live' && v.ticks >= 0);
    assert.ok(first.ticks < steps, `the page opened while the run was going on (it showed ${first.ticks} of ${steps} ticks)`);
    const later = await waitForView(page, 'more ticks while live', (v) => v.ticks > first.ticks, 60_000);
    assert.ok(later.ticks > first.ticks);
    await out.waitFor(/Training finished; the dashboard stays at/);
    const done = await waitForView(page, 'the finished run', (v) => v.status === 'finished' && v.ticks === steps && v.gridWidth > 0);
    assert.equal(done.lossPoints, steps);
    assert.equal(readStats(runDir).length, steps);
    await screenshot(page, 'dashboard-live-finished.png');
    // Still serving after the training; SIGTERM ends it cleanly, and the page says so.
    assert.equal((await fetch(url + 'api/run')).status, 200);
    child.kill('SIGTERM');
    assert.equal(await out.exited, 0, out.text());
    child = null;
    await waitForView(page, 'the server gone', (v) => v.statusText === 'finished · server stopped');
    assert.deepEqual(problemsOf(page), []);
    await page.close();
    console.log(`# train --dashboard run of ${steps} ticks: ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // The finished run directory on its own: `patch-diffusion dashboard <run>`.
    const viewer = spawn(process.execPath, [CLI, 'dashboard', runDir, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = viewer;
    const vout = watchOutput(viewer);
    const vurl = (await vout.waitFor(/(http:\/\/127\.0\.0\.1:\d+\/)/))[1]!;
    const history = await newPage();
    await history.goto(vurl);
    const h = await waitForView(history, 'the run\'s history', (v) => v.ticks === steps && v.gridWidth > 0 && v.status === 'finished');
    assert.equal(h.lossPoints, steps);
    await screenshot(history, 'dashboard-history.png');
    await history.close();
    viewer.kill('SIGINT');
    assert.equal(await vout.exited, 0, vout.text());
    child = null;
  } finally {
    child?.kill('SIGKILL');
    cleanup(tmp);
  }
});

test('train --dashboard without --dashboard-keep: the server stops with the training; `dashboard` on a folder that is no run says so', async () => {
  const tmp = makeTempDir('dash-stop');
  try {
    const data = await writeShapeImages(join(tmp, 'data'), { count: 8 });
    const child = spawn(process.execPath, [CLI, 'train', ...tinyTrainFlags(data, join(tmp, 'runs'), durationForSteps(2)), '--dashboard', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = watchOutput(child);
    const url = (await out.waitFor(/Dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/))[1]!;
    assert.equal(await out.exited, 0, out.text());
    assert.match(out.text(), /Done: /);
    await assert.rejects(fetch(url), 'nothing listens once the training process is gone');

    const bad = spawn(process.execPath, [CLI, 'dashboard', data], { stdio: ['ignore', 'pipe', 'pipe'] });
    const bout = watchOutput(bad);
    assert.equal(await bout.exited, 1);
    assert.match(bout.text(), /is not a run directory/);
    const lonely = spawn(process.execPath, [CLI, 'train', '--data', data, '--duration', '0.001', '--dashboard-keep', '--dry-run'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lout = watchOutput(lonely);
    assert.equal(await lout.exited, 1);
    assert.match(lout.text(), /--dashboard-host and --dashboard-keep go with --dashboard/);
  } finally {
    cleanup(tmp);
  }
});
