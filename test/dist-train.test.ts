// Data-parallel training end to end, two ranks on loopback through the
// command line (our launcher, and torchrun where the wheel provides it):
// - 2 ranks equal, bit for bit, what the official semantics define: each
//   rank's share of the batch with its own seeded streams and data shard,
//   gradients averaged, one Adam/EMA update, computed here in one process;
// - exact resume of a 2-rank run, and resume across world sizes;
// - a killed rank ends the run with an error naming it, quickly, and the
//   last training state stays readable; Ctrl-C stops every rank after the
//   same step with one state;
// - generate --nproc 2 writes the same bytes as one process;
// - two "machines" (network namespaces joined by a veth pair) train together.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { loadDataset } from '../src/data/index.js';
import { buildComponents } from '../src/train/components.js';
import { resolveTrainOptions, type TrainOptionsInput } from '../src/train/options.js';
import { accumulateGradients, applyGradients } from '../src/train/step.js';
import { TrainingState } from '../src/train/training-state.js';
import { engineInfo, useThreads } from '../src/tensor/index.js';
import { assertSameTensors, cleanup, durationForSteps, listRunFiles, makeTempDir, tinyTrainFlags, tinyTrainRequest, writeShapeImages } from './helpers/train-fixtures.js';
import { CLI, runCli, startCli, type CliResult } from './helpers/dist-run.js';

let tmp: string;
let data: string;
before(async () => {
  tmp = makeTempDir('dist-train');
  data = await writeShapeImages(join(tmp, 'data'));
});
after(() => cleanup(tmp));

const runDirOf = (outdir: string) => join(outdir, readdirSync(outdir).find((f) => /^\d{5}-/.test(f))!);
const lastState = (runDir: string) => join(runDir, listRunFiles(runDir, /^training-state-\d+\.safetensors$/).at(-1)!);

async function trainRanks(outdir: string, steps: number, extra: string[] = []): Promise<string> {
  const r = await runCli(['train', '--nproc', '2', ...tinyTrainFlags(data, outdir, durationForSteps(steps)), ...extra]);
  assert.equal(r.code, 0, `train --nproc 2 failed:\n${r.stderr}`);
  return runDirOf(outdir);
}

test('2 ranks ≡ each rank\'s share computed in one process, gradients averaged (bit for bit after 4 steps)', async () => {
  const steps = 4;
  const runDir = await trainRanks(join(tmp, 'ddp'), steps);
  const log = readFileSync(join(runDir, 'log.txt'), 'utf8');
  assert.match(log, /Data-parallel over 2 processes \(Gloo\): 2 images per process per step in rounds of 2/);

  // The reference: both ranks' components in this process, rank 1 given rank 0's weights (DDP's broadcast).
  useThreads(1);
  const request = tinyTrainRequest(data, join(tmp, 'unused'), { duration: durationForSteps(steps) });
  const { quiet: _q, ...input } = request;
  const o = resolveTrainOptions(input as never, 2);
  const ds = await loadDataset(o.data, { resolution: o.resolution, channels: o.channels, labels: o.cond, maxImages: o.maxImages, seed: o.seed });
  const ranks = [0, 1].map((rank) => buildComponents(o, ds, 'cpu', { rank, worldSize: 2 }));
  ranks[1]!.net.loadStateDict(ranks[0]!.net.stateDict());
  ranks[1]!.ema.loadStateDict(ranks[0]!.ema.stateDict());
  const totalNimg = Math.round(o.duration * 1e6);
  let curNimg = 0;
  let patchSizes = new Set<string>();
  for (let s = 0; s < steps; s++) {
    const drawn: number[] = [];
    for (const c of ranks) accumulateGradients({ options: o, components: c, curNimg, totalNimg, onRound: (r) => drawn.push(r.patchSize) });
    patchSizes.add(drawn.join('/'));
    ranks[0]!.netParams.forEach((p, k) => {
      const g0 = p.grad!, g1 = ranks[1]!.netParams[k]!.grad!;
      g0.add_(g1).mul_(0.5); // Gloo's sum of two, then the division by the world size
      g1.copy_(g0);
    });
    const results = ranks.map((c) => applyGradients({ options: o, components: c, curNimg, totalNimg }));
    curNimg += Math.floor(results[0]!.imagesPerStep);
  }
  const reference = join(tmp, 'reference-state.safetensors');
  const c = ranks[0]!;
  new TrainingState(c, { curNimg, curTick: 0, step: steps, tickStartNimg: 0, elapsedSec: 0, snapshots: 0 })
    .save(reference, { options: {}, info: { network: {}, dataset: { name: '', resolution: 16, channels: 3, labelDim: 0 }, kimg: 0 } });
  const compared = assertSameTensors(lastState(runDir), reference, ['net.', 'ema.', 'adam.']);
  assert.ok(compared > 30, `${compared} tensors compared`);
  // The ranks drew their patch sizes independently (as the official code): not always the same.
  assert.ok([...patchSizes].some((p) => new Set(p.split('/')).size > 1), `every step drew one size on both ranks: ${[...patchSizes].join(', ')}`);
});

