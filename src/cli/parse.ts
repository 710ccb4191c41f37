// Option-value parsers shared by the commands (commander hands over strings).
// InvalidArgumentError lets commander name the option in its message.
import { InvalidArgumentError } from 'commander';

/** A finite number, or an error naming the bad text. */
export function parseNumber(text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`expected a number, got '${text}'`);
  return n;
}

/** A comma-separated list of numbers, e.g. "1,2,2,2"; empty text gives []. */
export function parseNumberList(text: string): number[] {
  return text.split(',').filter((s) => s.trim() !== '').map(parseNumber);
}

/** A TCP port, 0..65535 (0: any free port). */
export function parsePort(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n > 65535) throw new InvalidArgumentError(`expected a port number 0-65535, got '${text}'`);
  return n;
}

/** An integer from `min` to `max`, or an error that gives the range (commander adds the flag and the value). */
export function parseIntIn(min: number, max: number): (text: string) => number {
  return (text: string) => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}, got '${text}'`);
    return n;
  };
}

/** The largest batch (images per network call or optimizer step) a command accepts. */
export const MAX_BATCH = 65536;
