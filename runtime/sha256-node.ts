import { createHash } from 'node:crypto';
import type { Sha256 } from '../core/ports/ports.js';

/** SHA-256 from node:crypto (OpenSSL): the hash port for services and agents on Node. */
export const nodeSha256: Sha256 = (bytes) => new Uint8Array(createHash('sha256').update(bytes).digest());
