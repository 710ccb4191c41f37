// Where the official implementation's reference vectors live: ../shared/reference
// beside the repository (PD_REFERENCE_DIR overrides). On CI they must be present:
// a parity test that skips there would hide a broken port.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REFERENCE_DIR: string =
  process.env.PD_REFERENCE_DIR ?? fileURLToPath(new URL('../../../../shared/reference/', import.meta.url));

export const HAVE_REFERENCE = existsSync(join(REFERENCE_DIR, 'cases.json'));

if (!HAVE_REFERENCE && process.env.CI) {
  throw new Error(`reference vectors not found in ${REFERENCE_DIR} (set PD_REFERENCE_DIR); CI must run the parity tests`);
}
