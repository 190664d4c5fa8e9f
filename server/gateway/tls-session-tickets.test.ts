import assert from 'node:assert/strict';
import { it } from 'node:test';
import { msUntilNextPeriod, sessionIdContextFor, ticketKeysFor, ticketPeriodOf } from './tls-session-tickets.js';

const secret = new Uint8Array(32).fill(7);
const dayMs = 24 * 3600 * 1000;

it('derives the same 48 ticket key bytes from one secret and period, and other bytes for another period or secret', () => {
  const keys = ticketKeysFor(secret, 20_000);
  assert.equal(keys.byteLength, 48);
  assert.deepEqual(ticketKeysFor(secret, 20_000), keys, 'two gateways with the secret agree');
  assert.notDeepEqual(ticketKeysFor(secret, 20_001), keys, 'the next period has other keys');
  assert.notDeepEqual(ticketKeysFor(new Uint8Array(32).fill(8), 20_000), keys, 'another deployment has other keys');
});

it('refuses a short secret or a bad period with TRUST_INVALID_ARGUMENT', () => {
  assert.throws(() => ticketKeysFor(new Uint8Array(31), 1), { code: 'TRUST_INVALID_ARGUMENT' });
  assert.throws(() => ticketKeysFor(secret, -1), { code: 'TRUST_INVALID_ARGUMENT' });
  assert.throws(() => ticketKeysFor(secret, 1.5), { code: 'TRUST_INVALID_ARGUMENT' });
});

it('periods start at multiples of the rotation; the next one is counted from now', () => {
  assert.equal(ticketPeriodOf(3 * dayMs, dayMs), 3);
  assert.equal(ticketPeriodOf(4 * dayMs - 1, dayMs), 3);
  assert.equal(msUntilNextPeriod(3 * dayMs, dayMs), dayMs);
  assert.equal(msUntilNextPeriod(4 * dayMs - 1, dayMs), 1);
});

it('binds the session id context to the trusted CAs: 32 characters, another CA set gives another', () => {
  const context = sessionIdContextFor('-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n');
  assert.equal(context.length, 32);
  assert.equal(sessionIdContextFor('-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----'), context, 'trailing white space does not count');
  assert.notEqual(sessionIdContextFor('-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n'), context);
});
