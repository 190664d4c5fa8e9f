import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type SecureVersion } from 'node:tls';
import { describe, it } from 'node:test';
import pino from 'pino';
import { systemClock, systemRandom, systemScheduler } from '../../runtime/system.js';
import { initDeployment, type DeploymentMaterials } from '../materials/materials.js';
import { startDeployment } from './deployment.js';
import { startStartupApiServer } from './listening.js';
import { Readiness } from './readiness.js';

type Handshake = { ok: true; protocol: string | null } | { ok: false; error: string };

/** One TLS handshake with the client's highest version capped at `maxVersion`. */
function handshake(port: number, caPem: string, maxVersion: SecureVersion): Promise<Handshake> {
  return new Promise((resolve) => {
    // No client certificate: the gateway refuses those anyway, but only after the version is agreed;
    // the version refusal comes first, in the ServerHello.
    const socket = connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost', minVersion: 'TLSv1.2', maxVersion, rejectUnauthorized: false });
    socket.once('secureConnect', () => {
      const protocol = socket.getProtocol();
      socket.destroy();
      resolve({ ok: true, protocol });
    });
    socket.once('error', (error) => {
      socket.destroy();
      resolve({ ok: false, error: String((error as NodeJS.ErrnoException).code ?? error.message) });
    });
  });
}

async function withMaterials(run: (materials: DeploymentMaterials) => Promise<void>): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sdc-tls-versions-'));
  try {
    await run(await initDeployment({ dataDir, clock: systemClock, random: systemRandom }));
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

function assertRefusedTls12(result: Handshake, where: string): void {
  assert.equal(result.ok, false, `${where} accepted a TLS 1.2-only client`);
  if (!result.ok) assert.match(result.error, /VERSION|PROTOCOL|ECONNRESET|ALERT/i, `${where}: ${result.error}`);
}

describe('TLS 1.3 only, on the API and on the gateway (hardening 10.4)', () => {
  it('a TLS 1.2-only client is refused by the API and the gateway; a TLS 1.3 client is not', async () => {
    await withMaterials(async (materials) => {
      const deployment = await startDeployment({
        materials, clock: systemClock, random: systemRandom, scheduler: systemScheduler, logger: pino({ level: 'silent' }),
        apiPort: 0, gatewayPort: 0, scryptParams: { N: 1024, r: 8, p: 1 },
      });
      try {
        const apiPort = Number(new URL(deployment.apiUrl!).port);
        const gatewayPort = deployment.gatewayServer.address.port;
        for (const [where, port] of [['API', apiPort], ['gateway', gatewayPort]] as const) {
          assertRefusedTls12(await handshake(port, materials.rootCaPem, 'TLSv1.2'), where);
        }
        // The API itself answers TLS 1.3 (the gateway then asks for a client certificate).
        assert.deepEqual(await handshake(apiPort, materials.rootCaPem, 'TLSv1.3'), { ok: true, protocol: 'TLSv1.3' });
      } finally {
        await deployment.stop();
      }
    });
  });

  it('the API port while the stores come up (the startup server) refuses TLS 1.2 too', async () => {
    await withMaterials(async (materials) => {
      const readiness = new Readiness({ dependencies: [], clock: systemClock, scheduler: systemScheduler });
      const server = await startStartupApiServer({ materials, host: '127.0.0.1', port: 0, readiness, random: systemRandom, logger: pino({ level: 'silent' }) });
      try {
        assertRefusedTls12(await handshake(server.port, materials.rootCaPem, 'TLSv1.2'), 'startup API');
        assert.deepEqual(await handshake(server.port, materials.rootCaPem, 'TLSv1.3'), { ok: true, protocol: 'TLSv1.3' });
      } finally {
        await server.release();
      }
    });
  });
});
