import assert from 'node:assert/strict';
import { chmod, copyFile, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { openssl, withTempDir } from '../../trust/test-fixtures.js';
import type { CliIo } from '../command.js';
import { main } from '../main.js';

interface Run { code: number; stdout: string; stderr: string }

/** The root key passphrase most tests init with; the root key is encrypted unless a test asks otherwise. */
const testPassphrase = 'a long enough test passphrase';

async function sdc(argv: string[], env: Record<string, string> = { SDC_ROOT_KEY_PASSPHRASE: testPassphrase }, promptSecret?: (q: string) => Promise<string>): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => '', env, ...(promptSecret ? { promptSecret } : {}) };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

function opensslCsr(dir: string, name: string, cn: string): string {
  assert.equal(openssl(['genpkey', '-algorithm', 'ed25519', '-out', `${name}.key`], dir).status, 0);
  const req = openssl(['req', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-out', `${name}.csr`], dir);
  assert.equal(req.status, 0, req.stderr);
  return join(dir, `${name}.csr`);
}

describe('sdc pki', () => {
  it('init, issue (OpenSSL CSR), revoke and crl: OpenSSL verifies the chain, then reports the certificate revoked', async () => {
    await withTempDir(async (dir) => {
      const data = join(dir, 'data');
      const init = await sdc(['pki', 'init', '--dir', data]);
      assert.equal(init.code, 0, init.stderr);
      for (const key of ['root-ca.key', 'intermediate-ca.key']) assert.equal((await stat(join(data, 'pki', key))).mode & 0o777, 0o600);
      assert.equal((await stat(join(data, 'pki'))).mode & 0o777, 0o700);
      // The artifact key devices seal uploads to (docs/artifacts.md) is made with the CA.
      assert.equal((await stat(join(data, 'keys', 'artifact.key'))).mode & 0o777, 0o600);
      assert.equal((await stat(join(data, 'keys'))).mode & 0o777, 0o700);
      const again = await sdc(['pki', 'init', '--dir', data]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /TRUST_PKI_EXISTS/);

      const csr = opensslCsr(dir, 'dev', 'dev-1');
      const out = join(dir, 'dev.pem');
      const issued = await sdc(['pki', 'issue', '--dir', data, '--csr', csr, '--out', out, '--days', '7']);
      assert.equal(issued.code, 0, issued.stderr);
      const chainArgs = ['-CAfile', join(data, 'pki', 'root-ca.pem'), '-untrusted', join(data, 'pki', 'intermediate-ca.pem')];
      const verified = openssl(['verify', ...chainArgs, out]);
      assert.equal(verified.status, 0, verified.stdout + verified.stderr);
      assert.match(verified.stdout, /OK/);

      assert.equal((await sdc(['pki', 'revoke', '--dir', data, '--cert', out, '--reason', 'bogus'])).code, 2);
      const revoked = await sdc(['pki', 'revoke', '--dir', data, '--cert', out, '--reason', 'keyCompromise']);
      assert.equal(revoked.code, 0, revoked.stderr);
      const crlPath = join(dir, 'crl.pem');
      const crl = await sdc(['pki', 'crl', '--dir', data, '--out', crlPath]);
      assert.equal(crl.code, 0, crl.stderr);
      assert.match(await readFile(crlPath, 'utf8'), /^-----BEGIN X509 CRL-----/);
      assert.equal(openssl(['crl', '-in', crlPath, '-noout', '-text']).status, 0);
      const checked = openssl(['verify', '-crl_check', '-CRLfile', crlPath, ...chainArgs, out]);
      assert.notEqual(checked.status, 0);
      assert.match(checked.stdout + checked.stderr, /certificate revoked/);
    });
  });

  it('refuses to issue for a non-Ed25519 CSR and to revoke a foreign certificate', async () => {
    await withTempDir(async (dir) => {
      const data = join(dir, 'data');
      // Plain here, so that the root key can stand in for an intermediate key that does not match.
      assert.equal((await sdc(['pki', 'init', '--dir', data, '--insecure-plain-root-key'], {})).code, 0);
      assert.equal(openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'ec.key'], dir).status, 0);
      assert.equal(openssl(['req', '-new', '-key', 'ec.key', '-subj', '/CN=dev-1', '-out', 'ec.csr'], dir).status, 0);
      const ec = await sdc(['pki', 'issue', '--dir', data, '--csr', join(dir, 'ec.csr'), '--out', join(dir, 'x.pem')]);
      assert.equal(ec.code, 1);
      assert.match(ec.stderr, /TRUST_CSR_KEY_ALGORITHM/);
      const foreign = await sdc(['pki', 'revoke', '--dir', data, '--cert', join(data, 'pki', 'root-ca.pem')]);
      assert.match(foreign.stderr, /TRUST_CERT_UNTRUSTED/);
      // A key file that does not belong to the intermediate certificate is refused before any issuance.
      await copyFile(join(data, 'pki', 'root-ca.key'), join(data, 'pki', 'intermediate-ca.key'));
      const swapped = await sdc(['pki', 'issue', '--dir', data, '--csr', opensslCsr(dir, 'ok', 'dev-1'), '--out', join(dir, 'x.pem')]);
      assert.match(swapped.stderr, /TRUST_KEY_FILE_INVALID/);
      const missing = await sdc(['pki', 'issue', '--dir', join(dir, 'nothing'), '--csr', join(dir, 'ec.csr'), '--out', join(dir, 'x.pem')]);
      assert.match(missing.stderr, /TRUST_PKI_MISSING/);
    });
  });

  it('pairing-token and enroll: one use only, bound to the device', async () => {
    await withTempDir(async (dir) => {
      const data = join(dir, 'data');
      assert.equal((await sdc(['pki', 'init', '--dir', data])).code, 0);
      const created = await sdc(['pki', 'pairing-token', '--dir', data, '--device', 'dev-2', '--ttl-minutes', '5']);
      assert.equal(created.code, 0, created.stderr);
      const token = created.stdout.trim();
      assert.match(token, /^sdcpt_[A-Za-z0-9_-]{43}$/);
      assert.ok(!(await readFile(join(data, 'pki', 'pairing-tokens.json'), 'utf8')).includes(token));

      const wrong = await sdc(['pki', 'enroll', '--dir', data, '--token', token, '--csr', opensslCsr(dir, 'other', 'dev-3'), '--out', join(dir, 'o.pem')]);
      assert.match(wrong.stderr, /TRUST_PAIRING_DEVICE_MISMATCH/);

      const second = await sdc(['pki', 'pairing-token', '--dir', data, '--device', 'dev-2']);
      const token2 = second.stdout.trim();
      const csr = opensslCsr(dir, 'dev2', 'dev-2');
      const out = join(dir, 'dev2.pem');
      const chainOut = join(dir, 'chain.pem');
      const enrolled = await sdc(['pki', 'enroll', '--dir', data, '--token', token2, '--csr', csr, '--out', out, '--chain-out', chainOut]);
      assert.equal(enrolled.code, 0, enrolled.stderr);
      const verified = openssl(['verify', '-CAfile', join(data, 'pki', 'root-ca.pem'), '-untrusted', chainOut, out]);
      assert.equal(verified.status, 0, verified.stdout + verified.stderr);
      const reused = await sdc(['pki', 'enroll', '--dir', data, '--token', token2, '--csr', csr, '--out', out]);
      assert.match(reused.stderr, /TRUST_PAIRING_TOKEN_USED/);
    });
  });

  it('encrypts the root key when SDC_ROOT_KEY_PASSPHRASE is set', async () => {
    await withTempDir(async (dir) => {
      const data = join(dir, 'data');
      const init = await sdc(['pki', 'init', '--dir', data], { SDC_ROOT_KEY_PASSPHRASE: 'a long enough passphrase' });
      assert.equal(init.code, 0, init.stderr);
      assert.match(await readFile(join(data, 'pki', 'root-ca.key'), 'utf8'), /BEGIN ENCRYPTED PRIVATE KEY/);
      assert.match(await readFile(join(data, 'pki', 'intermediate-ca.key'), 'utf8'), /BEGIN PRIVATE KEY/);
      const weak = await sdc(['pki', 'init', '--dir', data, '--force'], { SDC_ROOT_KEY_PASSPHRASE: 'short' });
      assert.match(weak.stderr, /TRUST_KEY_PASSPHRASE_WEAK/);
    });
  });

  it('every command that reads the data directory refuses a missing one in one line and creates nothing', async () => {
    await withTempDir(async (dir) => {
      const missing = join(dir, 'nothing');
      for (const argv of [
        ['pki', 'pairing-token', '--dir', missing, '--device', 'dev-1'],
        ['pki', 'crl', '--dir', missing, '--out', join(dir, 'crl.pem')],
        ['pki', 'issue', '--dir', missing, '--csr', opensslCsr(dir, 'm', 'dev-1'), '--out', join(dir, 'x.pem')],
      ]) {
        const run = await sdc(argv);
        assert.equal(run.code, 1, argv.join(' '));
        assert.match(run.stderr, /^sdc: TRUST_PKI_MISSING: /, argv.join(' '));
        assert.equal(run.stderr.split('\n').length, 2, run.stderr);
      }
      assert.deepEqual((await readdir(dir)).filter((name) => name === 'nothing'), []);
    });
  });
});

