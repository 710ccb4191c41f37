// The c10d binding and the rank environment: two real ranks on loopback
// (Gloo), joined through our launcher, each checking broadcast (also of a
// channels-last tensor), sums, gradient averaging (with a parameter that got
// no gradient on one rank), JSON gather/broadcast; and the environment
// errors that must come before any work.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchRanks, withoutOptions } from '../src/distributed/launch.js';
import { readRankEnvironment } from '../src/distributed/environment.js';
import { ProcessGroup } from '../src/distributed/process-group.js';
import { collectivesAvailable } from '../src/tensor/collectives.js';
import { cleanup, makeTempDir } from './helpers/train-fixtures.js';
import { runCli } from './helpers/dist-run.js';

let tmp: string;
before(() => {
  tmp = makeTempDir('dist-collectives');
});
after(() => cleanup(tmp));

test('the addon is built with Gloo', () => {
  assert.equal(collectivesAvailable(), true, 'setup.sh installs libgloo-dev; without it distributed training is compiled out');
});

test('two ranks on loopback: broadcast, sums, gradient averaging, JSON gather and broadcast', async () => {
  const worker = fileURLToPath(new URL('./helpers/dist-worker.js', import.meta.url));
  const code = await launchRanks({ nproc: 2, script: worker, args: [tmp], graceSec: 5 });
  assert.equal(code, 0);
  const seen = [0, 1].map((r) => JSON.parse(readFileSync(join(tmp, `rank-${r}.json`), 'utf8')));
  for (const s of seen) {
    assert.deepEqual(s.a, [0, 1, 2, 3, 4, 5], 'rank 0 values everywhere');
    assert.deepEqual(s.nhwc, Array.from({ length: 24 }, (_, k) => k), 'a channels-last tensor is broadcast too');
    assert.deepEqual(s.sums, [1, 1, 2 ** 41 + 1], 'float64 sums, exact for integers');
    assert.deepEqual(s.t, [3, 30]);
    assert.deepEqual(s.pGrad, Array.from({ length: 12 }, (_, k) => (1.5 * (k + 1))), 'mean of (r+1)(k+1) over r = 0, 1');
    assert.deepEqual(s.qGrad, [2, 2, 2, 2, 2], 'a missing gradient counts as zeros: (4 + 0) / 2');
    assert.deepEqual(s.json, [{ rank: 0, text: 'é' }, { rank: 1, text: 'éé' }]);
    assert.deepEqual(s.fromRank0, { hello: 'from rank 0', n: 42 });
  }
});

test('the environment: single process without it, clear errors for contradictions', () => {
  assert.equal(readRankEnvironment({}), null);
  const base = { RANK: '1', WORLD_SIZE: '2', MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29500' };
  const e = readRankEnvironment({ ...base, LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '2', TORCHELASTIC_USE_AGENT_STORE: 'True', TORCHELASTIC_RESTART_COUNT: '3', GLOO_SOCKET_IFNAME: 'eth1' })!;
  assert.deepEqual(e, { rank: 1, localRank: 1, worldSize: 2, localWorldSize: 2, masterAddr: '10.0.0.1', masterPort: 29500, agentStore: true, restartCount: 3, glooInterface: 'eth1' });
  assert.throws(() => readRankEnvironment({ ...base, RANK: '2' }), /RANK=2 must be less than WORLD_SIZE=2/);
  assert.throws(() => readRankEnvironment({ ...base, WORLD_SIZE: 'two' }), /WORLD_SIZE="two" is not an integer/);
  assert.throws(() => readRankEnvironment({ ...base, MASTER_PORT: '70000' }), /MASTER_PORT="70000"/);
  assert.throws(() => readRankEnvironment({ RANK: '0', WORLD_SIZE: '2', MASTER_PORT: '1' }), /MASTER_ADDR is not set/);
  assert.throws(() => readRankEnvironment({ RANK: '0', MASTER_ADDR: 'x' }), /WORLD_SIZE is not set/);
});

test('launcher: its own options are removed from the ranks\' command line', () => {
  assert.deepEqual(withoutOptions(['train', '--nproc', '2', '--data', 'x', '--master-port=5', '--nnodes', '1'], ['--nproc', '--nnodes', '--master-port']), ['train', '--data', 'x']);
});

test('joining: a port in use and a name that does not resolve are refused at once, naming the variable', async () => {
  const server: Server = createServer();
  const port = await new Promise<number>((resolve) => server.listen(0, () => resolve((server.address() as { port: number }).port)));
  try {
    await assert.rejects(
      ProcessGroup.join({ rank: 0, localRank: 0, worldSize: 2, localWorldSize: 2, masterAddr: '127.0.0.1', masterPort: port, agentStore: false, restartCount: 0, glooInterface: '' }),
      new RegExp(`MASTER_PORT=${port} is already in use`),
    );
  } finally {
    server.close();
  }
  await assert.rejects(
    ProcessGroup.join({ rank: 1, localRank: 1, worldSize: 2, localWorldSize: 2, masterAddr: 'no-such-host.invalid', masterPort: 29500, agentStore: false, restartCount: 0, glooInterface: '' }),
    /MASTER_ADDR=no-such-host\.invalid does not resolve/,
  );
  await assert.rejects(
    ProcessGroup.join({ rank: 0, localRank: 0, worldSize: 2, localWorldSize: 2, masterAddr: '192.0.2.1', masterPort: 29500, agentStore: false, restartCount: 0, glooInterface: '' }),
    /rank 0 hosts the rendezvous, but MASTER_ADDR=192\.0\.2\.1 .* is not an address of this machine/,
  );
});

test('a rank started with RANK >= WORLD_SIZE, or one whose peers never come, fails with a clear error and no hang', async () => {
  const r1 = await runCli(['train', '--data', 'fashion-mnist-5k', '--duration', '0.001'], { RANK: '2', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29511' }, 60);
  assert.equal(r1.code, 1);
  assert.match(r1.stderr, /RANK=2 must be less than WORLD_SIZE=2/);
  // Rank 1 of 2 alone: rank 0 never hosts the rendezvous; the join timeout ends it.
  const started = Date.now();
  const r2 = await runCli(['train', '--data', 'fashion-mnist-5k', '--arch', 'small', '--duration', '0.001'],
    { RANK: '1', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29512', PD_DIST_JOIN_TIMEOUT: '3' }, 60);
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /rank 1 of 2: could not join the group at 127\.0\.0\.1:29512 within 3 s/);
  assert.ok(Date.now() - started < 30_000, `gave up after ${Date.now() - started} ms`);
});

test('a rendezvous that accepts the connection but never answers (another libtorch\'s store) ends the rank, no hang', async () => {
  const sockets: import('node:net').Socket[] = [];
  const silent = createServer((s) => sockets.push(s));
  const port = await new Promise<number>((resolve) => silent.listen(0, '127.0.0.1', () => resolve((silent.address() as { port: number }).port)));
  try {
    const started = Date.now();
    const r = await runCli(['train', '--data', 'fashion-mnist-5k', '--arch', 'small', '--duration', '0.001'],
      { RANK: '1', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), PD_DIST_JOIN_TIMEOUT: '2', TORCHELASTIC_USE_AGENT_STORE: 'True' }, 90);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`rank 1 of 2: could not join the group at 127\\.0\\.0\\.1:${port} within 2 s .*run torchrun from the PyTorch whose libtorch this addon uses`));
    assert.ok(Date.now() - started < 60_000, `gave up after ${Date.now() - started} ms`);
  } finally {
    sockets.forEach((s) => s.destroy());
    silent.close();
  }
});
