// npm's install hook. It never fails the install: it puts the engine in
// place when it can without fetching anything (a libtorch is there: a shipped
// prebuilt addon that fits it, one compiled before, or the compiler now), and
// otherwise says in one line what to run next (`npx patch-diffusion setup`).
// PD_SKIP_INSTALL=1 skips it. npm shows this output with --foreground-scripts.
'use strict';
const { existsSync } = require('node:fs');
const path = require('node:path');
const { pathToFileURL } = require('node:url');

const say = (line) => process.stderr.write(`[patch-diffusion] ${line}\n`);
const setupModule = path.join(__dirname, '..', 'dist', 'src', 'setup', 'setup.js');

async function main() {
  if (process.env.PD_SKIP_INSTALL === '1') return;
  if (!existsSync(setupModule)) {
    // A clone of the repository before its first build: scripts/setup.sh sets it up.
    say('no dist/ here (a clone of the repository?): run bash scripts/setup.sh');
    return;
  }
  const { setupEngine, LibtorchMissingError } = await import(pathToFileURL(setupModule).href);
  try {
    const r = await setupEngine({ fetch: false, log: say });
    say(`engine ready: libtorch ${r.loadedVersion} (addon ${r.addon === 'unchanged' ? 'already in place' : r.addon}, ${r.seconds.toFixed(0)} s)`);
  } catch (err) {
    if (err instanceof LibtorchMissingError) say('installed without its libtorch engine: run `npx patch-diffusion setup` to fetch it (PyTorch\'s CPU wheel, about 200 MB) and set it up');
    else say(`installed without its libtorch engine (${String(err.message).split('\n')[0]}): run \`npx patch-diffusion setup\``);
  }
}

main().catch((err) => say(`install hook: ${err.message}; run \`npx patch-diffusion setup\``));