describe('sdc pki serving-ca (the browsers\' ECDSA CA, decision 0006)', () => {
  it('init makes it (key 0600); serving-ca adds one to a data directory without, refuses to replace one without --force', async () => {
    await withTempDir(async (dir) => {
      const data = join(dir, 'data');
      const init = await sdc(['pki', 'init', '--dir', data, '--json']);
      assert.equal(init.code, 0, init.stderr);
      const { serving_ca_cert: cert, serving_ca_key: key } = JSON.parse(init.stdout) as { serving_ca_cert: string; serving_ca_key: string };
      assert.equal((await stat(key)).mode & 0o777, 0o600);
      const first = await readFile(cert, 'utf8');
      assert.match(first, /^-----BEGIN CERTIFICATE-----/);
      const again = await sdc(['pki', 'serving-ca', '--dir', data]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /TRUST_PKI_EXISTS/);
      const replaced = await sdc(['pki', 'serving-ca', '--dir', data, '--force', '--json']);
      assert.equal(replaced.code, 0, replaced.stderr);
      assert.notEqual(await readFile(cert, 'utf8'), first, 'a new CA');
      const missing = await sdc(['pki', 'serving-ca', '--dir', join(dir, 'nothing')]);
      assert.equal(missing.code, 1, 'no data directory: nothing created');
    });
  });

  it('the CA is name-constrained (critical) to localhost, loopback and every --serving-name; a bad name is refused', async () => {
    await withTempDir(async (dir) => {
      const data = join(dir, 'data');
      const init = await sdc(['pki', 'init', '--dir', data, '--serving-name', 'console.example.test', '--json']);
      assert.equal(init.code, 0, init.stderr);
      const cert = (JSON.parse(init.stdout) as { serving_ca_cert: string }).serving_ca_cert;
      const text = openssl(['x509', '-in', cert, '-noout', '-text'], dir);
      assert.match(text.stdout, /Name Constraints: critical\s+Permitted:\s+DNS:localhost\s+DNS:console\.example\.test\s+IP:127\.0\.0\.1\/255\.255\.255\.255/);
      const replaced = await sdc(['pki', 'serving-ca', '--dir', data, '--force', '--serving-name', '192.0.2.0/24', '--serving-name', 'sdc.example.org']);
      assert.equal(replaced.code, 0, replaced.stderr);
      assert.match(openssl(['x509', '-in', cert, '-noout', '-text'], dir).stdout, /DNS:sdc\.example\.org\s+IP:127\.0\.0\.1\/255\.255\.255\.255\s+IP:0:0:0:0:0:0:0:1\/FFFF(:FFFF){7}\s+IP:192\.0\.2\.0\/255\.255\.255\.0/);
      const bad = await sdc(['pki', 'serving-ca', '--dir', data, '--force', '--serving-name', '*.example.org']);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /TRUST_INVALID_ARGUMENT/);
    });
  });
});

