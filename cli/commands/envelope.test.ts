import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../main.js';
import type { CliIo } from '../command.js';

interface Run { code: number; stdout: string; stderr: string }

async function sdc(argv: string[], stdin = ''): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => stdin, env: {} };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

const fields = { v: 1, type: 'TELEMETRY', id: 'f_0001', device_id: 'dev-0001', session_id: 'sess_7f3a', seq: 17, ts: 1764000000000, body: { cpu_pct: 12.5 } };
const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

function withTempDir(run: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sdc-envelope-cli-'));
    try { await run(dir); } finally { rmSync(dir, { recursive: true, force: true }); }
  };
}

test('keygen, sign, verify round trip through main()', withTempDir(async (dir) => {
  const priv = join(dir, 'k.pem');
  const pub = join(dir, 'k.pub.pem');
  const keygen = await sdc(['envelope', 'keygen', '--out-private', priv, '--out-public', pub]);
  assert.equal(keygen.code, 0, keygen.stderr);
  assert.equal(statSync(priv).mode & 0o777, 0o600);
  assert.equal((await sdc(['envelope', 'keygen', '--out-private', priv, '--out-public', join(dir, 'x.pem')])).code, 1, 'refuses to overwrite');

  const fieldsFile = join(dir, 'fields.json');
  writeFileSync(fieldsFile, JSON.stringify(fields));
  const signed = await sdc(['envelope', 'sign', '--key', priv, '--kid', 'dev-0001.k1', fieldsFile]);
  assert.equal(signed.code, 0, signed.stderr);
  const envelope = JSON.parse(signed.stdout) as { sig: { alg: string; kid: string; value: string } };
  assert.equal(envelope.sig.alg, 'Ed25519');
  assert.match(envelope.sig.value, /^[A-Za-z0-9_-]{86}$/);
  // Canonical output: the canonicalize command leaves it unchanged.
  assert.equal((await sdc(['envelope', 'canonicalize'], signed.stdout)).stdout, signed.stdout);

  const verified = await sdc(['envelope', 'verify', '--pub', pub], signed.stdout);
  assert.deepEqual(verified, { code: 0, stdout: 'ok kid=dev-0001.k1\n', stderr: '' });
  assert.equal((await sdc(['envelope', 'verify', '--pub', pub, '--kid', 'dev-0001.k1'], signed.stdout)).code, 0);

  const wrongKid = await sdc(['envelope', 'verify', '--pub', pub, '--kid', 'other'], signed.stdout);
  assert.equal(wrongKid.code, 1);
  assert.match(wrongKid.stderr, /^sdc: CRYPTO_UNKNOWN_KID: .*\n$/);

  const tampered = signed.stdout.replace('"seq":17', '"seq":18');
  const bad = await sdc(['envelope', 'verify', '--pub', pub], tampered);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^sdc: CRYPTO_SIGNATURE_INVALID: [^\n]*\n$/);

  const otherPriv = join(dir, 'o.pem');
  const otherPub = join(dir, 'o.pub.pem');
  await sdc(['envelope', 'keygen', '--out-private', otherPriv, '--out-public', otherPub]);
  assert.match((await sdc(['envelope', 'verify', '--pub', otherPub], signed.stdout)).stderr, /^sdc: CRYPTO_SIGNATURE_INVALID/);
  assert.match((await sdc(['envelope', 'verify', '--pub', priv], signed.stdout)).stderr, /^sdc: CRYPTO_BAD_KEY: expected a public key/);
}));

test('sign refuses input that is not envelope fields, with one line naming the field', withTempDir(async (dir) => {
  const priv = join(dir, 'k.pem');
  await sdc(['envelope', 'keygen', '--out-private', priv, '--out-public', join(dir, 'k.pub.pem')]);
  const run = await sdc(['envelope', 'sign', '--key', priv, '--kid', 'k1'], JSON.stringify({ ...fields, device_id: 'Bad Id' }));
  assert.equal(run.code, 1);
  assert.match(run.stderr, /^sdc: PROTO_SCHEMA_INVALID: envelope device_id: [^\n]*\n$/);
  const withSig = await sdc(['envelope', 'sign', '--key', priv, '--kid', 'k1'], JSON.stringify({ ...fields, sig: {} }));
  assert.match(withSig.stderr, /^sdc: PROTO_SCHEMA_INVALID: envelope sig: is not an envelope field/);
  assert.equal((await sdc(['envelope', 'sign', '--kid', 'k1'], '{}')).code, 2, 'missing --key is a usage error');
  assert.match((await sdc(['envelope', 'sign', '--key', join(dir, 'missing.pem'), '--kid', 'k1'], '{}')).stderr, /^sdc: CLI_INPUT: cannot read .*ENOENT/);
}));

