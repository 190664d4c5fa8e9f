import { scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { SdcError } from '../../core/errors/index.js';
import type { RandomSource } from '../../core/ports/ports.js';

/**
 * Password hashes as `scrypt$N$r$p$salt$hash` (salt and hash base64url), so the parameters
 * travel with each hash and can be raised later without breaking old ones. Comparison is
 * timing-safe. New hashes use N = 2^17, r = 8, p = 1 (OWASP's scrypt minimum), 128 MiB per hash:
 * slow for a guesser, fine for a login. Hashes made with the earlier N = 2^15 still verify and
 * are rehashed at the next successful login (hashNeedsUpgrade).
 */
export const passwordLimits = Object.freeze({ lengthMin: 12, lengthMax: 1024 });
/**
 * scrypt runs on libuv's thread pool (4 threads by default), which file, DNS and other crypto
 * work share. Two hashes at once leave half the pool free and hold 256 MiB; 64 waiting logins
 * are several seconds of work, and a login beyond that is refused (API_AUTH_BUSY) rather than
 * queued without bound.
 */
export const scryptConcurrencyLimits = Object.freeze({ runningMax: 2, waitingMax: 64 });
/** The parameters of new hashes (production; tests pass cheaper ones explicitly as scryptParams). */
export const passwordHashDefaults = Object.freeze({ N: 2 ** 17, r: 8, p: 1 });
const defaults = passwordHashDefaults;
const saltBytes = 16;
const keyBytes = 32;
/** scrypt needs 128 * N * r bytes (128 MiB at the defaults) plus a little; the cap verifyPassword accepts (N 2^20, r 32) is refused by this bound before any work. */
const maxmemBytes = 256 * 1024 * 1024;

function derive(password: string, salt: Buffer, params: { N: number; r: number; p: number }): Promise<Buffer> {
  const options: ScryptOptions = { ...params, maxmem: maxmemBytes };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, keyBytes, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

export function checkPasswordStrength(password: string): void {
  if (password.length < passwordLimits.lengthMin || password.length > passwordLimits.lengthMax) {
    throw new SdcError('API_VALIDATION', `password must be ${passwordLimits.lengthMin} to ${passwordLimits.lengthMax} characters`);
  }
}

export async function hashPassword(password: string, random: RandomSource, params: { N: number; r: number; p: number } = defaults): Promise<string> {
  const salt = Buffer.from(random.bytes(saltBytes));
  const key = await derive(password, salt, params);
  return ['scrypt', params.N, params.r, params.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

/** False for a wrong password or a hash in a format we do not know (never throws on bad input). */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  if (![N, r, p].every((v) => Number.isSafeInteger(v) && v > 0) || N > 2 ** 20 || r > 32 || p > 16) return false;
  const salt = Buffer.from(parts[4]!, 'base64url');
  const expected = Buffer.from(parts[5]!, 'base64url');
  if (expected.length !== keyBytes || password.length > passwordLimits.lengthMax) return false;
  const actual = await derive(password, salt, { N, r, p });
  return timingSafeEqual(actual, expected);
}

type ScryptParams = { N: number; r: number; p: number };

/** The scrypt cost of `stored` when it is a hash verifyPassword would run; undefined otherwise. */
function storedParams(stored: string): ScryptParams | undefined {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined;
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  if (![N, r, p].every((v) => Number.isSafeInteger(v) && v > 0) || N > 2 ** 20 || r > 32 || p > 16) return undefined;
  return { N, r, p };
}

/** Padding runs are bounded: a failed check of a far cheaper hash (tests' own) costs at most this many more. */
const paddingRunsMax = 16;

/**
 * The throwaway scrypt runs that bring a failed check of `stored` up to the cost of one check at
 * `params` (review h12 finding 4): scrypt's time and memory traffic grow with N * r * p, so a
 * wrong password for a user whose hash is still N = 2^15 costs that check plus three more at
 * 2^15, about what an unknown name's (a dummy hash at `params`) and an upgraded user's cost. An
 * unreadable hash (no scrypt run at all) gets one run at `params`. None for a hash at `params` or
 * dearer.
 */
export function failedCheckPadding(stored: string, params: ScryptParams = defaults): { params: ScryptParams; runs: number } {
  const cost = storedParams(stored);
  if (cost === undefined) return { params: { ...params }, runs: 1 };
  const ratio = (params.N * params.r * params.p) / (cost.N * cost.r * cost.p);
  return { params: cost, runs: Math.min(paddingRunsMax, Math.max(0, Math.ceil(ratio) - 1)) };
}

/**
 * verifyPassword, and when it fails, failedCheckPadding's runs: a wrong password costs about
 * one check at `params` whatever the stored hash's cost, so the time of a failed login does not
 * tell a user with an old hash from an unknown name. `observe` sees each padding run (tests).
 */
export async function verifyPasswordPadded(password: string, stored: string, params: ScryptParams = defaults, observe?: (run: ScryptParams) => void): Promise<boolean> {
  if (await verifyPassword(password, stored)) return true;
  // Refused before any scrypt run on every path (an unknown name's dummy check too).
  if (password.length > passwordLimits.lengthMax) return false;
  const padding = failedCheckPadding(stored, params);
  const salt = Buffer.alloc(saltBytes);
  for (let run = 0; run < padding.runs; run++) {
    observe?.(padding.params);
    await derive(password, salt, padding.params);
  }
  return false;
}

/**
 * True when `stored` is a scrypt hash whose cost is below `params` in any parameter: after a
 * successful login the password is hashed again with `params` (raising the cost of old hashes
 * without asking anyone for their password). False for a hash we cannot read.
 */
export function hashNeedsUpgrade(stored: string, params: { N: number; r: number; p: number } = defaults): boolean {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  return N < params.N || r < params.r || p < params.p;
}
