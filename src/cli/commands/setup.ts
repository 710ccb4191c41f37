// `patch-diffusion setup`: the engine (libtorch, fetched into the per-user
// cache when there is none) and the addon that binds it, and on request the
// built-in data sets. Works before the addon exists; running it again with
// nothing changed does nothing.
import { Command, InvalidArgumentError } from 'commander';
import { ensureEmoji } from '../../data/emoji.js';
import { ensureFashionMnist, FASHION_MNIST_DIR } from '../../data/fashion-mnist.js';
import { setupEngine, type EngineChoice } from '../../setup/setup.js';

const DATA_SETS = ['fashion-mnist', 'emoji'] as const;
type DataSetName = (typeof DATA_SETS)[number];

function engineChoice(value: string): EngineChoice {
  if (value === 'auto' || value === 'wheel' || value === 'debian') return value;
  throw new InvalidArgumentError(`expected auto, wheel or debian, got '${value}'`);
}

function dataList(value: string): DataSetName[] {
  const names = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) if (!(DATA_SETS as readonly string[]).includes(n)) throw new InvalidArgumentError(`unknown data set '${n}' (expected ${DATA_SETS.join(', ')})`);
  return names as DataSetName[];
}

export function setupCommand(): Command {
  return new Command('setup')
    .description('set up the engine: libtorch (fetched when missing) and the addon that binds it')
    .option('--engine <auto|wheel|debian>', 'auto: the first libtorch found ($LIBTORCH, a PyTorch wheel, Debian\'s libtorch-dev), else fetch the wheel; wheel: the per-user cache\'s PyTorch wheel; debian: Debian\'s libtorch-dev (apt-get as root)', engineChoice, 'auto')
    .option('--libtorch <dir>', 'an unpacked libtorch or a wheel\'s torch/ folder (as $LIBTORCH; wins over --engine)')
    .option('--rebuild', 'compile the addon even when a fitting one is in place, shipped or cached', false)
    .option('--no-fetch', 'only use what is there: fetch nothing with pip or apt-get')
    .option('--data <names>', `also fetch built-in data sets: ${DATA_SETS.join(', ')} (comma-separated)`, dataList)
    .option('--quiet', 'print only the result line', false)
    .action(async (opts: { engine: EngineChoice; libtorch?: string; rebuild: boolean; fetch: boolean; data?: DataSetName[]; quiet: boolean }) => {
      const log = opts.quiet ? () => {} : (line: string) => process.stderr.write(`[setup] ${line}\n`);
      const result = await setupEngine({ engine: opts.engine, libtorch: opts.libtorch, rebuild: opts.rebuild, fetch: opts.fetch, log });
      const how = { unchanged: 'already in place', prebuilt: 'the prebuilt shipped in the package', cache: 'compiled before, from the per-user cache', compiled: 'compiled now' }[result.addon];
      log(`addon: ${how} (${result.seconds.toFixed(1)} s)`);
      for (const name of opts.data ?? []) {
        log(`data set ${name}`);
        if (name === 'fashion-mnist') ensureFashionMnist(FASHION_MNIST_DIR, opts.fetch);
        else ensureEmoji({ install: opts.fetch });
      }
      // The engine as `info` describes it, from the addon just put in place.
      const { describeEngine } = await import('../../tensor/index.js');
      console.log(`ready: ${describeEngine()}${result.libtorch.cuda ? ' (CUDA build)' : ''}`);
    });
}