test('a 2-rank run resumes exactly with 2 ranks; across world sizes it goes on with a note', async () => {
  const whole = await trainRanks(join(tmp, 'whole'), 4);
  const half = await trainRanks(join(tmp, 'half'), 2);
  const r = await runCli(['train', '--nproc', '2', '--resume', half, '--duration', String(durationForSteps(4))]);
  assert.equal(r.code, 0, r.stderr);
  assertSameTensors(lastState(whole), lastState(half), ['net.', 'ema.', 'adam.', 'rng.']);
  const savedOf = (p: string) => TrainingState.read(p);
  assert.deepEqual(savedOf(lastState(half)).ranks, savedOf(lastState(whole)).ranks, 'each rank\'s sampler and generators');
  assert.equal(savedOf(lastState(whole)).ranks.length, 2);

  const one = await runCli(['train', '--resume', half, '--duration', String(durationForSteps(6))]);
  assert.equal(one.code, 0, one.stderr);
  assert.match(readFileSync(join(half, 'log.txt'), 'utf8'), /Resuming a 2-process state with 1 process: the data stream continues at item \d+/);
  const back = await runCli(['train', '--nproc', '2', '--resume', half, '--duration', String(durationForSteps(8))]);
  assert.equal(back.code, 0, back.stderr);
  assert.match(readFileSync(join(half, 'log.txt'), 'utf8'), /Resuming a 1-process state with 2 processes/);
  assert.equal(savedOf(lastState(half)).counters.step, 8);
});

function rankPid(launcherPid: number, rank: number): number | null {
  const out = execFileSync('ps', ['-o', 'pid=', '--ppid', String(launcherPid)]).toString().trim().split(/\s+/).map(Number);
  for (const pid of out) {
    try {
      if (readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`RANK=${rank}`)) return pid;
    } catch { /* gone */ }
  }
  return null;
}

