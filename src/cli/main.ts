#!/usr/bin/env node
// The `patch-diffusion` binary: patch-diffusion <setup|train|generate|dataset|metrics|convert|export|serve|dashboard|info> [options].
import { runCli } from './program.js';

runCli(process.argv.slice(2)).then((code) => {
  // A failed command may leave a server or a timer behind: end the process, as a command line should.
  if (code !== 0) process.exit(code);
});
