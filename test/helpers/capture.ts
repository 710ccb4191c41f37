// What a call writes to stdout or stderr, captured in this process.

/** Runs `fn` with `stream.write` captured; returns its value and what was written. */
export async function captureWrites<T>(stream: NodeJS.WriteStream, fn: () => Promise<T>): Promise<{ value: T; written: string }> {
  const original = stream.write.bind(stream);
  let written = '';
  stream.write = ((chunk: string | Uint8Array) => {
    written += String(chunk);
    return true;
  }) as typeof stream.write;
  try {
    return { value: await fn(), written };
  } finally {
    stream.write = original;
  }
}