/** Waits for `check`, failing at once (with its output) if the run ends first. */
async function until(what: string, check: () => boolean, run: Promise<CliResult>, limitMs = 120_000): Promise<void> {
  const start = Date.now();
  let ended: CliResult | null = null;
  void run.then((r) => (ended = r));
  while (!check()) {
    if (ended) throw new Error(`the run ended (code ${(ended as CliResult).code}) before ${what}:\n${(ended as CliResult).stderr}`);
    if (Date.now() - start > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('a killed rank: the launcher names it, stops the other, exits 1 within seconds; the last state stays intact', async () => {
  const outdir = join(tmp, 'killed');
  const { child, done } = startCli(['train', '--nproc', '2', ...tinyTrainFlags(data, outdir, durationForSteps(100000))], {}, 180);
  await until('a training state', () => existsSync(outdir) && readdirSync(outdir).length > 0 && listRunFiles(runDirOf(outdir), /^training-state-/).length > 0, done);
  const victim = rankPid(child.pid!, 1);
  assert.ok(victim, 'rank 1 found');
  const killedAt = Date.now();
  process.kill(victim, 'SIGKILL');
  const r = await done;
  const tookMs = Date.now() - killedAt;
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`error: rank 1 \\(pid ${victim}\\) was killed by SIGKILL`));
  // Rank 0 says why it stopped (its collective failed), in its output and its run's log; when the launcher's
  // SIGTERM ends it first, the launcher names how it ended. Either way the user sees what happened to every rank.
  const ownWords = /rank 0 of 2: .* failed: .*Another rank has probably stopped/s.test(r.stderr);
  if (ownWords) assert.match(readFileSync(join(runDirOf(outdir), 'log.txt'), 'utf8'), /error: rank 0 of 2/);
  else assert.match(r.stderr, /rank 0 \(pid \d+\) (exited with code \d+|was killed by SIG\w+) after the stop/);
  assert.ok(tookMs < 20_000, `the run ended ${tookMs} ms after the kill`);
  const state = TrainingState.read(lastState(runDirOf(outdir)));
  assert.equal(state.ranks.length, 2);
});

test('Ctrl-C on the launcher: every rank stops after the same step, one state is written, exit 130, and it resumes', async () => {
  const outdir = join(tmp, 'interrupted');
  const { child, done } = startCli(['train', '--nproc', '2', ...tinyTrainFlags(data, outdir, durationForSteps(100000)), '--dump', '100000'], {}, 180);
  await until('the first tick', () => existsSync(outdir) && readdirSync(outdir).length > 0 && existsSync(join(runDirOf(outdir), 'stats.jsonl')), done);
  child.kill('SIGINT');
  const r = await done;
  assert.equal(r.code, 130, r.stderr);
  const runDir = runDirOf(outdir);
  assert.match(readFileSync(join(runDir, 'log.txt'), 'utf8'), /Stopped at kimg [\d.]+; the state is saved/);
  const states = listRunFiles(runDir, /^training-state-/);
  assert.equal(states.length, 1);
  const step = TrainingState.read(join(runDir, states[0]!)).counters.step;
  const resumed = await runCli(['train', '--nproc', '2', '--resume', runDir, '--duration', String(durationForSteps(step + 1))]);
  assert.equal(resumed.code, 0, resumed.stderr);
});

test('generate --nproc 2 writes the same files, byte for byte, as one process', async () => {
  const runDir = await trainRanks(join(tmp, 'gen-src'), 2, ['--metrics', 'swd', '--metrics-samples', '10']);
  // Training-time metrics: both ranks sampled their share of the 10 seeds, rank 0 measured them.
  const measured = readFileSync(join(runDir, 'stats.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((e) => 'Metrics/swd' in e);
  assert.ok(measured.length >= 1 && measured.every((e) => Number.isFinite(e['Metrics/swd']) && e['Metrics/samples'] === 10), JSON.stringify(measured));
  const args = ['--network', runDir, '--seeds', '0-10', '--batch', '3', '--steps', '3', '--threads', '1'];
  const one = await runCli(['generate', ...args, '--outdir', join(tmp, 'gen1')]);
  assert.equal(one.code, 0, one.stderr);
  const two = await runCli(['generate', '--nproc', '2', ...args, '--outdir', join(tmp, 'gen2')]);
  assert.equal(two.code, 0, two.stderr);
  assert.match(two.stdout, /rank 0: wrote 6 images/);
  assert.match(two.stdout, /\[rank 1\] rank 1: wrote 5 images/);
  const files = readdirSync(join(tmp, 'gen1')).sort();
  assert.equal(files.length, 12, 'eleven seeds and the grid');
  assert.deepEqual(readdirSync(join(tmp, 'gen2')).sort(), files);
  for (const f of files) assert.ok(readFileSync(join(tmp, 'gen1', f)).equals(readFileSync(join(tmp, 'gen2', f))), `${f} differs`);
});

test('torchrun starts our ranks (its standalone rendezvous and environment), where the PyTorch wheel provides it', async (t) => {
  const torchrun = join(process.cwd(), '.venv', 'bin', 'torchrun');
  if (!existsSync(torchrun)) return t.skip('no torchrun in .venv');
  // torchrun hosts a store of its own PyTorch: the addon must be built on that same libtorch (not Debian's 1.13).
  // The addon finds libtorch through build/Release/libtorch-lib, a link: compare where it leads.
  const library = engineInfo().library;
  if (!library || !realpathSync(library).startsWith(realpathSync(join(process.cwd(), '.venv'))))
    return t.skip(`the addon is built on another libtorch (${engineInfo().library}) than .venv's torchrun`);
  const outdir = join(tmp, 'torchrun');
  const { done } = startCli(['train', ...tinyTrainFlags(data, outdir, durationForSteps(2))], { PD_DIST_JOIN_TIMEOUT: '60' }, 180,
    [torchrun, '--standalone', '--nproc_per_node', '2', '--no-python', process.execPath, CLI]);
  const r = await done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(readFileSync(join(runDirOf(outdir), 'log.txt'), 'utf8'), /Data-parallel over 2 processes/);
});

/** Two network namespaces joined by a veth pair: two "machines" with addresses 10.231.0.1 and .2. */
function makeHosts(): (() => void) | string {
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });
  const names = [`pdA${process.pid}`, `pdB${process.pid}`];
  try {
    for (const n of names) ip('netns', 'add', n);
    ip('link', 'add', `va${process.pid}`, 'type', 'veth', 'peer', 'name', `vb${process.pid}`);
    [`va${process.pid}`, `vb${process.pid}`].forEach((dev, k) => {
      ip('link', 'set', dev, 'netns', names[k]!);
      ip('-n', names[k]!, 'addr', 'add', `10.231.0.${k + 1}/24`, 'dev', dev);
      ip('-n', names[k]!, 'link', 'set', dev, 'up');
      ip('-n', names[k]!, 'link', 'set', 'lo', 'up');
    });
  } catch (err) {
    for (const n of names) try { ip('netns', 'del', n); } catch { /* not made */ }
    return `network namespaces are not available here: ${(err as Error).message.split('\n')[0]}`;
  }
  return () => names.forEach((n) => ip('netns', 'del', n));
}

test('two machines (network namespaces over a veth pair), one rank each, started with --nnodes/--node-rank', async (t) => {
  const hosts = makeHosts();
  if (typeof hosts === 'string') return t.skip(hosts);
  try {
    const outdir = join(tmp, 'hosts');
    const node = (k: number) =>
      startCli(['train', '--nproc', '1', '--nnodes', '2', '--node-rank', String(k), '--master-addr', '10.231.0.1', '--master-port', '29533', ...tinyTrainFlags(data, k === 0 ? outdir : join(tmp, 'hosts-b'), durationForSteps(3))],
        {}, 180, ['ip', 'netns', 'exec', `pd${k === 0 ? 'A' : 'B'}${process.pid}`, process.execPath, CLI]).done;
    const [a, b] = await Promise.all([node(0), node(1)]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.match(readFileSync(join(runDirOf(outdir), 'log.txt'), 'utf8'), /Data-parallel over 2 processes/);
    assert.ok(!existsSync(join(tmp, 'hosts-b')), 'only rank 0 writes a run directory');
  } finally {
    hosts();
  }
});

test('--same-patch-size: every rank draws the same patch size each round (the official default: each its own)', async () => {
  const ds = await loadDataset(data, { seed: 0 });
  const draws = (same: boolean) =>
    [0, 1].map((rank) => {
      const { quiet: _q, ...input } = tinyTrainRequest(data, tmp);
      const o = resolveTrainOptions({ ...input, samePatchSize: same } as TrainOptionsInput, 2);
      const c = buildComponents(o, ds, 'cpu', { rank, worldSize: 2 });
      return Array.from({ length: 24 }, () => c.patches.choose(0, 1000));
    });
  const [a, b] = draws(true);
  assert.deepEqual(a, b);
  assert.ok(new Set(a).size > 1, 'the shared draw still varies between rounds');
  const [c, d] = draws(false);
  assert.notDeepEqual(c, d);
});
