// Compiles the libtorch addon with node-gyp against the libtorch that
// find-libtorch.cjs locates ($LIBTORCH wins), showing progress, and records
// what it was built against in build/engine.json. Used by scripts/setup.sh
// (a clone of the repository) and by `patch-diffusion setup` and the npm
// install hook (an installed package), which pass LIBTORCH explicitly.
//
//   node scripts/build-native.cjs
//
// node-gyp, in this order: npm's own copy ($npm_config_node_gyp, which npm
// sets for install scripts), the package's (a devDependency in the
// repository), the one bundled with the npm beside this Node, then node-gyp
// on the PATH. Node's headers: $npm_config_nodedir, else /usr when Debian's
// are there (no download on an offline machine), else node-gyp's own.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync, spawn } = require('node:child_process');

const root = path.join(__dirname, '..');
const say = (line) => process.stderr.write(`[patch-diffusion] ${line}\n`);

/** node-gyp's entry script (a .js run with this Node), or a command on the PATH. */
function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  try { candidates.push(require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] })); } catch { /* not a dependency here */ }
  if (process.env.npm_execpath) candidates.push(path.join(path.dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  for (const prefix of [path.join(path.dirname(process.execPath), '..', 'lib'), '/usr/lib', '/usr/local/lib', '/usr/share/nodejs']) {
    candidates.push(path.join(prefix, 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  }
  const found = candidates.find((c) => c && fs.existsSync(c));
  if (found) return { command: process.execPath, args: [found] };
  try {
    execFileSync('node-gyp', ['--version'], { stdio: 'ignore' });
    return { command: 'node-gyp', args: [] };
  } catch {
    return null;
  }
}

function nodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  return fs.existsSync('/usr/include/node/node_api.h') ? '/usr' : null;
}

function locate() {
  const out = execFileSync(process.execPath, [path.join(__dirname, 'find-libtorch.cjs'), 'json'], { encoding: 'utf8' });
  return JSON.parse(out);
}

/**
 * Points build/Release/libtorch-lib (the addon's first RUNPATH entry) at the libtorch in use. (The
 * installed package's set-up does the same for an addon it puts in place: src/setup/addon.ts, which this
 * script, run before any TypeScript is compiled, cannot import.)
 */
function linkLibtorch(releaseDir, libdir) {
  const link = path.join(releaseDir, 'libtorch-lib');
  try { fs.rmSync(link, { force: true }); } catch { /* absent */ }
  fs.symlinkSync(libdir, link);
}

function compile(libtorch) {
  const gyp = findNodeGyp();
  if (!gyp) {
    throw new Error('node-gyp was not found (npm ships it; or npm install -g node-gyp). It compiles the addon with g++, make and python3.');
  }
  const sources = fs.readdirSync(path.join(root, 'native')).filter((f) => f.endsWith('.cc'));
  const args = [...gyp.args, 'rebuild', '-j', 'max'];
  const dir = nodeDir();
  if (dir) args.push(`--nodedir=${dir}`);
  // node-gyp rebuild starts by removing build/: the log is written beside, then moved in.
  const logFile = path.join(os.tmpdir(), `patch-diffusion-native-build-${process.pid}.log`);
  const finalLog = path.join(root, 'build', 'native-build.log');
  say(`compiling the addon against libtorch ${libtorch.version ?? ''} (${libtorch.source}): ${sources.length} files, about 2 minutes on 2 cores`);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    fs.writeFileSync(logFile, '');
    const child = spawn(gyp.command, args, { cwd: root, env: { ...process.env, LIBTORCH: libtorch.root }, stdio: ['ignore', 'pipe', 'pipe'] });
    const lines = [];
    let done = 0;
    const seconds = () => Math.round((Date.now() - started) / 1000);
    const onData = (chunk) => {
      const text = chunk.toString();
      fs.appendFileSync(logFile, text);
      for (const line of text.split('\n')) {
        if (!line.trim()) continue;
        lines.push(line);
        if (lines.length > 60) lines.shift();
        const m = /CXX\(target\) .*\/([^/]+)\.o$/.exec(line.trim());
        if (m) say(`  [${++done}/${sources.length}] compiling ${m[1]}.cc (${seconds()} s)`);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    // A file can take a minute: say that it is still going.
    const heartbeat = setInterval(() => say(`  still compiling (${seconds()} s)`), 30_000);
    child.on('error', (err) => { clearInterval(heartbeat); reject(err); });
    child.on('close', (code) => {
      clearInterval(heartbeat);
      let kept = logFile;
      try {
        fs.mkdirSync(path.dirname(finalLog), { recursive: true });
        fs.copyFileSync(logFile, finalLog);
        fs.rmSync(logFile, { force: true });
        kept = finalLog;
      } catch { /* the log stays in the temporary folder */ }
      if (code === 0) resolve(seconds());
      else reject(new Error(`node-gyp failed (exit code ${code}) after ${seconds()} s; its last lines:\n${lines.slice(-25).join('\n')}\nFull log: ${kept}`));
    });
  });
}

async function main() {
  const libtorch = locate();
  if (!libtorch.found) {
    process.stderr.write(`[patch-diffusion] ${libtorch.why}: run \`npx patch-diffusion setup\` (or, in a clone of the repository, bash scripts/setup.sh).\n`);
    process.exit(1);
  }
  const secs = await compile(libtorch);
  const release = path.join(root, 'build', 'Release');
  linkLibtorch(release, libtorch.libdir);
  fs.writeFileSync(path.join(root, 'build', 'engine.json'), JSON.stringify({ origin: 'compiled', libtorch, compileSeconds: secs, at: new Date().toISOString() }, null, 2) + '\n');
  say(`addon compiled in ${secs} s: ${path.join(release, 'torch_addon.node')}`);
}

main().catch((err) => {
  process.stderr.write(`[patch-diffusion] ${err.message}\n`);
  process.exit(1);
});
