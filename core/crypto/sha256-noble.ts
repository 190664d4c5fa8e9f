import { sha256 } from '@noble/hashes/sha2.js';
import type { Sha256 } from '../ports/ports.js';

/** SHA-256 in pure JS (@noble/hashes): the hash port for code that must stay sans-IO, such as the agent core. */
export const nobleSha256: Sha256 = (bytes) => sha256(bytes);
