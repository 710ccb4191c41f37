#!/usr/bin/env node
// The command line: patch-diffusion <train|generate|dataset|metrics|convert|export|serve|dashboard|info> [options].
import { Command } from 'commander';
import { infoCommand } from './commands/info.js';
import { trainCommand } from './commands/train.js';
import { generateCommand } from './commands/generate.js';
import { datasetCommand } from './commands/dataset.js';
import { metricsCommand } from './commands/metrics.js';
import { convertCommand } from './commands/convert.js';
import { dashboardCommand } from './commands/dashboard.js';
import { exportCommand } from './commands/export.js';
import { serveCommand } from './commands/serve.js';

async function main(): Promise<void> {
  const program = new Command('patch-diffusion')
    .description('Patch Diffusion (Wang et al., NeurIPS 2023) on libtorch: train, sample and evaluate image diffusion models')
    .showHelpAfterError();
  program.addCommand(trainCommand());
  program.addCommand(generateCommand());
  program.addCommand(datasetCommand());
  program.addCommand(metricsCommand());
  program.addCommand(convertCommand());
  program.addCommand(dashboardCommand());
  program.addCommand(exportCommand());
  program.addCommand(serveCommand());
  program.addCommand(infoCommand());
  await program.parseAsync(process.argv);
}

main().catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`error: ${message}\n`);
  if (process.env.PD_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
