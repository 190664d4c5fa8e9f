import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { errorDomains, errorRegistry, SdcError } from './index.js';
import { retiredErrorCodes } from './codes/retired.js';
import { renderErrorDocs } from './error-docs.js';

test('no code is defined in two domains', () => {
  const seen = new Map<string, string>();
  for (const { name, table } of errorDomains) {
    for (const code of Object.keys(table)) {
      assert.equal(seen.get(code), undefined, `${code} defined in ${seen.get(code)} and ${name}`);
      seen.set(code, name);
    }
  }
  assert.equal(seen.size, Object.keys(errorRegistry).length, 'every domain is listed in errorDomains');
});

/** Each domain's code prefix: its name in capitals, except where the name is long. */
const prefixExceptions: Readonly<Record<string, string>> = { protocol: 'PROTO_' };
const prefixOf = (domain: string) => prefixExceptions[domain] ?? `${domain.toUpperCase()}_`;

/** `domain: code` for every code that does not carry its domain's prefix. */
function misplacedCodes(domains: ReadonlyArray<{ name: string; table: Readonly<Record<string, unknown>> }>): string[] {
  return domains.flatMap(({ name, table }) => Object.keys(table).filter((code) => !code.startsWith(prefixOf(name))).map((code) => `${name}: ${code}`));
}

test('every code carries its own domain\'s prefix', () => {
  assert.deepEqual(misplacedCodes(errorDomains), []);
  // The check catches a code filed under another domain, and a prefix that only starts the same.
  assert.deepEqual(misplacedCodes([{ name: 'api', table: { KERNEL_TIMEOUT: {} } }, { name: 'protocol', table: { PROTOCOL_X: {}, PROTO_X: {} } }]), ['api: KERNEL_TIMEOUT', 'protocol: PROTOCOL_X']);
});

test('codes are UPPER_SNAKE, and specs are complete', () => {
  for (const { table } of errorDomains) {
    for (const [code, spec] of Object.entries(table)) {
      assert.match(code, /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$/, code);
      assert.ok(['local', 'remote'].includes(spec.fault), code);
      assert.ok(spec.status >= 400 && spec.status <= 599, code);
      assert.ok(spec.summary.length > 10, code);
    }
  }
});

test('retired codes are never reused', () => {
  for (const code of retiredErrorCodes) assert.ok(!Object.hasOwn(errorRegistry, code), code);
});

test('docs/errors.md is generated from the registry (run `npm run docs:errors`)', () => {
  const onDisk = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  assert.equal(onDisk, renderErrorDocs());
});

test('SdcError carries the registry facts and serialises without a stack', () => {
  const e = new SdcError('PROTO_REPLAY', undefined, { seq: 4 });
  assert.equal(e.code, 'PROTO_REPLAY');
  assert.equal(e.fault, 'remote');
  assert.equal(e.status, 409);
  assert.equal(e.message, errorRegistry.PROTO_REPLAY.summary);
  assert.deepEqual(JSON.parse(JSON.stringify(e)), { code: 'PROTO_REPLAY', message: e.message, details: { seq: 4 } });
  assert.ok(SdcError.is(e, 'PROTO_REPLAY'));
  assert.ok(!SdcError.is(e, 'PROTO_JSON_SYNTAX'));
  assert.ok(!SdcError.is(new Error('x')));
});
