import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { SdcError } from '../../core/errors/index.js';
import type { SignedCommand } from '../../core/protocol/messages/command.js';
import { createArtifactCollector, simulatedScreenshot, type ArtifactGrant } from '../../agent/ota/artifact-collector.js';
import { artifactPrivateKeyFromPem, generateArtifactKeyPair, sealedLength } from '../../runtime/artifact-seal-node.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { systemScheduler } from '../../runtime/system.js';
import type { CommandView } from '../../server/control-plane/commands.js';
import type { ServiceContext } from '../../server/control-plane/context.js';
import { ArtifactService } from '../../server/ota/artifact-routes.js';
import { blobFixtures, type BlobFixture } from '../../server/ota/blob-store-test-support.js';
import { uploadKey } from '../../server/ota/encrypted-artifacts.js';
import { createEmbeddedKeyValueStore } from '../../server/stores/kv/redis-key-value-store.js';
import { artifactCommandView } from './support/artifact-command-view.js';

// A device's artifact PUT is bounded by the length it declared (docs/artifacts.md, "Grant"): the
// grant signs that length as Content-Length, the embedded store refuses any other length itself
// (SignatureDoesNotMatch) and keeps nothing of a body cut short; s3rver checks no signature
// (fixture.lacks.signatureCheck), so there the control plane's check of the stored object against
// the device's signed result (length, then SHA-256) is what refuses the other length.

const ed25519 = createNodeEd25519Provider();

const commandView = (id: string, state: CommandView['state'], output?: Record<string, unknown>): CommandView => artifactCommandView({ id, state, output });

/** PUTs `body` to `url` declaring `declaredLength`; with `cutAfter`, the connection is closed after that many bytes. */
function put(url: string, body: Buffer, declaredLength: number, cutAfter?: number): Promise<{ status: number; text: string } | 'cut'> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { method: 'PUT', headers: { 'content-length': String(declaredLength) } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    if (cutAfter === undefined) {
      request.on('error', reject);
      request.end(body);
      return;
    }
    request.on('error', () => resolve('cut'));
    request.write(body.subarray(0, cutAfter), () => setImmediate(() => { request.destroy(); resolve('cut'); }));
  });
}

