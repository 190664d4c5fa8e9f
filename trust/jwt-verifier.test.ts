import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SignJWT } from 'jose';
import { JwtAuthority } from './jwt-authority.js';
import { JwtVerifier, type JwtVerifierOptions } from './jwt-verifier.js';
import { MemoryJwtKeyStore } from './jwt-key-store.js';
import { FakeClock, rejectionCode, seededRandom } from './jwt-test-support.js';

const startMs = Date.UTC(2030, 0, 1);
const dayMs = 24 * 60 * 60 * 1000;
const minuteMs = 60 * 1000;
const issuer = 'sdc-control';
const audience = 'sdc-gateway';

interface Setup {
  clock: FakeClock;
  authority: JwtAuthority;
  verifier: JwtVerifier;
  fetches: () => number;
}

async function setup(overrides: Partial<JwtVerifierOptions> = {}, seed = 'verifier'): Promise<Setup> {
  const clock = new FakeClock(startMs);
  const authority = await JwtAuthority.create({
    store: new MemoryJwtKeyStore(),
    clock,
    issuer,
    audience,
    random: seededRandom(seed),
  });
  let fetchCount = 0;
  const verifier = JwtVerifier.create({
    issuer,
    audience,
    clock,
    fetchJwks: async () => {
      fetchCount++;
      return authority.jwks();
    },
    ...overrides,
  });
  return { clock, authority, verifier, fetches: () => fetchCount };
}

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function decodeSegment(segment: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** A token whose header or payload was replaced, keeping the original signature. */
function reencoded(token: string, change: { header?: Record<string, unknown>; payload?: Record<string, unknown> }): string {
  const [header = '', payload = '', signature = ''] = token.split('.');
  return [
    change.header ? b64({ ...decodeSegment(header), ...change.header }) : header,
    change.payload ? b64({ ...decodeSegment(payload), ...change.payload }) : payload,
    signature,
  ].join('.');
}

test('issue / verify round trip returns sub, role and the claims', async () => {
  const { authority, verifier } = await setup();
  const token = await authority.issue({ sub: 'alice', role: 'operator', claims: { site: 'lab' } });
  const verified = await verifier.verify(token);
  assert.equal(verified.sub, 'alice');
  assert.equal(verified.role, 'operator');
  assert.equal(verified.claims.site, 'lab');
  assert.equal(verified.claims.iss, issuer);
});

test('a token signed before a rotation verifies after it until its exp, then JWT_EXPIRED', async () => {
  const { clock, authority, verifier } = await setup();
  clock.advance(7 * dayMs - 10 * minuteMs);
  const before = await authority.issue({ sub: 'alice', role: 'operator', ttlMs: 60 * minuteMs });
  const oldKid = authority.activeKid;
  clock.advance(10 * minuteMs);
  await authority.rotateIfDue(clock.nowMs());
  assert.notEqual(authority.activeKid, oldKid);
  const after = await authority.issue({ sub: 'bob', role: 'viewer' });

  assert.equal((await verifier.verify(after)).sub, 'bob');
  assert.equal((await verifier.verify(before)).sub, 'alice');
  clock.advance(50 * minuteMs - 1000); // exp - 1 s
  assert.equal((await verifier.verify(before)).sub, 'alice');
  clock.advance(1000 + 30_000); // exactly exp + skew
  assert.equal(await rejectionCode(verifier.verify(before)), 'JWT_EXPIRED');
});

/** Counts the signature checks jose makes (WebCrypto) while `run` runs. */
async function countSignatureChecks(run: () => Promise<void>): Promise<number> {
  const subtle = globalThis.crypto.subtle;
  const original = subtle.verify;
  let checks = 0;
  subtle.verify = function (this: SubtleCrypto, ...args: Parameters<SubtleCrypto['verify']>) {
    checks += 1;
    return original.apply(this, args);
  } as SubtleCrypto['verify'];
  try {
    await run();
  } finally {
    subtle.verify = original;
  }
  return checks;
}

test('a token sent again is answered from its first verification while its time claims are current (issue 17)', async () => {
  // The key set stays fresh for the whole hour: a refreshed set's keys are new objects, under
  // which a kept token is checked in full again (the withdrawn-key test below).
  const { clock, authority, verifier } = await setup({ jwksMaxAgeMs: 2 * 60 * minuteMs });
  const token = await authority.issue({ sub: 'alice', role: 'operator', ttlMs: 60 * minuteMs });
  const other = await authority.issue({ sub: 'bob', role: 'viewer', ttlMs: 60 * minuteMs });
  const checks = await countSignatureChecks(async () => {
    for (let request = 0; request < 5; request += 1) assert.equal((await verifier.verify(token)).sub, 'alice');
    assert.equal((await verifier.verify(other)).sub, 'bob');
    clock.advance(60 * minuteMs - 1000);
    assert.equal((await verifier.verify(token)).role, 'operator');
  });
  assert.equal(checks, 2, 'one signature check per distinct token');
  // Past exp the kept answer is not used: the full check refuses it with its own code.
  clock.advance(1000 + 30_000);
  assert.equal(await rejectionCode(verifier.verify(token)), 'JWT_EXPIRED');
  // A changed token is another string: checked in full, refused.
  assert.equal(await rejectionCode(verifier.verify(reencoded(other, { payload: { role: 'admin' } }))), 'JWT_SIGNATURE_INVALID');
});

test('verifiedTokensMax bounds the kept tokens; 0 keeps none', async () => {
  const none = await setup({ verifiedTokensMax: 0 });
  const token = await none.authority.issue({ sub: 'alice', role: 'operator' });
  assert.equal(await countSignatureChecks(async () => {
    for (let request = 0; request < 3; request += 1) await none.verifier.verify(token);
  }), 3);
  const two = await setup({ verifiedTokensMax: 2 });
  const tokens = await Promise.all(['a', 'b', 'c'].map((sub) => two.authority.issue({ sub, role: 'r' })));
  assert.equal(await countSignatureChecks(async () => {
    for (const each of tokens) await two.verifier.verify(each); // a is evicted by c
    await two.verifier.verify(tokens[2]!);
    await two.verifier.verify(tokens[0]!);
  }), 4);
});

test('unknown kid: refused after exactly one JWKS refresh; a second unknown kid within the interval fetches nothing', async () => {
  const { clock, verifier, fetches } = await setup();
  const stranger = await setup({}, 'stranger');
  await verifier.verify(await stranger.authority.issue({ sub: 'warm', role: 'r' })).catch(() => undefined);
  assert.equal(fetches(), 1, 'first verification loads the JWKS');

  clock.advance(30_000);
  stranger.clock.advance(30_000);
  const unknown = await stranger.authority.issue({ sub: 'mallory', role: 'admin' });
  assert.equal(await rejectionCode(verifier.verify(unknown)), 'JWT_UNKNOWN_KID');
  assert.equal(fetches(), 2, 'exactly one refresh for the unknown kid');

  await stranger.authority.rotateNow();
  const otherUnknown = await stranger.authority.issue({ sub: 'mallory', role: 'admin' });
  clock.advance(29_999);
  assert.equal(await rejectionCode(verifier.verify(otherUnknown)), 'JWT_UNKNOWN_KID');
  assert.equal(await rejectionCode(verifier.verify(unknown)), 'JWT_UNKNOWN_KID');
  assert.equal(fetches(), 2, 'no fetch within minRefreshIntervalMs');

  clock.advance(1);
  assert.equal(await rejectionCode(verifier.verify(otherUnknown)), 'JWT_UNKNOWN_KID');
  assert.equal(fetches(), 3, 'one fetch once the interval has passed');
});

test('concurrent unknown-kid verifications share one in-flight fetch', async () => {
  const { verifier, fetches } = await setup();
  const stranger = await setup({}, 'stranger');
  const tokens = await Promise.all(Array.from({ length: 8 }, (_, i) => stranger.authority.issue({ sub: `m${i}`, role: 'r' })));
  const codes = await Promise.all(tokens.map((token) => rejectionCode(verifier.verify(token))));
  assert.deepEqual(codes, Array(8).fill('JWT_UNKNOWN_KID'));
  assert.equal(fetches(), 1);
});

test('a key issued after the cached JWKS is picked up by the unknown-kid refresh', async () => {
  const { clock, authority, verifier, fetches } = await setup();
  await verifier.verify(await authority.issue({ sub: 'a', role: 'r' }));
  clock.advance(minuteMs);
  await authority.rotateNow();
  assert.equal((await verifier.verify(await authority.issue({ sub: 'b', role: 'r' }))).sub, 'b');
  assert.equal(fetches(), 2);
});

test('JWKS fetch failure is JWT_JWKS_UNAVAILABLE (local fault), also rate-limited', async () => {
  const clock = new FakeClock(startMs);
  const authority = await JwtAuthority.create({ store: new MemoryJwtKeyStore(), clock, issuer, audience, random: seededRandom('x') });
  let calls = 0;
  const verifier = JwtVerifier.create({
    issuer,
    audience,
    clock,
    fetchJwks: async () => {
      calls++;
      throw new Error('connection refused');
    },
  });
  const token = await authority.issue({ sub: 'a', role: 'r' });
  const error = await verifier.verify(token).catch((e: unknown) => e);
  assert.equal((error as { code?: string }).code, 'JWT_JWKS_UNAVAILABLE');
  assert.equal((error as { fault?: string }).fault, 'local');
  assert.equal(await rejectionCode(verifier.verify(token)), 'JWT_JWKS_UNAVAILABLE');
  assert.equal(calls, 1);
});

test('a key dropped from the JWKS stops verifying once the cached set is older than jwksMaxAgeMs', async () => {
  const clock = new FakeClock(startMs);
  const authority = await JwtAuthority.create({ store: new MemoryJwtKeyStore(), clock, issuer, audience, random: seededRandom('drop') });
  const token = await authority.issue({ sub: 'a', role: 'r' });
  let published = authority.jwks();
  let calls = 0;
  const verifier = JwtVerifier.create({
    issuer,
    audience,
    clock,
    jwksMaxAgeMs: 2 * minuteMs,
    fetchJwks: async () => {
      calls++;
      return published;
    },
  });
  await verifier.verify(token);
  await authority.rotateNow();
  published = { keys: authority.jwks().keys.slice(0, 1) }; // the authority withdraws the old key
  clock.advance(2 * minuteMs - 1);
  assert.equal((await verifier.verify(token)).sub, 'a', 'a fresh cache is not refetched');
  assert.equal(calls, 1);
  clock.advance(1);
  assert.equal(await rejectionCode(verifier.verify(token)), 'JWT_UNKNOWN_KID');
  assert.equal(calls, 2);
});

test('wrong audience and wrong issuer are refused with their codes', async () => {
  const { clock, authority } = await setup();
  const token = await authority.issue({ sub: 'a', role: 'r' });
  const fetchJwks = async () => authority.jwks();
  const otherAudience = JwtVerifier.create({ issuer, audience: 'sdc-api', clock, fetchJwks });
  const otherIssuer = JwtVerifier.create({ issuer: 'someone-else', audience, clock, fetchJwks });
  assert.equal(await rejectionCode(otherAudience.verify(token)), 'JWT_BAD_AUDIENCE');
  assert.equal(await rejectionCode(otherIssuer.verify(token)), 'JWT_BAD_ISSUER');
});

test('a changed payload under the original signature is JWT_SIGNATURE_INVALID', async () => {
  const { authority, verifier } = await setup();
  const token = await authority.issue({ sub: 'alice', role: 'viewer' });
  assert.equal(await rejectionCode(verifier.verify(reencoded(token, { payload: { role: 'admin' } }))), 'JWT_SIGNATURE_INVALID');
  assert.equal(await rejectionCode(verifier.verify(reencoded(token, { payload: { exp: 4102444800 } }))), 'JWT_SIGNATURE_INVALID');
});

test('alg none and HS256 (keyed with the public key) are JWT_ALG_NOT_ALLOWED, without a JWKS fetch', async () => {
  const { authority, verifier, fetches } = await setup();
  const token = await authority.issue({ sub: 'alice', role: 'viewer' });
  const kid = authority.activeKid;
  const none = `${b64({ alg: 'none', kid, typ: 'sdc-access+jwt' })}.${token.split('.')[1]}.`;
  assert.equal(await rejectionCode(verifier.verify(none)), 'JWT_MALFORMED', 'an empty signature segment is malformed');
  const noneSigned = reencoded(token, { header: { alg: 'none' } });
  assert.equal(await rejectionCode(verifier.verify(noneSigned)), 'JWT_ALG_NOT_ALLOWED');
  const eddsa = reencoded(token, { header: { alg: 'EdDSA' } });
  assert.equal(await rejectionCode(verifier.verify(eddsa)), 'JWT_ALG_NOT_ALLOWED');

  const x = authority.jwks().keys[0]?.x ?? '';
  const hs256 = await new SignJWT({ role: 'admin' })
    .setProtectedHeader({ alg: 'HS256', kid, typ: 'sdc-access+jwt' })
    .setIssuer(issuer)
    .setAudience(audience)
    .setSubject('mallory')
    .setIssuedAt(Math.floor(startMs / 1000))
    .setExpirationTime(Math.floor(startMs / 1000) + 600)
    .sign(new TextEncoder().encode(x));
  assert.equal(await rejectionCode(verifier.verify(hs256)), 'JWT_MALFORMED', 'a 32-byte HMAC is not a 64-byte signature');
  const hs256Long = `${hs256.split('.').slice(0, 2).join('.')}.${token.split('.')[2]}`;
  assert.equal(await rejectionCode(verifier.verify(hs256Long)), 'JWT_ALG_NOT_ALLOWED');
  assert.equal(fetches(), 0);
});

test('nbf in the future beyond the skew is JWT_NOT_YET_VALID; within the skew it verifies', async () => {
  const { clock, authority, verifier } = await setup();
  const later = await authority.issue({ sub: 'a', role: 'r', notBeforeMs: startMs + 5 * minuteMs });
  assert.equal(await rejectionCode(verifier.verify(later)), 'JWT_NOT_YET_VALID');
  clock.advance(5 * minuteMs - 30_000);
  assert.equal((await verifier.verify(later)).sub, 'a');
});

test('iat in the future beyond the skew is JWT_NOT_YET_VALID', async () => {
  const clock = new FakeClock(startMs);
  const store = new MemoryJwtKeyStore();
  const authority = await JwtAuthority.create({ store, clock, issuer, audience, random: seededRandom('iat') });
  const verifierClock = new FakeClock(startMs - 31_000);
  const verifier = JwtVerifier.create({ issuer, audience, clock: verifierClock, fetchJwks: async () => authority.jwks() });
  const token = await authority.issue({ sub: 'a', role: 'r' });
  assert.equal(await rejectionCode(verifier.verify(token)), 'JWT_NOT_YET_VALID');
  verifierClock.advance(1000);
  assert.equal((await verifier.verify(token)).sub, 'a');
});

test('malformed inputs are JWT_MALFORMED and never fetch', async () => {
  const { authority, verifier, fetches } = await setup();
  const token = await authority.issue({ sub: 'a', role: 'r' });
  const [header = '', payload = '', signature = ''] = token.split('.');
  for (const bad of [
    '',
    'abc',
    `${header}.${payload}`,
    `${header}.${payload}.${signature}.x`,
    `${header}.${payload}.${signature}=`,
    `${header}.${payload}.${signature.slice(0, -1)}`,
    `${b64({ alg: 'Ed25519', typ: 'sdc-access+jwt' })}.${payload}.${signature}`, // no kid
    `e30.${payload}.${signature}`.replace('e30', '!!'),
    'a'.repeat(9000),
  ]) {
    assert.equal(await rejectionCode(verifier.verify(bad)), 'JWT_MALFORMED', bad.slice(0, 40));
  }
  assert.equal(await rejectionCode(verifier.verify(42 as unknown as string)), 'JWT_MALFORMED');
  assert.equal(fetches(), 0);
});

test('the verifier refuses options out of bounds', () => {
  const clock = new FakeClock(startMs);
  const fetchJwks = async () => ({ keys: [] });
  assert.throws(() => JwtVerifier.create({ issuer, audience, clock, fetchJwks, clockSkewMs: 5 * minuteMs + 1 }), { code: 'JWT_ARGUMENT_INVALID' });
  assert.throws(() => JwtVerifier.create({ issuer, audience, clock, fetchJwks, minRefreshIntervalMs: 0 }), { code: 'JWT_ARGUMENT_INVALID' });
  assert.throws(() => JwtVerifier.create({ issuer: '', audience, clock, fetchJwks }), { code: 'JWT_ARGUMENT_INVALID' });
});

test('property: any single-character change of the payload or signature segment is refused', async () => {
  const { authority, verifier } = await setup();
  const token = await authority.issue({ sub: 'alice', role: 'operator', claims: { site: 'lab' } });
  await verifier.verify(token); // warm the JWKS cache
  const [header = '', payload = '', signature = ''] = token.split('.');
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ';
  const refusals = new Set(['JWT_SIGNATURE_INVALID', 'JWT_MALFORMED']);
  await fc.assert(
    fc.asyncProperty(
      fc.boolean(),
      fc.nat(),
      fc.constantFrom(...alphabet),
      async (inSignature, position, replacement) => {
        const segment = inSignature ? signature : payload;
        const index = position % segment.length;
        fc.pre(segment[index] !== replacement);
        const changed = segment.slice(0, index) + replacement + segment.slice(index + 1);
        const altered = inSignature ? `${header}.${payload}.${changed}` : `${header}.${changed}.${signature}`;
        const code = await rejectionCode(verifier.verify(altered));
        assert.ok(refusals.has(code), code);
      },
    ),
    { numRuns: 500 },
  );
});

test('every last-character variant of the signature is refused (jose alone accepts non-canonical ones)', async () => {
  const { authority, verifier } = await setup();
  const token = await authority.issue({ sub: 'alice', role: 'operator' });
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const body = token.slice(0, -1);
  for (const c of alphabet) {
    if (c === token.at(-1)) continue;
    assert.ok(['JWT_MALFORMED', 'JWT_SIGNATURE_INVALID'].includes(await rejectionCode(verifier.verify(body + c))), c);
  }
});

// Review h2, finding 6: `nowMs - last < minRefreshIntervalMs` took a clock stepped back for "too
// soon", so no refresh until the clock passed its old reading; a just-rotated key was refused.
test('a wall clock stepped back: the next unknown kid refreshes at once, and the interval counts from the new reading', async () => {
  const { clock, authority, verifier, fetches } = await setup();
  const before = await authority.issue({ sub: 'alice', role: 'operator' });
  await verifier.verify(before);
  assert.equal(fetches(), 1);
  clock.advance(-60 * minuteMs); // NTP steps the clock back an hour
  await authority.rotateNow();
  const after = await authority.issue({ sub: 'alice', role: 'operator' });
  assert.equal((await verifier.verify(after)).sub, 'alice', 'the rotated-in key is fetched now');
  assert.equal(fetches(), 2);
  // The rate limit holds from the new reading on.
  const stranger = await setup({}, 'stranger');
  const unknown = await stranger.authority.issue({ sub: 'mallory', role: 'admin' });
  clock.advance(29_999);
  assert.equal(await rejectionCode(verifier.verify(unknown)), 'JWT_UNKNOWN_KID');
  assert.equal(fetches(), 2, 'no fetch within minRefreshIntervalMs of the refresh after the step');
  clock.advance(1);
  assert.equal(await rejectionCode(verifier.verify(unknown)), 'JWT_UNKNOWN_KID');
  assert.equal(fetches(), 3);
});

test('a wall clock stepped back: a key set fetched "after now" is not taken as fresh, so a known kid refreshes it once', async () => {
  const { clock, authority, verifier, fetches } = await setup();
  await verifier.verify(await authority.issue({ sub: 'alice', role: 'operator' }));
  assert.equal(fetches(), 1);
  clock.advance(-60 * minuteMs);
  // New tokens (a verified token is answered from the verifier's cache) under the same, known kid.
  await verifier.verify(await authority.issue({ sub: 'bob', role: 'operator' }));
  assert.equal(fetches(), 2, 'its age is unknown: fetched again');
  await verifier.verify(await authority.issue({ sub: 'carol', role: 'operator' }));
  assert.equal(fetches(), 2, 'fresh again from the new reading');
});
