// What both local servers (the dashboard and `serve`'s sampling page) check
// before answering: that the request's Host header names this server (a page
// on another site cannot reach it through DNS rebinding), and that its path
// decodes (a malformed one gets 400, never an exception).
import { isIP } from 'node:net';

/** localhost, 127.0.0.0/8 written as an address, or ::1. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

/** The host part of a Host header (no port, no IPv6 brackets), lower-cased. */
function hostOf(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') > 0 ? h.indexOf(']') : undefined);
  return h.replace(/:\d+$/, '');
}

/**
 * Whether a request's Host header names the server bound to `bound`: on a
 * loopback address, only loopback names and addresses; on one other address,
 * that address or loopback; on every interface (0.0.0.0, ::), any.
 */
export function hostAllowed(bound: string, header: string | undefined): boolean {
  if (bound === '0.0.0.0' || bound === '::') return true;
  if (!header) return false;
  const host = hostOf(header);
  if (isLoopbackHost(host)) return true;
  return !isLoopbackHost(bound) && host === bound.toLowerCase();
}

/** The decoded path of a request URL, or null when it does not decode (`/%`, a broken UTF-8 sequence). */
export function requestPath(url: string | undefined): string | null {
  try {
    return decodeURIComponent(new URL(url ?? '/', 'http://localhost').pathname);
  } catch {
    return null;
  }
}