describe('sdc pki --json and the duration options', () => {
  it('init, issue --validity, pairing-token --ttl, revoke and crl answer one JSON object each; --days and --ttl-minutes still work with a note', async () => {
    await withTempDir(async (dir) => {
      const data = join(dir, 'data');
      const init = await sdc(['pki', 'init', '--dir', data, '--json']);
      assert.equal(init.code, 0, init.stderr);
      assert.match(JSON.parse(init.stdout).root_sha256, /^[0-9A-Fa-f:]+$/);
      const csr = opensslCsr(dir, 'dev', 'dev-j');
      const out = join(dir, 'dev.pem');
      const issued = await sdc(['pki', 'issue', '--dir', data, '--csr', csr, '--out', out, '--validity', '7d', '--json']);
      assert.equal(issued.code, 0, issued.stderr);
      const facts = JSON.parse(issued.stdout) as { device_id: string; not_after: string; serial: string };
      assert.equal(facts.device_id, 'dev-j');
      const days = Math.round((Date.parse(facts.not_after) - Date.now()) / 86_400_000);
      assert.ok(days >= 6 && days <= 7, `valid ${days} days`);
      const legacy = await sdc(['pki', 'issue', '--dir', data, '--csr', csr, '--out', join(dir, 'dev2.pem'), '--days', '7']);
      assert.equal(legacy.code, 0, legacy.stderr);
      assert.match(legacy.stderr, /--days is deprecated .* use --validity 7d/);
      assert.equal((await sdc(['pki', 'issue', '--dir', data, '--csr', csr, '--out', out, '--validity', '398d'])).code, 2);
      const token = await sdc(['pki', 'pairing-token', '--dir', data, '--device', 'dev-k', '--ttl', '5m', '--json']);
      assert.equal(token.code, 0, token.stderr);
      assert.match(JSON.parse(token.stdout).token, /^sdcpt_/);
      assert.match((await sdc(['pki', 'pairing-token', '--dir', data, '--device', 'dev-k', '--ttl-minutes', '5'])).stderr, /--ttl-minutes is deprecated .* use --ttl 5m/);
      const revoked = await sdc(['pki', 'revoke', '--dir', data, '--cert', out, '--json']);
      assert.deepEqual(JSON.parse(revoked.stdout), { serial: facts.serial, reason: 'unspecified', revoked: true, already_revoked: false });
      const crl = await sdc(['pki', 'crl', '--dir', data, '--out', join(dir, 'crl.pem'), '--json']);
      assert.equal(JSON.parse(crl.stdout).revoked, 1);
    });
  });
});

