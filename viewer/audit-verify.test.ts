import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { base64urlFromBytes } from '../core/crypto/bytes.js';
import { createNobleEd25519Provider } from '../core/crypto/ed25519-noble.js';
import { nobleSha256 } from '../core/crypto/sha256-noble.js';
import { appendAuditEntry, type AuditEntry, type AuditEntryInput } from '../core/protocol/audit-chain.js';
import { signEnvelope } from '../core/protocol/envelope.js';
import { verifyAuditInBrowser } from './audit-verify.js';

const provider = createNobleEd25519Provider();
const seedA = new Uint8Array(32).fill(7);
const seedB = new Uint8Array(32).fill(9);

function resultFrame(deviceId: string, seed: Uint8Array, seq: number): string {
  const envelope = signEnvelope({
    fields: { v: 1, type: 'COMMAND_RESULT', id: `f${seq}`, device_id: deviceId, session_id: 's1', seq, ts: 1_000 + seq,
      body: { command_id: `c${seq}`, device_seq: seq, status: 'succeeded', output: { processes: [] }, finished_at: 2_000 } },
    kid: `device:${deviceId}`, seed, provider,
  });
  // Stored as the text the device sent (docs/audit.md).
  return JSON.stringify(envelope);
}

function chain(inputs: AuditEntryInput[]): AuditEntry[] {
  const entries: AuditEntry[] = [];
  for (const input of inputs) entries.push(appendAuditEntry(entries.at(-1), input, nobleSha256));
  return entries;
}

function log(frameSeed = seedA): AuditEntry[] {
  return chain([
    { ts: 1, kind: 'auth.login', actor: 'user:admin', subject: 'user:admin', payload: {} },
    { ts: 2, kind: 'device.enrolled', actor: 'device:lab-1', subject: 'device:lab-1', payload: { public_key: base64urlFromBytes(provider.publicKeyFromSeed(seedA)) } },
    { ts: 3, kind: 'command.result', actor: 'device:lab-1', subject: 'command:c1', payload: { from: 'executing', to: 'succeeded', frame: resultFrame('lab-1', frameSeed, 1) } },
    { ts: 4, kind: 'command.result', actor: 'device:lab-1', subject: 'command:c2', payload: { from: 'executing', to: 'succeeded', frame: resultFrame('lab-1', seedA, 2) } },
  ]);
}

describe('verify in this browser', () => {
  it('passes an intact chain and checks every device-signed frame in it', async () => {
    const report = await verifyAuditInBrowser(log());
    assert.equal(report.chain.ok, true);
    assert.equal(report.signaturesChecked, 2);
    assert.equal(report.signatureBreak, undefined);
    assert.equal(report.firstBrokenSeq, undefined);
  });

  it('names the first broken link when an entry was changed after it was written', async () => {
    const entries = log().map((entry) => entry.seq === 2 ? { ...entry, actor: 'device:mallory' } : entry);
    const report = await verifyAuditInBrowser(entries);
    assert.equal(report.chain.ok, false);
    assert.equal(report.firstBrokenSeq, 2);
    assert.equal(!report.chain.ok && report.chain.reason, 'hash_mismatch');
  });

  it('finds a frame signed by another key even when the chain hashes (a rewritten log with its hashes recomputed)', async () => {
    const report = await verifyAuditInBrowser(log(seedB));
    assert.equal(report.chain.ok, true);
    assert.equal(report.signatureBreak?.seq, 3);
    assert.equal(report.signatureBreak?.code, 'CRYPTO_SIGNATURE_INVALID');
    assert.equal(report.firstBrokenSeq, 3);
  });

  it('refuses a frame from a device the chain never enrolled', async () => {
    const entries = chain([
      { ts: 1, kind: 'command.ack', actor: 'device:lab-2', subject: 'command:c1', payload: { frame: resultFrame('lab-2', seedA, 1) } },
    ]);
    const report = await verifyAuditInBrowser(entries);
    assert.equal(report.signatureBreak?.code, 'CRYPTO_UNKNOWN_KID');
  });

  it('names a frame that is missing or does not decode, and skips session-MAC frames it has no key for', async () => {
    const enrolled = { ts: 1, kind: 'device.enrolled', actor: 'device:lab-1', subject: 'device:lab-1', payload: { public_key: base64urlFromBytes(provider.publicKeyFromSeed(seedA)) } };
    const macFrame = JSON.parse(resultFrame('lab-1', seedA, 1)) as { sig: Record<string, string> };
    macFrame.sig = { alg: 'HMAC-SHA256', kid: 'session', value: 'A'.repeat(43) };
    const report = await verifyAuditInBrowser(chain([
      enrolled,
      { ts: 2, kind: 'command.ack', actor: 'device:lab-1', subject: 'command:c1', payload: { frame: JSON.stringify(macFrame) } },
      { ts: 3, kind: 'command.ack', actor: 'device:lab-1', subject: 'command:c1', payload: { frame: '{"v":1,' } },
    ]));
    assert.equal(report.macFramesSkipped, 1);
    assert.equal(report.signatureBreak?.seq, 3);
    assert.equal(report.signatureBreak?.code, 'PROTO_JSON_SYNTAX');
    const missing = await verifyAuditInBrowser(chain([enrolled, { ts: 2, kind: 'command.result', actor: 'device:lab-1', subject: 'command:c1', payload: {} }]));
    assert.equal(missing.signatureBreak?.code, 'VIEWER_FRAME_MISSING');
  });

  it('reports a malformed entry instead of throwing', async () => {
    const report = await verifyAuditInBrowser([{ seq: 1 }, 'not an entry']);
    assert.equal(report.chain.ok, false);
    assert.equal(!report.chain.ok && report.chain.reason, 'malformed');
  });
});
