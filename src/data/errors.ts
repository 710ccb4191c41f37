// One error type for everything the data layer rejects, so callers (the CLI)
// can tell a bad dataset from a programming error and print it without a stack.

/**
 * Whatever the data layer rejects (a missing file, a damaged zip or image, a bad dataset.json): the CLI
 * prints its message without a stack.
 */
export class DatasetError extends Error {
  /** The file the problem is in, when there is one. */
  readonly file: string | undefined;

  constructor(message: string, options: { file?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DatasetError';
    this.file = options.file;
  }
}

/** The message of anything thrown, for wrapping library errors in our own words. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message.trim().split('\n')[0] ?? err.message;
  return String(err);
}
