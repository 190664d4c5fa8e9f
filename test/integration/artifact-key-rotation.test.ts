// Artifact key rotation (docs/artifacts.md, "Key rotation"): after a rotation new grants hand out
// the new key (signed by the command key), uploads name their key id in the sealed header, the
// retired key still opens what was sealed to it (also in a second process on the same data
// directory), a removed key makes its uploads ARTIFACT_KEY_UNKNOWN, and the routes are admin only
// and audited. ArtifactService over the embedded blob store on a socket with the command store
// faked; the routes through a real control plane's HTTP app.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { SdcError, type ErrorCode } from '../../core/errors/index.js';
import type { SignedCommand } from '../../core/protocol/messages/command.js';
import { createArtifactCollector, simulatedScreenshot } from '../../agent/ota/artifact-collector.js';
import { artifactKeyId, artifactKeyStatement, generateArtifactKeyPair, artifactPrivateKeyFromPem, rawPublicKey } from '../../runtime/artifact-seal-node.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { systemScheduler } from '../../runtime/system.js';
import type { CommandView } from '../../server/control-plane/commands.js';
import type { ServiceContext } from '../../server/control-plane/context.js';
import { makeHarness, sqlJsTarget, type Harness } from '../../server/control-plane/test-support.js';
import { ArtifactKeyRing, artifactRetiredKeysMax, retiredArtifactKeyDirectory } from '../../server/ota/artifact-key-ring.js';
import { ArtifactService } from '../../server/ota/artifact-routes.js';
import { embedded, type BlobFixture } from '../../server/ota/blob-store-test-support.js';
import { uploadKey } from '../../server/ota/encrypted-artifacts.js';
import { createEmbeddedKeyValueStore } from '../../server/stores/kv/redis-key-value-store.js';
import { artifactCommandView } from './support/artifact-command-view.js';

const ed25519 = createNodeEd25519Provider();

const commandView = (id: string, state: CommandView['state'], output?: Record<string, unknown>): CommandView => artifactCommandView({ id, state, output });

const refusedWith = (code: ErrorCode) => (error: unknown) => SdcError.is(error, code);

