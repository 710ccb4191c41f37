// npm pack / npm publish: builds dist/src afresh (no source maps: the
// TypeScript sources are not shipped) and ships the addon compiled here as a
// prebuilt when it fits the default engine (a CPU PyTorch wheel's libtorch,
// with gloo, compiled from these sources): prebuilds/<platform>-<arch>/<key>/.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const say = (line) => process.stderr.write(`[prepack] ${line}\n`);

rmSync(join(root, 'dist', 'src'), { recursive: true, force: true });
execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
say('dist/src built');

rmSync(join(root, 'prebuilds'), { recursive: true, force: true });
const { addonKey } = await import(join(root, 'dist', 'src', 'setup', 'addon.js'));
const addon = join(root, 'build', 'Release', 'torch_addon.node');
let engine = null;
try {
  engine = JSON.parse(readFileSync(join(root, 'build', 'engine.json'), 'utf8'));
} catch {
  /* no addon built here */
}
const newestSource = Math.max(...['binding.gyp', 'scripts/find-libtorch.cjs', ...readdirSync(join(root, 'native')).map((f) => `native/${f}`)].map((f) => statSync(join(root, f)).mtimeMs));
const lt = engine?.libtorch;
const why = !existsSync(addon) || !lt ? 'no addon built here'
  : lt.cuda ? 'the addon here is a CUDA build'
  : lt.source.startsWith('Debian') ? "the addon here is built against Debian's libtorch"
  : !lt.gloo ? 'the addon here was built without gloo'
  : !lt.version ? "libtorch's version is unknown"
  : statSync(addon).mtimeMs < newestSource ? 'the addon here is older than its sources'
  : null;
if (why) {
  say(`no prebuilt addon shipped: ${why}`);
} else {
  const key = addonKey(lt);
  const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`, key);
  mkdirSync(dir, { recursive: true });
  copyFileSync(addon, join(dir, 'torch_addon.node'));
  const manifest = { key, torchVersion: lt.version, cuda: false, gloo: true, nodeAbi: process.versions.modules, platform: `${process.platform}-${process.arch}`, builtAt: new Date().toISOString() };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  say(`prebuilt addon for libtorch ${lt.version} (CPU), Node ABI ${process.versions.modules}: ${dir}`);
}
