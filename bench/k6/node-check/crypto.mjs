// k6/crypto in Node: the digest the agent script uses.
import { createHash } from 'node:crypto';
export function sha256(input, encoding) {
  return createHash('sha256').update(typeof input === 'string' ? Buffer.from(input, 'utf8') : Buffer.from(input)).digest(encoding === 'hex' ? 'hex' : 'base64');
}