describe('artifact key rotation (service and key files)', () => {
  let fixture: BlobFixture;
  let dataDir: string;
  let context: ServiceContext;
  const commands = new Map<string, CommandView>();
  const audit: Array<{ kind: string; actor: string; subject: string; payload: Record<string, unknown> }> = [];
  const signerSeed = new Uint8Array(32).fill(5);
  const signer = { kid: 'cp:test', seed: signerSeed, publicKey: ed25519.publicKeyFromSeed(signerSeed) };
  const service = (ring: ArtifactKeyRing) => new ArtifactService({
    context, commands: { get: async (id) => { const view = commands.get(id); if (view === undefined) throw new SdcError('COMMAND_NOT_FOUND', id); return { ...view, history: [] }; } },
    materials: { commandSigner: signer } as never, artifactKey: ring, blobStore: () => fixture.store,
  });
  /** Runs EXEC_COLLECT_ARTIFACT `id` on the device through `server`; returns the grant's key id and the result output. */
  const upload = async (server: ArtifactService, id: string) => {
    commands.set(id, commandView(id, 'executing'));
    let keyId = '';
    const output = await createArtifactCollector({
      deviceId: 'dev-1', controlPlaneUrl: 'https://cp.invalid', caPem: '', clientCert: () => ({ certPem: '', keyPem: '' }),
      resolveCommandKey: (kid) => (kid === signer.kid ? signer.publicKey : undefined), ed25519, scheduler: systemScheduler, workDir: join(dataDir, 'work'),
      sources: { logs: async () => Buffer.alloc(0), screenshot: async () => simulatedScreenshot('dev-1') },
      fetchGrant: async (commandId, length) => {
        const grant = await server.grant('dev-1', commandId, length);
        keyId = grant.artifact_key_id;
        // The key handed out is the ring's current one, signed by the command key.
        assert.ok(ed25519.verify(signer.publicKey, artifactKeyStatement(Buffer.from(grant.artifact_key, 'base64url')), Buffer.from(grant.artifact_key_signature, 'base64url')));
        assert.equal(artifactKeyId(Buffer.from(grant.artifact_key, 'base64url')), keyId);
        return grant;
      },
    })({ id, args: { kind: 'screenshot' } } as unknown as SignedCommand);
    commands.set(id, commandView(id, 'succeeded', output));
    return keyId;
  };
  const headerKeyId = async (id: string) => {
    for await (const chunk of (await fixture.store.read(uploadKey({ deviceId: 'dev-1', commandId: id })))!) return Buffer.from(chunk).subarray(5, 13).toString('hex');
    return '';
  };
  const screenshot = Buffer.from(simulatedScreenshot('dev-1'));

  before(async () => {
    fixture = await embedded();
    dataDir = await mkdtemp(join(tmpdir(), 'sdc-artifact-keys-'));
    context = {
      kv: createEmbeddedKeyValueStore({ keyPrefix: 'artifact-keys:' }), clock: { nowMs: () => Date.now() }, ed25519, logger: pino({ level: 'silent' }),
      audit: { append: async (entry: (typeof audit)[number]) => { audit.push(entry); return entry; } },
    } as unknown as ServiceContext;
  });
  after(async () => {
    await fixture.close();
    await context.kv.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('a rotation: new grants get the new key, the header names it, the retired key still opens its uploads, here and in a second process', async () => {
    const server = service(await ArtifactKeyRing.load(dataDir));
    const first = await upload(server, 'k1');
    assert.equal(await headerKeyId('k1'), first);
    const rotated = await server.rotateKey('user:root');
    assert.deepEqual(rotated.retired, first);
    assert.notEqual(rotated.current, first);
    assert.deepEqual(audit.filter((entry) => entry.kind === 'artifact.key_rotated').map((entry) => [entry.actor, entry.payload]),
      [['user:root', { retired_key_id: first, current_key_id: rotated.current }]]);
    // On disk: the retired key under its id, 0600 in a 0700 directory; the new key is D/keys/artifact.key.
    const retiredPath = join(retiredArtifactKeyDirectory(dataDir), `${first}.key`);
    assert.equal((await stat(retiredPath)).mode & 0o777, 0o600);
    assert.equal((await stat(retiredArtifactKeyDirectory(dataDir))).mode & 0o777, 0o700);
    assert.equal(artifactKeyId(rawPublicKey(artifactPrivateKeyFromPem(await readFile(join(dataDir, 'keys', 'artifact.key'), 'utf8')))), rotated.current);

    const second = await upload(server, 'k2');
    assert.equal(second, rotated.current);
    assert.equal(await headerKeyId('k2'), rotated.current);
    assert.deepEqual((await server.open('k1', 'alice')).bytes, screenshot, 'sealed to the retired key');
    assert.deepEqual((await server.open('k2', 'alice')).bytes, screenshot);
    // Another process on the same data directory: the same ring from the files.
    const other = service(await ArtifactKeyRing.load(dataDir));
    assert.deepEqual(other.keys.list(), [{ key_id: rotated.current, current: true }, { key_id: first, current: false }]);
    assert.deepEqual((await other.open('k1', 'alice')).bytes, screenshot);
  });

  test('a removed key: its uploads are ARTIFACT_KEY_UNKNOWN (also for a process that loaded it before), the current key cannot be removed', async () => {
    const server = service(await ArtifactKeyRing.load(dataDir));
    const before = service(await ArtifactKeyRing.load(dataDir));
    const [current, retired] = server.keys.list();
    await assert.rejects(server.removeKey(current!.key_id, 'user:root'), refusedWith('ARTIFACT_KEY_IN_USE'));
    await assert.rejects(server.removeKey('0123456789abcdef', 'user:root'), refusedWith('ARTIFACT_KEY_UNKNOWN'));
    await server.removeKey(retired!.key_id, 'user:root');
    assert.equal(audit.at(-1)?.kind, 'artifact.key_removed');
    await assert.rejects(server.open('k1', 'alice'), refusedWith('ARTIFACT_KEY_UNKNOWN'));
    await assert.rejects(before.open('k1', 'alice'), refusedWith('ARTIFACT_KEY_UNKNOWN'));
    assert.deepEqual(audit.filter((entry) => entry.kind === 'artifact.download_refused' && entry.subject === 'artifact:k1').map((entry) => entry.payload.code), ['ARTIFACT_KEY_UNKNOWN', 'ARTIFACT_KEY_UNKNOWN']);
    assert.deepEqual((await server.open('k2', 'alice')).bytes, screenshot, 'the current key\'s upload still opens');
  });

  test('the ring is bounded: past artifactRetiredKeysMax retired keys a rotation is ARTIFACT_KEY_RING_FULL until one is removed', async () => {
    const pair = generateArtifactKeyPair();
    const ring = ArtifactKeyRing.inMemory({ privateKey: artifactPrivateKeyFromPem(pair.privateKeyPem), publicKey: pair.publicKey });
    for (let i = 0; i < artifactRetiredKeysMax; i += 1) await ring.rotate();
    await assert.rejects(ring.rotate(), refusedWith('ARTIFACT_KEY_RING_FULL'));
    await ring.remove(ring.list()[1]!.key_id);
    await ring.rotate();
    assert.equal(ring.list().length, artifactRetiredKeysMax + 1);
  });
});

describe('artifact key routes (admin only, audited)', () => {
  let h: Harness;
  const tokens: Record<string, string> = {};
  before(async () => {
    h = await makeHarness(sqlJsTarget);
    for (const [name, role] of [['root', 'admin'], ['olga', 'operator']] as const) {
      await h.cp.auth.users.add({ name, role, password: `${name} password long enough`, nowMs: h.clock.nowMs() });
      tokens[name] = (await h.cp.auth.login(name, `${name} password long enough`)).token;
    }
  });
  after(async () => { await h.close(); await sqlJsTarget.cleanup(); });
  const call = (method: 'GET' | 'POST' | 'DELETE', url: string, user: string) => h.cp.app.inject({ method, url, headers: { authorization: `Bearer ${tokens[user]}` }, ...(method === 'POST' ? { payload: {} } : {}) });

  test('list, rotate, remove: an operator is refused; the admin\'s rotation and removal are audited; the current key is ARTIFACT_KEY_IN_USE', async () => {
    assert.equal((await call('POST', '/v1/artifacts/keys/rotate', 'olga')).statusCode, 403);
    const listed = (await call('GET', '/v1/artifacts/keys', 'root')).json() as { items: Array<{ key_id: string; current: boolean }> };
    assert.equal(listed.items.length, 1);
    const rotated = await call('POST', '/v1/artifacts/keys/rotate', 'root');
    assert.equal(rotated.statusCode, 200, rotated.body);
    assert.equal(rotated.json().retired, listed.items[0]!.key_id);
    const after = (await call('GET', '/v1/artifacts/keys', 'root')).json() as { items: Array<{ key_id: string; current: boolean }> };
    assert.deepEqual(after.items, [{ key_id: rotated.json().current, current: true }, { key_id: listed.items[0]!.key_id, current: false }]);
    const inUse = await call('DELETE', `/v1/artifacts/keys/${rotated.json().current}`, 'root');
    assert.deepEqual([inUse.statusCode, inUse.json().error.code], [409, 'ARTIFACT_KEY_IN_USE']);
    const removed = await call('DELETE', `/v1/artifacts/keys/${listed.items[0]!.key_id}`, 'root');
    assert.equal(removed.statusCode, 200, removed.body);
    const again = await call('DELETE', `/v1/artifacts/keys/${listed.items[0]!.key_id}`, 'root');
    assert.deepEqual([again.statusCode, again.json().error.code], [404, 'ARTIFACT_KEY_UNKNOWN']);
    const kinds = await h.db.query<{ kind: string; actor: string }>("SELECT kind, actor FROM audit_log WHERE kind LIKE 'artifact.key_%' ORDER BY seq");
    assert.deepEqual(kinds.map((row) => [row.kind, row.actor]), [['artifact.key_rotated', 'user:root'], ['artifact.key_removed', 'user:root']]);
  });
});
