import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer } from 'node:tls';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { SdcError } from '../core/errors/index.js';
import { systemRandom } from '../runtime/system.js';
import { decodeNameConstraints, encodeNameConstraints, namePermitted, parsePermittedNames } from './name-constraints.js';
import { createServingCa, loadServingCa, pkiPaths } from './pki-directory.js';
import { issueServerCertificate, issueServingCa, servingCaPermittedNames } from './server-certificate.js';
import { dayMs } from './test-fixtures.js';

const run = promisify(execFile);

/** The serving CA's name constraints (decision 0006): a browser trusting it trusts it for the deployment's names only. */
describe('serving CA name constraints', () => {
  const now = new Date();

  it('parses names into DNS subtrees and IP ranges, round-trips the DER, and matches as RFC 5280 does', () => {
    const names = parsePermittedNames(['localhost', 'Console.Example.test', '127.0.0.1', '::1', '10.1.0.0/16', 'fd00::/8']);
    assert.deepEqual(names.hostnames, ['localhost', 'console.example.test']);
    assert.deepEqual(names.ipRanges, ['127.0.0.1/32', '::1/128', '10.1.0.0/16', 'fd00::/8']);
    const back = decodeNameConstraints(encodeNameConstraints(names));
    assert.deepEqual(back.hostnames, names.hostnames);
    assert.deepEqual(back.ipRanges, ['127.0.0.1/32', '0:0:0:0:0:0:0:1/128', '10.1.0.0/16', 'fd00:0:0:0:0:0:0:0/8']);
    assert.equal(namePermitted(back, 'console.example.test'), true);
    assert.equal(namePermitted(back, 'a.console.example.test'), true);
    assert.equal(namePermitted(back, 'evilconsole.example.test'), false);
    assert.equal(namePermitted(back, 'example.test'), false);
    assert.equal(namePermitted(back, '10.1.200.3'), true);
    assert.equal(namePermitted(back, '10.2.0.1'), false);
    assert.equal(namePermitted(back, '::1'), true);
    assert.equal(namePermitted(back, 'fd12::5'), true);
    assert.equal(namePermitted(back, '::2'), false);
    for (const bad of ['*.example.test', '10.0.0.0/33', '10.0.0.0/x', 'a b', '']) {
      assert.throws(() => parsePermittedNames([bad]), (error: unknown) => error instanceof SdcError && error.code === 'TRUST_INVALID_ARGUMENT', bad);
    }
    assert.throws(() => parsePermittedNames([]), (error: unknown) => error instanceof SdcError && error.code === 'TRUST_INVALID_ARGUMENT');
  });

  async function constrainedChain() {
    const ca = await issueServingCa({
      commonName: 'constrained serving CA', now, validityMs: 365 * dayMs, random: systemRandom,
      permittedNames: parsePermittedNames(['localhost', 'console.example.test', '127.0.0.1', '::1']),
    });
    const leaf = (hostnames: string[], ipAddresses: string[]) => issueServerCertificate({
      intermediateCertPem: ca.certPem, intermediateKey: ca.privateKey, hostnames, ipAddresses,
      now, validityMs: 30 * dayMs, random: systemRandom, keyAlgorithm: 'ECDSA-P256',
    });
    return { ca, inside: await leaf(['localhost', 'console.example.test'], ['127.0.0.1']), outsideName: await leaf(['bank.example.com'], []), outsideIp: await leaf(['localhost'], ['192.0.2.7']) };
  }

  it('openssl verify accepts a leaf inside the constraints and refuses one with a name or an address outside (critical extension)', async () => {
    const { ca, inside, outsideName, outsideIp } = await constrainedChain();
    assert.deepEqual(servingCaPermittedNames(ca.certPem)?.hostnames, ['localhost', 'console.example.test']);
    const dir = await mkdtemp(join(tmpdir(), 'sdc-nc-'));
    try {
      await writeFile(join(dir, 'ca.pem'), ca.certPem);
      const text = (await run('openssl', ['x509', '-in', join(dir, 'ca.pem'), '-noout', '-text'])).stdout;
      assert.match(text, /X509v3 Name Constraints: critical\s+Permitted:\s+DNS:localhost\s+DNS:console\.example\.test\s+IP:127\.0\.0\.1\/255\.255\.255\.255\s+IP:0:0:0:0:0:0:0:1\/FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF/);
      const verify = async (pem: string, name: string): Promise<{ ok: boolean; out: string }> => {
        await writeFile(join(dir, `${name}.pem`), pem);
        try {
          const result = await run('openssl', ['verify', '-CAfile', join(dir, 'ca.pem'), join(dir, `${name}.pem`)]);
          return { ok: true, out: result.stdout };
        } catch (error) {
          const failed = error as { stdout: string; stderr: string };
          return { ok: false, out: failed.stdout + failed.stderr };
        }
      };
      const good = await verify(inside.certPem, 'inside');
      assert.equal(good.ok, true, good.out);
      for (const [pem, name] of [[outsideName.certPem, 'outside-name'], [outsideIp.certPem, 'outside-ip']] as const) {
        const bad = await verify(pem, name);
        assert.equal(bad.ok, false, `${name}: ${bad.out}`);
        assert.match(bad.out, /permitted subtree violation/, name);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('Node TLS trusting only the CA connects to a server inside the constraints and refuses one outside', async () => {
    const { ca, inside, outsideName } = await constrainedChain();
    const attempt = async (leaf: { certPem: string; keyPem: string }, servername: string): Promise<string> => {
      const server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (socket) => socket.end('ok'));
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const port = (server.address() as AddressInfo).port;
      try {
        return await new Promise<string>((resolve) => {
          // checkServerIdentity passes so the refusal seen is the chain's, not the host name check's.
          const socket = connect({ host: '127.0.0.1', port, servername, ca: ca.certPem, checkServerIdentity: () => undefined });
          let text = '';
          socket.on('data', (chunk) => { text += String(chunk); });
          socket.on('end', () => resolve(text));
          socket.on('error', (error: NodeJS.ErrnoException) => resolve(`error ${error.code ?? ''}: ${error.message}`));
        });
      } finally {
        server.close();
      }
    };
    assert.equal(await attempt(inside, 'console.example.test'), 'ok');
    // Node has no name for OpenSSL's X509_V_ERR_PERMITTED_VIOLATION (code UNSPECIFIED); the message says it.
    assert.match(await attempt(outsideName, 'bank.example.com'), /^error .*permitted subtree violation/i);
  });

  it('createServingCa always permits localhost and loopback and adds --serving-name values; loadServingCa reads it back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sdc-nc-dir-'));
    try {
      const paths = pkiPaths(dir);
      await createServingCa({ paths, now, random: systemRandom, servingNames: ['console.example.test', '10.0.0.0/8'] });
      const loaded = await loadServingCa(paths);
      const names = servingCaPermittedNames(loaded!.certPem)!;
      assert.deepEqual(names.hostnames, ['localhost', 'console.example.test']);
      assert.deepEqual(names.ipRanges, ['127.0.0.1/32', '0:0:0:0:0:0:0:1/128', '10.0.0.0/8']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
