// Headless Chromium for the page tests: Debian's `chromium` (scripts/setup.sh
// installs it) or PD_CHROMIUM, driven by playwright-core.
import { existsSync } from 'node:fs';

/** The Chromium binary to drive, or null when there is none. */
export function findChromium(): string | null {
  for (const p of [process.env.PD_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'])
    if (p && existsSync(p)) return p;
  return null;
}

export const NO_BROWSER = 'no Chromium here (scripts/setup.sh installs Debian\'s `chromium`; or set PD_CHROMIUM to a Chromium binary)';
