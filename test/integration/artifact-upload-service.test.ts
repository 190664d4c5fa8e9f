import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import pino from 'pino';
import { SdcError } from '../../core/errors/index.js';
import type { SignedCommand } from '../../core/protocol/messages/command.js';
import { createArtifactCollector, simulatedScreenshot, type ArtifactGrant, type ArtifactSources } from '../../agent/ota/artifact-collector.js';
import { artifactKeyStatement, artifactPrivateKeyFromPem, generateArtifactKeyPair, rawPublicKey, sealedLength } from '../../runtime/artifact-seal-node.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { systemScheduler } from '../../runtime/system.js';
import type { CommandView } from '../../server/control-plane/commands.js';
import type { ServiceContext } from '../../server/control-plane/context.js';
import { ArtifactService } from '../../server/ota/artifact-routes.js';
import { embedded, type BlobFixture } from '../../server/ota/blob-store-test-support.js';
import { uploadKey } from '../../server/ota/encrypted-artifacts.js';
import { createEmbeddedKeyValueStore } from '../../server/stores/kv/redis-key-value-store.js';
import { artifactCommandView } from './support/artifact-command-view.js';

// The grant, seal, upload and open path between agent/ota/artifact-collector.ts and
// server/ota/artifact-routes.ts's ArtifactService, on the embedded blob store over a real socket,
// with the command store and audit log faked: each refusal the issue names (oversize, tampered or
// rebound ciphertext, wrong device or command, expired URL, replayed grant, an untrusted key).
// The routes, the device certificate check and the real agent are in test/e2e/artifact-upload.test.ts.

const ed25519 = createNodeEd25519Provider();
const nowMs = Date.now();

async function refused(run: Promise<unknown>, code: string, check?: (error: SdcError) => boolean): Promise<void> {
  await assert.rejects(run, (error: unknown) => error instanceof SdcError && error.code === code && (check === undefined || check(error)), code);
}

const commandView = (id: string, deviceId: string, state: CommandView['state'], kind: string, output?: Record<string, unknown>): CommandView =>
  artifactCommandView({ id, deviceId, state, kind, output, nowMs });

/** A valid declared length for grants asked directly (100 bytes of plaintext, sealed). */
const sealed100 = sealedLength(100);

const signed = (id: string, kind: 'logs' | 'screenshot') => ({ id, args: { kind } }) as unknown as SignedCommand;

