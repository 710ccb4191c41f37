// A forced garbage collection for tests that count live tensors: V8's gc(),
// exposed at run time so the suite needs no --expose-gc flag. Finalisers of
// unreachable tensor handles run during the collection itself (native/addon.cc).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
export const gc = runInNewContext('gc') as () => void;
