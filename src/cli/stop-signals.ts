// The command line's Ctrl-C: the first SIGINT or SIGTERM aborts the
// controller (training stops after its step and saves a resumable state), a
// second one exits at once. Either way the exit code is the shell's for that
// signal: 130 for SIGINT, 143 for SIGTERM. The library itself never touches
// signals.

/** The exit code of a command stopped by `sig`, as shells report it (128 + the signal's number). */
export function signalExitCode(sig: NodeJS.Signals): number {
  return sig === 'SIGTERM' ? 143 : 130;
}

export interface SignalStop {
  /** The signal that stopped the command, or null. */
  readonly received: NodeJS.Signals | null;
  /** Removes the handlers. */
  release(): void;
}

export function abortOnSignals(controller: AbortController, what = 'finishing this step and saving the training state'): SignalStop {
  const stop = {
    received: null as NodeJS.Signals | null,
    release: () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
  const handler = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(signalExitCode(stop.received ?? sig));
    stop.received = sig;
    process.stderr.write(`\n${sig}: ${what} (press Ctrl-C again to quit at once)\n`);
    controller.abort(new Error(`stopped by ${sig}`));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return stop;
}