describe('sdc pki pairing-token --count (bulk provisioning)', () => {
  it('writes N tokens to a new 0600 CSV, stores only their hashes, each enrolls its own device; refuses an existing file and bad options', async () => {
    await withTempDir(async (dir) => {
      const data = join(dir, 'data');
      assert.equal((await sdc(['pki', 'init', '--dir', data])).code, 0);
      const out = join(dir, 'fleet.csv');
      const run = await sdc(['pki', 'pairing-token', '--dir', data, '--count', '120', '--prefix', 'lab-', '--out', out, '--ttl', '30m', '--json']);
      assert.equal(run.code, 0, run.stderr);
      const facts = JSON.parse(run.stdout) as { count: number; first_device: string; last_device: string };
      assert.deepEqual([facts.count, facts.first_device, facts.last_device], [120, 'lab-001', 'lab-120']);
      assert.equal((await stat(out)).mode & 0o777, 0o600);
      const lines = (await readFile(out, 'utf8')).trim().split('\n');
      assert.equal(lines[0], 'device_id,token,expires_at');
      assert.equal(lines.length, 121);
      const rows = lines.slice(1).map((l) => l.split(','));
      assert.ok(rows.every(([id, token, at]) => /^lab-\d{3}$/.test(id!) && /^sdcpt_[A-Za-z0-9_-]{43}$/.test(token!) && !Number.isNaN(Date.parse(at!))));
      const stored = await readFile(join(data, 'pki', 'pairing-tokens.json'), 'utf8');
      assert.ok(!stored.includes(rows[0]![1]!), 'the store holds hashes, not tokens');
      assert.equal((JSON.parse(stored) as { records: unknown[] }).records.length, 120);

      const [, token7] = rows[6]!;
      const csr = opensslCsr(dir, 'lab7', 'lab-007');
      const enrolled = await sdc(['pki', 'enroll', '--dir', data, '--token', token7!, '--csr', csr, '--out', join(dir, 'lab7.pem')]);
      assert.equal(enrolled.code, 0, enrolled.stderr);

      const again = await sdc(['pki', 'pairing-token', '--dir', data, '--count', '2', '--prefix', 'lab-', '--out', out]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /^sdc: CLI_INPUT: .*fleet\.csv exists/);
      for (const argv of [
        ['--count', '0', '--prefix', 'x-', '--out', join(dir, 'a.csv')],
        ['--count', '10001', '--prefix', 'x-', '--out', join(dir, 'a.csv')],
        ['--count', '2', '--prefix', 'X-', '--out', join(dir, 'a.csv')],
        ['--count', '2', '--out', join(dir, 'a.csv')],
        ['--count', '2', '--prefix', 'x-'],
        ['--count', '2', '--prefix', 'x-', '--device', 'd', '--out', join(dir, 'a.csv')],
        ['--device', 'd', '--out', join(dir, 'a.csv')],
      ]) {
        const bad = await sdc(['pki', 'pairing-token', '--dir', data, ...argv]);
        assert.equal(bad.code, 2, argv.join(' '));
        assert.match(bad.stderr, /^sdc: CLI_USAGE: /, argv.join(' '));
      }
      assert.deepEqual((await readdir(dir)).filter((name) => name === 'a.csv'), [], 'no file from a refused run');
    });
  });
});

