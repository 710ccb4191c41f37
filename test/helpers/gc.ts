// A forced garbage collection for tests that count live tensors: V8's gc(),
// exposed at run time so the suite needs no --expose-gc flag. Finalisers of
// unreachable tensor handles run during the collection itself (native/addon.cc).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { liveTensors } from '../../src/tensor/index.js';

setFlagsFromString('--expose-gc');
export const gc = runInNewContext('gc') as () => void;

/**
 * Live tensors after a collection: the baseline a leak test counts from. Counted without one, garbage that
 * earlier tests left could be collected mid-test and read as negative growth.
 */
export function liveTensorsAfterGc(): number {
  gc();
  return liveTensors();
}
