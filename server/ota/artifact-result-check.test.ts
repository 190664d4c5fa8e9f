import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { JsonObject } from '../../core/protocol/json-value.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { sealedLength } from '../../runtime/artifact-seal-node.js';
import { encodeBusEntry } from '../bus-contract/entries.js';
import { kvKeys, streamNames } from '../bus-contract/streams.js';
import { deviceFrame, makeHarness, mysqlTarget, progressEntry, sqlJsTarget, type Harness, type SqlTarget } from '../control-plane/test-support.js';
import { uploadKey } from './encrypted-artifacts.js';

const provider = createNodeEd25519Provider();

/**
 * An EXEC_COLLECT_ARTIFACT result is checked against the stored upload when it arrives (issue 10):
 * the control plane's result handler reads the object's length and SHA-256 from the blob store
 * (the embedded one here) before recording the result; a missing or different object, or a result
 * that describes no upload, fails the command with the refusal's code in its history and is
 * audited artifact.result_refused. The object need not be a real seal: only length and digest are
 * judged at this point (the seal is opened at download, artifact-upload-service.test.ts).
 */
function suite(target: SqlTarget): void {
  describe(`artifact result checked on arrival, ${target.name}`, () => {
    let h: Harness;
    const seed = new Uint8Array(randomBytes(32));
    const deviceId = 'dev-art';
    const actor = { name: 'op', role: 'operator' as const };

    before(async () => {
      h = await makeHarness(target);
      await h.db.execute("INSERT INTO devices (id, status, created_at, public_key) VALUES (?, 'enrolled', ?, ?)",
        [deviceId, h.clock.nowMs(), Buffer.from(provider.publicKeyFromSeed(seed)).toString('base64url')]);
      await h.cp.context.kv.set(kvKeys.presence(deviceId), JSON.stringify({ gateway_id: 'gw1' }));
    });
    after(async () => {
      await h.close();
      await target.cleanup();
    });

    const create = async () => (await h.cp.commands.create({ actor, deviceId, opcode: 'EXEC_COLLECT_ARTIFACT', args: { kind: 'logs' }, ttlMs: 60_000 })).command;
    const store = async (commandId: string, bytes: Uint8Array) => {
      await h.cp.blobStore.put(uploadKey({ deviceId, commandId }), [bytes], { bytesMax: bytes.length });
    };
    const report = async (command: { id: string; device_seq: number | null }, output: JsonObject) => {
      for (const event of ['deliver', 'ack', 'start'] as const) {
        await h.bus.append(streamNames.events, progressEntry({ command: { ...command, device_id: deviceId }, event, atMs: h.clock.nowMs(), seed }));
      }
      const body: JsonObject = { command_id: command.id, device_seq: command.device_seq, status: 'succeeded', output, finished_at: h.clock.nowMs() };
      const frame = deviceFrame({ deviceId, seed, type: 'COMMAND_RESULT', ts: h.clock.nowMs(), body });
      await h.bus.append(streamNames.events, encodeBusEntry('command_result', { command_id: command.id, device_id: deviceId, gateway_id: 'gw1', at_ms: h.clock.nowMs(), frame }));
      await h.cp.eventsConsumer.drain();
      return h.cp.commands.get(command.id);
    };
    const claim = (id: string, bytes: Uint8Array) => ({
      artifact_id: id, sha256: createHash('sha256').update(bytes).digest('hex'), length: bytes.length, plaintext_length: 10, content_type: 'text/plain',
    });
    const refusalsOf = async (id: string) => (await h.db.query<{ kind: string; payload_json: string }>(
      "SELECT kind, payload_json FROM audit_log WHERE subject = ? AND kind = 'artifact.result_refused' ORDER BY seq ASC", [`artifact:${id}`],
    )).map((row) => (JSON.parse(row.payload_json) as { code: string }).code);
    const refusedCode = (detail: Awaited<ReturnType<typeof report>>) => {
      const last = detail.history.at(-1)?.detail as { refused?: { code?: string }; status?: string } | undefined;
      return { state: detail.state, status: last?.status, code: last?.refused?.code };
    };
    const sealedBytes = (fill: number) => new Uint8Array(sealedLength(10)).fill(fill);

    it('a result matching its stored upload is recorded succeeded, nothing refused', async () => {
      const command = await create();
      const bytes = sealedBytes(1);
      await store(command.id, bytes);
      const detail = await report(command, claim(command.id, bytes));
      assert.deepEqual(refusedCode(detail), { state: 'succeeded', status: 'succeeded', code: undefined });
      assert.deepEqual(await refusalsOf(command.id), []);
    });

    it('a stored object whose digest differs from the result fails the command with OTA_UPLOAD_DIGEST_MISMATCH, audited', async () => {
      const command = await create();
      await store(command.id, sealedBytes(2));
      const detail = await report(command, claim(command.id, sealedBytes(3)));
      assert.deepEqual(refusedCode(detail), { state: 'failed', status: 'succeeded', code: 'OTA_UPLOAD_DIGEST_MISMATCH' });
      assert.deepEqual(await refusalsOf(command.id), ['OTA_UPLOAD_DIGEST_MISMATCH']);
      assert.ok(detail.result_frame !== null, 'the device-signed result is kept as it came');
    });

    it('a stored object of another length is OTA_UPLOAD_DIGEST_MISMATCH; no object at all is ARTIFACT_NOT_FOUND', async () => {
      const shorter = await create();
      await store(shorter.id, sealedBytes(4).subarray(1));
      assert.equal(refusedCode(await report(shorter, claim(shorter.id, sealedBytes(4)))).code, 'OTA_UPLOAD_DIGEST_MISMATCH');
      const missing = await create();
      const detail = await report(missing, claim(missing.id, sealedBytes(5)));
      assert.deepEqual(refusedCode(detail), { state: 'failed', status: 'succeeded', code: 'ARTIFACT_NOT_FOUND' });
      assert.deepEqual(await refusalsOf(missing.id), ['ARTIFACT_NOT_FOUND']);
    });

    it('a result that describes no upload, or one larger than any grant allows, is refused without reading the store', async () => {
      const invalid = await create();
      assert.equal(refusedCode(await report(invalid, { artifact_id: invalid.id, length: 3 })).code, 'ARTIFACT_RESULT_INVALID');
      const huge = await create();
      const bytes = sealedBytes(6);
      await store(huge.id, bytes);
      const tooLarge = { ...claim(huge.id, bytes), length: Number.MAX_SAFE_INTEGER };
      assert.equal(refusedCode(await report(huge, tooLarge)).code, 'OTA_UPLOAD_TOO_LARGE');
      assert.deepEqual(await refusalsOf(huge.id), ['OTA_UPLOAD_TOO_LARGE']);
    });

    it('a refused result whose recording is retried (the transition failed once) is audited once, not once per try', async () => {
      const command = await create();
      await store(command.id, sealedBytes(8));
      const commands = h.cp.commands as { transition: typeof h.cp.commands.transition };
      const transition = commands.transition.bind(h.cp.commands);
      let failures = 1;
      // The store fails the first transition after the check: the consumer retries the entry in place (stream-consumer.ts retryLimits).
      commands.transition = async (...args) => {
        if (args[0] === command.id && args[3]?.result !== undefined && failures > 0) {
          failures -= 1;
          throw new Error('the database went away');
        }
        return transition(...args);
      };
      // The retry pause is an unref'd timer: something must keep the event loop up meanwhile.
      const keepAlive = setInterval(() => undefined, 50);
      try {
        assert.equal((await report(command, claim(command.id, sealedBytes(9)))).state, 'failed', 'recorded on the second try');
      } finally {
        clearInterval(keepAlive);
        commands.transition = transition;
      }
      assert.equal(failures, 0, 'the first try failed');
      assert.deepEqual(await refusalsOf(command.id), ['OTA_UPLOAD_DIGEST_MISMATCH']);
    });

    it('the control plane keeps handling results after refusals (a later good one is recorded)', async () => {
      const command = await create();
      const bytes = sealedBytes(7);
      await store(command.id, bytes);
      assert.equal((await report(command, claim(command.id, bytes))).state, 'succeeded');
    });
  });
}

suite(sqlJsTarget);
if (process.env.MYSQL_URL !== undefined) suite(mysqlTarget(process.env.MYSQL_URL));