for (const [name, open] of blobFixtures) {
  describe(`artifact PUT length bound (${name})`, () => {
    let fixture: BlobFixture;
    let workDir: string;
    let context: ServiceContext;
    const commands = new Map<string, CommandView>();
    const audit: Array<{ kind: string; subject: string; payload: Record<string, unknown> }> = [];
    const signerSeed = new Uint8Array(32).fill(7);
    const signer = { kid: 'cp:test', seed: signerSeed, publicKey: ed25519.publicKeyFromSeed(signerSeed) };
    const keyPair = generateArtifactKeyPair();
    const artifactKey = { privateKey: artifactPrivateKeyFromPem(keyPair.privateKeyPem), publicKey: keyPair.publicKey };
    let service: ArtifactService;
    const read = async (commandId: string): Promise<Buffer | undefined> => {
      const body = await fixture.store.read(uploadKey({ deviceId: 'dev-1', commandId }));
      if (body === undefined) return undefined;
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(Buffer.from(chunk));
      return Buffer.concat(chunks);
    };

    before(async () => {
      fixture = await open();
      workDir = await mkdtemp(join(tmpdir(), 'sdc-artifact-length-'));
      context = {
        kv: createEmbeddedKeyValueStore({ keyPrefix: `artifact-length-${name}:` }), clock: { nowMs: () => Date.now() }, ed25519, logger: pino({ level: 'silent' }),
        audit: { append: async (entry: { kind: string; subject: string; payload: Record<string, unknown> }) => { audit.push(entry); return entry; } },
      } as unknown as ServiceContext;
      service = new ArtifactService({
        context, commands: { get: async (id) => { const view = commands.get(id); if (view === undefined) throw new SdcError('COMMAND_NOT_FOUND', id); return { ...view, history: [] }; } },
        materials: { commandSigner: signer } as never, artifactKey, blobStore: () => fixture.store, plaintextBytesMax: 64 * 1024,
      });
    });
    after(async () => {
      await fixture.close();
      await context.kv.close();
      await rm(workDir, { recursive: true, force: true });
    });

    test('the grant signs the declared length; another Content-Length is refused by the store or, where the store checks no signature, when opened', async () => {
      commands.set('l1', commandView('l1', 'executing'));
      let granted: ArtifactGrant | undefined;
      const output = await createArtifactCollector({
        deviceId: 'dev-1', controlPlaneUrl: 'https://cp.invalid', caPem: '', clientCert: () => ({ certPem: '', keyPem: '' }),
        resolveCommandKey: (kid) => (kid === signer.kid ? signer.publicKey : undefined), ed25519, scheduler: systemScheduler, workDir,
        sources: { logs: async () => Buffer.alloc(0), screenshot: async () => simulatedScreenshot('dev-1') },
        fetchGrant: async (id, length) => (granted = await service.grant('dev-1', id, length)),
      })({ id: 'l1', args: { kind: 'screenshot' } } as unknown as SignedCommand);
      const declared = sealedLength(simulatedScreenshot('dev-1').length);
      assert.equal(output.length, declared);
      assert.equal(granted!.sealed_length, declared);
      const url = new URL(granted!.put_url);
      assert.equal(url.searchParams.get('X-Amz-SignedHeaders'), 'content-length;host');
      assert.equal(audit.find((entry) => entry.kind === 'artifact.upload_granted' && entry.subject === 'artifact:l1')?.payload.sealed_length, declared);
      const stored = (await read('l1'))!;
      assert.equal(stored.length, declared);
      commands.set('l1', commandView('l1', 'succeeded', output));

      const longer = Buffer.concat([stored, Buffer.from([0])]);
      const shorter = stored.subarray(0, stored.length - 1);
      for (const body of [longer, shorter]) {
        const answer = await put(granted!.put_url, body, body.length);
        assert.notEqual(answer, 'cut');
        if (answer === 'cut') return;
        if (fixture.lacks.signatureCheck === undefined) {
          assert.equal(answer.status, 403, answer.text);
          assert.match(answer.text, /<Code>SignatureDoesNotMatch<\/Code>/);
          assert.deepEqual(await read('l1'), stored, 'the refused PUT left the upload as it was');
          assert.deepEqual((await service.open('l1', 'alice')).bytes, Buffer.from(simulatedScreenshot('dev-1')));
        } else {
          // s3rver stores it; the object no longer matches the signed result and is not opened.
          assert.equal(answer.status, 200, answer.text);
          assert.equal((await read('l1'))!.length, body.length);
          await assert.rejects(service.open('l1', 'alice'), (error: unknown) => SdcError.is(error, 'OTA_UPLOAD_DIGEST_MISMATCH'));
        }
      }
    });

    test('a body cut short of its declared length keeps nothing', async () => {
      commands.set('l2', commandView('l2', 'executing'));
      const declared = sealedLength(10_000);
      const grant = await service.grant('dev-1', 'l2', declared);
      assert.equal(await put(grant.put_url, Buffer.alloc(declared, 1), declared, 5_000), 'cut');
      // A complete upload through the same server afterwards: the aborted request has been handled by the time it answers.
      commands.set('l2b', commandView('l2b', 'executing'));
      const whole = await put((await service.grant('dev-1', 'l2b', declared)).put_url, Buffer.alloc(declared, 2), declared);
      assert.deepEqual(whole === 'cut' ? whole : whole.status, 200);
      assert.equal((await fixture.store.head(uploadKey({ deviceId: 'dev-1', commandId: 'l2b' })))?.length, declared);
      const left = await fixture.store.head(uploadKey({ deviceId: 'dev-1', commandId: 'l2' }));
      if (fixture.lacks.incompleteBodyCheck === undefined) {
        assert.equal(left, undefined);
      } else {
        // s3rver keeps what arrived: not the declared length, so a result claiming the declared length is not opened.
        assert.notEqual(left?.length, declared);
        commands.set('l2', commandView('l2', 'succeeded', { artifact_id: 'l2', kind: 'screenshot', sha256: '0'.repeat(64), length: declared, plaintext_length: 10_000 }));
        await assert.rejects(service.open('l2', 'alice'), (error: unknown) => SdcError.is(error, 'OTA_UPLOAD_DIGEST_MISMATCH'));
      }
    });

    test('the device sends nothing on a grant signed for another length than it declared (OTA_UPLOAD_FAILED)', async () => {
      commands.set('l4', commandView('l4', 'executing'));
      await assert.rejects(createArtifactCollector({
        deviceId: 'dev-1', controlPlaneUrl: 'https://cp.invalid', caPem: '', clientCert: () => ({ certPem: '', keyPem: '' }),
        resolveCommandKey: (kid) => (kid === signer.kid ? signer.publicKey : undefined), ed25519, scheduler: systemScheduler, workDir,
        sources: { logs: async () => Buffer.alloc(0), screenshot: async () => simulatedScreenshot('dev-1') },
        fetchGrant: async (id, length) => service.grant('dev-1', id, length + 16),
      })({ id: 'l4', args: { kind: 'screenshot' } } as unknown as SignedCommand), (error: unknown) => SdcError.is(error, 'OTA_UPLOAD_FAILED') && /not the \d+ declared/.test(error.message));
      assert.equal(await fixture.store.head(uploadKey({ deviceId: 'dev-1', commandId: 'l4' })), undefined);
    });

    test('a declared length past the limit gets no grant and claims nothing; refusal audited', async () => {
      commands.set('l3', commandView('l3', 'executing'));
      await assert.rejects(service.grant('dev-1', 'l3', sealedLength(64 * 1024) + 1), (error: unknown) => SdcError.is(error, 'OTA_UPLOAD_TOO_LARGE'));
      await assert.rejects(service.grant('dev-1', 'l3', sealedLength(0) - 1), (error: unknown) => SdcError.is(error, 'OTA_UPLOAD_TOO_LARGE'));
      assert.deepEqual(audit.filter((entry) => entry.subject === 'artifact:l3').map((entry) => [entry.kind, entry.payload.code]),
        [['artifact.upload_refused', 'OTA_UPLOAD_TOO_LARGE'], ['artifact.upload_refused', 'OTA_UPLOAD_TOO_LARGE']]);
      assert.equal((await service.grant('dev-1', 'l3', sealedLength(64 * 1024))).sealed_length, sealedLength(64 * 1024));
    });
  });
}