describe('sdc pki init: the root key is encrypted unless asked otherwise by name', () => {
  const rootKey = (data: string) => join(data, 'pki', 'root-ca.key');
  /** OpenSSL opens the key with `-passin ARG`: the container is standard PKCS#8 PBES2, not ours. */
  const opensslOpens = (data: string, passin: string) => openssl(['pkey', '-in', rootKey(data), '-passin', passin, '-pubout']);

  it('with a 0600 passphrase file: an encrypted key OpenSSL opens with that passphrase only, matching the root certificate', async () => {
    await withTempDir(async (dir) => {
      const data = join(dir, 'data');
      const file = join(dir, 'root-passphrase');
      await writeFile(file, `${testPassphrase}-from-file\n`, { mode: 0o600 });
      // The file wins over the environment; the trailing newline is not part of the passphrase.
      const init = await sdc(['pki', 'init', '--dir', data, '--root-key-passphrase-file', file, '--json']);
      assert.equal(init.code, 0, init.stderr);
      assert.equal(JSON.parse(init.stdout).root_key_encrypted, true);
      assert.equal(init.stderr, '');
      assert.match(await readFile(rootKey(data), 'utf8'), /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
      assert.equal((await stat(rootKey(data))).mode & 0o777, 0o600);
      const opened = opensslOpens(data, `pass:${testPassphrase}-from-file`);
      assert.equal(opened.status, 0, opened.stderr);
      const certKey = openssl(['x509', '-in', join(data, 'pki', 'root-ca.pem'), '-noout', '-pubkey']);
      assert.equal(opened.stdout, certKey.stdout, 'the key is the root certificate\'s');
      for (const wrong of [`pass:${testPassphrase}`, `pass:${testPassphrase}-from-file\n`, 'pass:']) {
        assert.notEqual(opensslOpens(data, wrong).status, 0, `opened with ${JSON.stringify(wrong)}`);
      }
      // The services never need it: issuing with the intermediate works as before.
      const issued = await sdc(['pki', 'issue', '--dir', data, '--csr', opensslCsr(dir, 'dev', 'dev-1'), '--out', join(dir, 'dev.pem')], {});
      assert.equal(issued.code, 0, issued.stderr);
    });
  });

  it('with no passphrase from anywhere and no terminal: refused with CLI_ROOT_KEY_PASSPHRASE_MISSING saying how to give one; nothing written', async () => {
    await withTempDir(async (dir) => {
      const data = join(dir, 'data');
      for (const env of [{}, { SDC_ROOT_KEY_PASSPHRASE: '' }] as Record<string, string>[]) {
        const run = await sdc(['pki', 'init', '--dir', data], env);
        assert.equal(run.code, 1);
        assert.match(run.stderr, /^sdc: CLI_ROOT_KEY_PASSPHRASE_MISSING: no passphrase for the root CA key: give --root-key-passphrase-file F .*set SDC_ROOT_KEY_PASSPHRASE.*--insecure-plain-root-key/);
        assert.equal(run.stderr.split('\n').length, 2, run.stderr);
      }
      assert.deepEqual(await readdir(dir), []);
    });
  });

  it('a passphrase file that group or others may read is refused (CLI_SECRET_FILE_PERMISSIONS naming it); 0400 is fine', async () => {
    await withTempDir(async (dir) => {
      const data = join(dir, 'data');
      const file = join(dir, 'root-passphrase');
      await writeFile(file, testPassphrase);
      for (const mode of [0o644, 0o640, 0o604, 0o620]) {
        await chmod(file, mode);
        const run = await sdc(['pki', 'init', '--dir', data, '--root-key-passphrase-file', file], {});
        assert.equal(run.code, 1, mode.toString(8));
        assert.equal(run.stderr, `sdc: CLI_SECRET_FILE_PERMISSIONS: the root key passphrase file ${file} has mode ${mode.toString(8)}: group or others may read it; run chmod 600 on it\n`);
        assert.ok(!run.stderr.includes(testPassphrase));
      }
      assert.deepEqual(await readdir(dir), ['root-passphrase'], 'no CA written');
      await chmod(file, 0o400);
      const ok = await sdc(['pki', 'init', '--dir', data, '--root-key-passphrase-file', file], {});
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(opensslOpens(data, `pass:${testPassphrase}`).status, 0);
      const missing = await sdc(['pki', 'init', '--dir', join(dir, 'other'), '--root-key-passphrase-file', join(dir, 'nope')], {});
      assert.match(missing.stderr, /^sdc: CLI_INPUT: cannot read the root key passphrase file .*nope: ENOENT/);
      const short = join(dir, 'short');
      await writeFile(short, 'too short\n', { mode: 0o600 });
      assert.match((await sdc(['pki', 'init', '--dir', join(dir, 'other'), '--root-key-passphrase-file', short], {})).stderr, /TRUST_KEY_PASSPHRASE_WEAK/);
    });
  });

  it('--insecure-plain-root-key writes a plain key with a warning line; beside a passphrase it is refused', async () => {
    await withTempDir(async (dir) => {
      const data = join(dir, 'data');
      const init = await sdc(['pki', 'init', '--dir', data, '--insecure-plain-root-key', '--json'], {});
      assert.equal(init.code, 0, init.stderr);
      assert.equal(JSON.parse(init.stdout).root_key_encrypted, false);
      assert.match(init.stderr, /^sdc: WARNING: the root CA key .*root-ca\.key is NOT encrypted \(--insecure-plain-root-key\): for tests only/);
      assert.match(await readFile(rootKey(data), 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
      assert.equal(opensslOpens(data, 'pass:').status, 0);
      const file = join(dir, 'root-passphrase');
      await writeFile(file, testPassphrase, { mode: 0o600 });
      const other = join(dir, 'other');
      const both = await sdc(['pki', 'init', '--dir', other, '--insecure-plain-root-key', '--root-key-passphrase-file', file], {});
      assert.equal(both.code, 2);
      assert.match(both.stderr, /^sdc: CLI_USAGE: --insecure-plain-root-key and --root-key-passphrase-file: use one of them/);
      const withEnv = await sdc(['pki', 'init', '--dir', other, '--insecure-plain-root-key']);
      assert.equal(withEnv.code, 2);
      assert.match(withEnv.stderr, /CLI_USAGE: --insecure-plain-root-key and SDC_ROOT_KEY_PASSPHRASE is set/);
    });
  });

  it('on a terminal it asks twice (echo off is the prompt\'s job); two different answers write nothing', async () => {
    await withTempDir(async (dir) => {
      const data = join(dir, 'data');
      const questions: string[] = [];
      const answers = (...given: string[]) => async (question: string) => { questions.push(question); return given.shift() ?? ''; };
      const typo = await sdc(['pki', 'init', '--dir', data], {}, answers(testPassphrase, `${testPassphrase}x`));
      assert.equal(typo.code, 1);
      assert.match(typo.stderr, /^sdc: CLI_INPUT: the two passphrases differ; nothing was written/);
      assert.deepEqual(await readdir(dir), []);
      const asked = await sdc(['pki', 'init', '--dir', data], {}, answers(testPassphrase, testPassphrase));
      assert.equal(asked.code, 0, asked.stderr);
      assert.equal(questions.length, 4);
      assert.equal(opensslOpens(data, `pass:${testPassphrase}`).status, 0);
      // A CA already there is refused before any question.
      const again = await sdc(['pki', 'init', '--dir', data], {}, answers(testPassphrase, testPassphrase));
      assert.match(again.stderr, /^sdc: TRUST_PKI_EXISTS: /);
      assert.equal(questions.length, 4, 'not asked');
    });
  });
});