describe('artifact upload: agent collector and control-plane service', () => {
  let fixture: BlobFixture;
  let workDir: string;
  const commands = new Map<string, CommandView>();
  const audit: Array<{ kind: string; subject: string; payload: Record<string, unknown> }> = [];
  const signerSeed = new Uint8Array(32).fill(7);
  const signer = { kid: 'cp:test', seed: signerSeed, publicKey: ed25519.publicKeyFromSeed(signerSeed) };
  const keyPair = generateArtifactKeyPair();
  const artifactKey = { privateKey: artifactPrivateKeyFromPem(keyPair.privateKeyPem), publicKey: keyPair.publicKey };
  let context: ServiceContext;
  const service = (plaintextBytesMax = 1 << 20) => new ArtifactService({
    context, commands: { get: async (id) => { const view = commands.get(id); if (view === undefined) throw new SdcError('COMMAND_NOT_FOUND', id); return { ...view, history: [] }; } },
    materials: { commandSigner: signer } as never, artifactKey, blobStore: () => fixture.store, plaintextBytesMax,
  });
  const collector = (server: ArtifactService, sources: ArtifactSources, overrides: { resolveCommandKey?: (kid: string) => Uint8Array | undefined; fetchGrant?: (id: string, sealedLength: number) => Promise<ArtifactGrant> } = {}) => createArtifactCollector({
    deviceId: 'dev-1', controlPlaneUrl: 'https://cp.invalid', caPem: '', clientCert: () => ({ certPem: '', keyPem: '' }),
    resolveCommandKey: overrides.resolveCommandKey ?? ((kid) => (kid === signer.kid ? signer.publicKey : undefined)), ed25519, scheduler: systemScheduler, workDir, sources,
    fetchGrant: overrides.fetchGrant ?? ((id, length) => server.grant('dev-1', id, length)),
  });
  const sources: ArtifactSources = { logs: async () => Buffer.from('log line\n'.repeat(500)), screenshot: async () => simulatedScreenshot('dev-1') };

  before(async () => {
    fixture = await embedded();
    workDir = await mkdtemp(join(tmpdir(), 'sdc-artifacts-'));
    context = {
      kv: createEmbeddedKeyValueStore({ keyPrefix: 'artifact-test:' }), clock: { nowMs: () => Date.now() }, ed25519, logger: pino({ level: 'silent' }),
      audit: { append: async (entry: { kind: string; subject: string; payload: Record<string, unknown> }) => { audit.push(entry); return entry; } },
    } as unknown as ServiceContext;
  });
  after(async () => {
    await fixture.close();
    await context.kv.close();
    await rm(workDir, { recursive: true, force: true });
  });

  test('a screenshot round trip: one grant per command (a second is ARTIFACT_UPLOAD_REPLAYED), the key signed by the command key, the operator gets the bytes', async () => {
    const server = service();
    commands.set('c1', commandView('c1', 'dev-1', 'executing', 'screenshot'));
    const output = await collector(server, sources)(signed('c1', 'screenshot'));
    assert.equal(output.artifact_id, 'c1');
    assert.equal(output.content_type, 'image/png');
    await refused(server.grant('dev-1', 'c1', sealed100), 'ARTIFACT_UPLOAD_REPLAYED');
    commands.set('c1', commandView('c1', 'dev-1', 'succeeded', 'screenshot', output));
    const { bytes, record } = await server.open('c1', 'alice');
    assert.deepEqual(bytes, Buffer.from(simulatedScreenshot('dev-1')));
    assert.equal(record.sha256, output.sha256);
    assert.deepEqual(audit.filter((entry) => entry.subject === 'artifact:c1').map((entry) => entry.kind), ['artifact.upload_granted', 'artifact.upload_refused', 'artifact.downloaded']);
    // What the grant carries verifies against the command key, and only for this artifact key.
    commands.set('c9', commandView('c9', 'dev-1', 'executing', 'logs'));
    const grant = await server.grant('dev-1', 'c9', sealed100);
    const signature = Buffer.from(grant.artifact_key_signature, 'base64url');
    assert.ok(ed25519.verify(signer.publicKey, artifactKeyStatement(Buffer.from(grant.artifact_key, 'base64url')), signature));
    assert.ok(!ed25519.verify(signer.publicKey, artifactKeyStatement(rawPublicKey(artifactPrivateKeyFromPem(generateArtifactKeyPair().privateKeyPem))), signature));
  });

  test('grants only for a running EXEC_COLLECT_ARTIFACT command of this device', async () => {
    const server = service();
    commands.set('c2', commandView('c2', 'dev-2', 'executing', 'logs'));
    await refused(server.grant('dev-1', 'c2', sealed100), 'ARTIFACT_UPLOAD_BINDING');
    commands.set('c3', commandView('c3', 'dev-1', 'failed', 'logs'));
    await refused(server.grant('dev-1', 'c3', sealed100), 'ARTIFACT_UPLOAD_BINDING');
    commands.set('c4', { ...commandView('c4', 'dev-1', 'executing', 'logs'), opcode: 'EXEC_LOCK_SCREEN' });
    await refused(server.grant('dev-1', 'c4', sealed100), 'ARTIFACT_UPLOAD_BINDING');
    await refused(server.grant('dev-1', 'never', sealed100), 'ARTIFACT_UPLOAD_BINDING');
    commands.set('c5', { ...commandView('c5', 'dev-1', 'sent', 'logs'), expires_at_ms: Date.now() - 1 });
    await refused(server.grant('dev-1', 'c5', sealed100), 'ARTIFACT_UPLOAD_BINDING');
  });

  test('size limits on both sides: the grant is refused for a declared length past the control plane\'s limit (nothing claimed, nothing sent); the control plane refuses to open past its own', async () => {
    const small = service(1000);
    commands.set('c6', commandView('c6', 'dev-1', 'executing', 'logs'));
    await refused(collector(small, sources)(signed('c6', 'logs')), 'OTA_UPLOAD_TOO_LARGE');
    assert.equal(await fixture.store.head(uploadKey({ deviceId: 'dev-1', commandId: 'c6' })), undefined);
    // The refusal came before the claim: the same command still gets a grant for a length within the limit.
    assert.equal((await small.grant('dev-1', 'c6', sealedLength(1000))).sealed_length, sealedLength(1000));
    // Uploaded under a large limit, opened under a small one.
    commands.set('c7', commandView('c7', 'dev-1', 'executing', 'logs'));
    const output = await collector(service(), sources)(signed('c7', 'logs'));
    commands.set('c7', commandView('c7', 'dev-1', 'succeeded', 'logs', output));
    await refused(small.open('c7', 'alice'), 'OTA_UPLOAD_TOO_LARGE');
    assert.equal((await service().open('c7', 'alice')).bytes.toString('utf8'), 'log line\n'.repeat(500));
  });

  test('the ciphertext is bound to device and command: c7\'s upload under c8 with c7\'s digest does not open; a result naming no upload is ARTIFACT_RESULT_INVALID', async () => {
    const server = service();
    const c7 = commands.get('c7')!;
    const chunks: Buffer[] = [];
    for await (const chunk of (await fixture.store.read(uploadKey({ deviceId: 'dev-1', commandId: 'c7' })))!) chunks.push(Buffer.from(chunk));
    await fixture.store.put(uploadKey({ deviceId: 'dev-1', commandId: 'c8' }), [Buffer.concat(chunks)], { bytesMax: 1 << 20 });
    const output = (c7.result_frame as unknown as { body: { output: Record<string, unknown> } }).body.output;
    commands.set('c8', commandView('c8', 'dev-1', 'succeeded', 'logs', { ...output, artifact_id: 'c8' }));
    await refused(server.open('c8', 'alice'), 'OTA_ARTIFACT_DECRYPT_FAILED');
    // The same bytes as another device's upload for the same command id.
    await fixture.store.put(uploadKey({ deviceId: 'dev-9', commandId: 'c7' }), [Buffer.concat(chunks)], { bytesMax: 1 << 20 });
    commands.set('c7', { ...c7, device_id: 'dev-9' });
    await refused(server.open('c7', 'alice'), 'OTA_ARTIFACT_DECRYPT_FAILED');
    commands.set('c7', c7);
    commands.set('c10', commandView('c10', 'dev-1', 'succeeded', 'logs', { artifact_id: 'c10', length: 12 }));
    await refused(server.open('c10', 'alice'), 'ARTIFACT_RESULT_INVALID');
    // Listed without an upload rather than failing the list.
    const listed = await (new ArtifactService({
      context: { ...context, db: { query: async () => [{ id: 'c10' }, { id: 'c7' }] } } as unknown as ServiceContext,
      commands: { get: async (id) => ({ ...commands.get(id)!, history: [] }) }, materials: { commandSigner: signer } as never, artifactKey, blobStore: () => fixture.store,
    })).list({});
    assert.deepEqual(listed.map((item) => [item.id, item.sha256 === null]), [['c10', true], ['c7', false]]);
    commands.set('c11', commandView('c11', 'dev-1', 'failed', 'logs'));
    await refused(server.open('c11', 'alice'), 'ARTIFACT_NOT_FOUND');
    assert.deepEqual(audit.filter((entry) => entry.kind === 'artifact.download_refused' && (entry.subject === 'artifact:c8' || entry.subject === 'artifact:c7')).map((entry) => entry.payload.code),
      ['OTA_UPLOAD_TOO_LARGE', 'OTA_ARTIFACT_DECRYPT_FAILED', 'OTA_ARTIFACT_DECRYPT_FAILED']);
  });

  test('the device refuses an artifact key not signed by a pinned command key, a screenshot it cannot take, and reports an expired URL as OTA_UPLOAD_FAILED 403', async () => {
    const server = service();
    commands.set('d1', commandView('d1', 'dev-1', 'executing', 'logs'));
    await refused(collector(server, sources, { resolveCommandKey: () => ed25519.publicKeyFromSeed(new Uint8Array(32).fill(9)) })(signed('d1', 'logs')), 'ARTIFACT_KEY_UNTRUSTED');
    assert.equal(await fixture.store.head(uploadKey({ deviceId: 'dev-1', commandId: 'd1' })), undefined);
    await refused(collector(server, { logs: sources.logs })(signed('d2', 'screenshot')), 'ARTIFACT_KIND_UNSUPPORTED');

    commands.set('d3', commandView('d3', 'dev-1', 'executing', 'logs'));
    const grant = await server.grant('dev-1', 'd3', sealed100);
    const client = new S3Client({ region: fixture.endpoint.region, endpoint: fixture.endpoint.endpoint, forcePathStyle: true, credentials: fixture.endpoint.credentials, requestChecksumCalculation: 'WHEN_REQUIRED' });
    const expired = await getSignedUrl(client, new PutObjectCommand({ Bucket: fixture.endpoint.bucket, Key: uploadKey({ deviceId: 'dev-1', commandId: 'd3' }) }), { expiresIn: 60, signingDate: new Date(Date.now() - 2 * 3_600_000) });
    await refused(collector(server, sources, { fetchGrant: async (_id, length) => ({ ...grant, sealed_length: length, put_url: expired }) })(signed('d3', 'logs')), 'OTA_UPLOAD_FAILED', (error) => error.details.status === 403);
    assert.equal(await fixture.store.head(uploadKey({ deviceId: 'dev-1', commandId: 'd3' })), undefined);
  });
});
