// The command line's Ctrl-C: the first SIGINT or SIGTERM aborts the
// controller (training stops after its step and saves a resumable state), a
// second one exits at once, with the shell's code for that signal (130 for
// SIGINT, 143 for SIGTERM). The library itself never touches signals.
export function abortOnSignals(controller: AbortController, what = 'finishing this step and saving the training state'): () => void {
  const handler = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(sig === 'SIGTERM' ? 143 : 130);
    process.stderr.write(`\n${sig}: ${what} (press Ctrl-C again to quit at once)\n`);
    controller.abort(new Error(`stopped by ${sig}`));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}
