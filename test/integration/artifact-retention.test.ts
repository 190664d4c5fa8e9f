// Uploaded artifacts are not kept for ever (docs/artifacts.md, "Retention and deletion"): an
// operator deletes one (audited, its download then refused), and the retention pass deletes those
// past the age limit and, newest kept first, those past the total byte budget, each audited with
// its reason. ArtifactService over the embedded blob store on a real socket; the command table
// and the audit log are faked (the routes are in plugins.test.ts, the upload itself in
// artifact-upload-service.test.ts).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { SdcError } from '../../core/errors/index.js';
import { generateArtifactKeyPair, artifactPrivateKeyFromPem } from '../../runtime/artifact-seal-node.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import type { CommandView } from '../../server/control-plane/commands.js';
import type { ServiceContext } from '../../server/control-plane/context.js';
import { ArtifactService } from '../../server/ota/artifact-routes.js';
import { embedded, type BlobFixture } from '../../server/ota/blob-store-test-support.js';
import { uploadKey } from '../../server/ota/encrypted-artifacts.js';

const dayMs = 86_400_000;
const nowMs = 1_900_000_000_000;
const ed25519 = createNodeEd25519Provider();

function commandView(id: string, deviceId: string, createdAtMs: number, opcode = 'EXEC_COLLECT_ARTIFACT'): CommandView {
  return {
    id, device_id: deviceId, opcode, args: { kind: 'logs' }, state: 'succeeded', device_seq: 1, created_by: 'alice', created_at_ms: createdAtMs,
    updated_at_ms: createdAtMs, expires_at_ms: createdAtMs + 600_000, attempts: 1, gateway_id: 'gw-1', signed: null, result_frame: null,
  } as CommandView;
}

describe('artifact deletion and retention', () => {
  let fixture: BlobFixture;
  const commands = new Map<string, CommandView>();
  const audit: Array<{ kind: string; actor: string; subject: string; payload: Record<string, unknown> }> = [];
  const seed = new Uint8Array(32).fill(9);
  const keyPair = generateArtifactKeyPair();
  let context: ServiceContext;

  const service = () => new ArtifactService({
    context, materials: { commandSigner: { kid: 'cp:test', seed, publicKey: ed25519.publicKeyFromSeed(seed) } } as never,
    commands: { get: async (id) => { const view = commands.get(id); if (view === undefined) throw new SdcError('COMMAND_NOT_FOUND', id); return { ...view, history: [] }; } },
    artifactKey: { privateKey: artifactPrivateKeyFromPem(keyPair.privateKeyPem), publicKey: keyPair.publicKey }, blobStore: () => fixture.store,
    retention: { ageMsMax: 30 * dayMs, bytesMax: 1_000 },
  });
  /** An artifact command and its stored (sealed) object of `bytes` bytes. */
  const stored = async (id: string, ageMs: number, bytes: number) => {
    commands.set(id, commandView(id, 'dev-r', nowMs - ageMs));
    await fixture.store.put(uploadKey({ deviceId: 'dev-r', commandId: id }), [Buffer.alloc(bytes, 1)], { bytesMax: 1 << 20 });
  };
  const inStore = async (id: string) => (await fixture.store.head(uploadKey({ deviceId: 'dev-r', commandId: id }))) !== undefined;

  before(async () => {
    fixture = await embedded();
    context = {
      clock: { nowMs: () => nowMs }, ed25519, logger: pino({ level: 'silent' }),
      audit: { append: async (entry: (typeof audit)[number]) => { audit.push(entry); return entry; } },
      // The one query the retention pass makes: artifact commands, newest first.
      db: {
        query: async (_sql: string, [opcode, limit]: [string, number]) => [...commands.values()]
          .filter((c) => c.opcode === opcode).sort((a, b) => b.created_at_ms - a.created_at_ms).slice(0, limit)
          .map((c) => ({ id: c.id, device_id: c.device_id, created_at: c.created_at_ms })),
      },
    } as unknown as ServiceContext;
  });
  after(async () => { await fixture.close(); });

  test('an operator deletes an artifact: the object is gone, the deletion audited, and a second delete is ARTIFACT_NOT_FOUND', async () => {
    await stored('art-del', dayMs, 64);
    commands.set('not-art', commandView('not-art', 'dev-r', nowMs, 'EXEC_LOCK_SCREEN'));
    const artifacts = service();
    assert.deepEqual(await artifacts.delete('art-del', 'user:olga', 'operator'), { id: 'art-del', length: 64 });
    assert.equal(await inStore('art-del'), false);
    assert.deepEqual(audit.map((e) => [e.kind, e.actor, e.subject, e.payload['reason'], e.payload['length']]), [['artifact.deleted', 'user:olga', 'artifact:art-del', 'operator', 64]]);
    for (const id of ['art-del', 'not-art', 'nothing']) {
      await assert.rejects(artifacts.delete(id, 'user:olga', 'operator'), (error: unknown) => SdcError.is(error, 'ARTIFACT_NOT_FOUND'), id);
    }
    assert.equal(audit.length, 1, 'a refused delete deletes and audits nothing');
    commands.delete('art-del');
    commands.delete('not-art');
  });

  test('retention deletes what is past the age limit, and past the byte budget the oldest first; each deletion audited with its reason', async () => {
    audit.length = 0;
    await stored('old', 40 * dayMs, 100); // past 30 days
    await stored('b', 3 * dayMs, 600); // would bring the kept bytes to 1,400 > 1,000
    await stored('c', 2 * dayMs, 500);
    await stored('d', 1 * dayMs, 300);
    const deleted = await service().enforceRetention();
    assert.deepEqual(deleted, [{ id: 'b', length: 600, reason: 'retention_bytes' }, { id: 'old', length: 100, reason: 'retention_age' }]);
    assert.deepEqual(await Promise.all(['old', 'b', 'c', 'd'].map(inStore)), [false, false, true, true]);
    assert.deepEqual(audit.map((e) => [e.kind, e.actor, e.subject, e.payload['reason']]), [
      ['artifact.deleted', 'system', 'artifact:b', 'retention_bytes'], ['artifact.deleted', 'system', 'artifact:old', 'retention_age'],
    ]);
    // Within both limits now: a second pass deletes nothing.
    assert.deepEqual(await service().enforceRetention(), []);
  });
});