test('a key made by `openssl genpkey -algorithm ed25519` signs envelopes that verify with its openssl-made public key',
  { skip: hasOpenssl ? false : 'openssl CLI not installed; the keygen round trip above covers our own PEM files' },
  withTempDir(async (dir) => {
    const priv = join(dir, 'openssl.pem');
    const pub = join(dir, 'openssl.pub.pem');
    execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', priv]);
    execFileSync('openssl', ['pkey', '-in', priv, '-pubout', '-out', pub]);
    const signed = await sdc(['envelope', 'sign', '--key', priv, '--kid', 'ops-1'], JSON.stringify(fields));
    assert.equal(signed.code, 0, signed.stderr);
    assert.deepEqual(await sdc(['envelope', 'verify', '--pub', pub], signed.stdout), { code: 0, stdout: 'ok kid=ops-1\n', stderr: '' });
  }));

test('envelope and bench groups are registered with help', async () => {
  const envelopeHelp = await sdc(['envelope', '--help']);
  for (const name of ['canonicalize', 'keygen', 'sign', 'verify']) assert.match(envelopeHelp.stdout, new RegExp(`\\n  ${name} `));
  assert.match((await sdc(['bench', '--help'])).stdout, /\n {2}ed25519 /);
  assert.match((await sdc(['envelope', 'verify', '--help'])).stdout, /^Usage: sdc envelope verify --pub PUBLIC\.pem/);
});

test('bench ed25519 prints a table or the common JSON report, takes --duration, and refuses a bad one', async () => {
  const json = await sdc(['bench', 'ed25519', '--duration', '10ms', '--message-bytes', '32', '--json']);
  assert.equal(json.code, 0, json.stderr);
  const report = JSON.parse(json.stdout) as { benchmark: string; parameters: Record<string, number>; units: Record<string, string>; results: { operation: string; operations: number; ops_per_s: number }[] };
  assert.equal(report.benchmark, 'ed25519');
  assert.deepEqual(report.parameters, { duration_ms_per_case: 10, message_bytes: 32 });
  assert.equal(report.results.length, 6);
  assert.ok(report.results.every((r) => r.operations > 0 && r.ops_per_s > 0));
  assert.equal(report.units.ops_per_s, 'operations per second');
  // Progress without a terminal: lines, the last one at 100 %.
  assert.match(json.stderr, /bench ed25519: 100% 6\/6 cases\n$/);
  const table = await sdc(['bench', 'ed25519', '--duration', '10ms']);
  assert.match(table.stdout, /^provider +operation +operations +elapsed_ms +ops_per_s/);
  // The old spelling still works for one release, with a note.
  const legacy = await sdc(['bench', 'ed25519', '--seconds', '0.01', '--json']);
  assert.equal(legacy.code, 0, legacy.stderr);
  assert.match(legacy.stderr, /--seconds is deprecated .* use --duration 10ms/);
  for (const bad of [['--seconds', '0'], ['--seconds', '-1'], ['--seconds', 'abc'], ['--seconds', '601'], ['--duration', '11m'], ['--duration', '5']]) {
    assert.equal((await sdc(['bench', 'ed25519', ...bad])).code, 2, bad.join(' '));
  }
});

test('sign with a corrupt key file: one line naming the file', withTempDir(async (dir) => {
  const priv = join(dir, 'corrupt.pem');
  writeFileSync(priv, '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n');
  const fieldsFile = join(dir, 'fields.json');
  writeFileSync(fieldsFile, JSON.stringify(fields));
  const run = await sdc(['envelope', 'sign', '--key', priv, '--kid', 'k1', fieldsFile]);
  assert.equal(run.code, 1);
  assert.equal(run.stderr.split('\n').length, 2, run.stderr);
  assert.ok(run.stderr.startsWith(`sdc: CLI_INPUT: ${priv} is not an Ed25519 private key`), run.stderr);
}));
