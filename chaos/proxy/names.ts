import { badRequestBody } from './addresses.js';

/**
 * Proxy and toxic names travel as URL path segments (toxiproxy-node-client puts them in URLs
 * unencoded), so only characters that need no encoding are taken, and not `.` or `-` first
 * (`.` and `..` are path steps). Toxiproxy takes any string; see docs/chaos.md.
 */
const namePattern = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

export function checkName(name: string, field: string, lengthMax: number): string {
  if (name.length > lengthMax || !namePattern.test(name)) {
    throw badRequestBody(`${field} must be 1 to ${lengthMax} letters, digits, '_', '.' or '-', not starting with '.' or '-'`, { field });
  }
  return name;
}
