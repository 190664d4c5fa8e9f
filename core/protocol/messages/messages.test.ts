import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SdcError } from '../../errors/index.js';
import { messageTypes } from './catalog.js';
import { exampleBodies } from './examples.js';
import { validateMessageBody, validateOpcodeArgs } from './validate.js';
import { opcodes } from './opcodes.js';

test('every example body validates for its type', () => {
  for (const type of messageTypes) assert.doesNotThrow(() => validateMessageBody(type, exampleBodies[type]), type);
});

test('unknown members, missing members and wrong types are refused with PROTO_SCHEMA_INVALID', () => {
  for (const type of messageTypes) {
    const body = exampleBodies[type] as Record<string, unknown>;
    assert.throws(() => validateMessageBody(type, { ...body, extra: 1 }), (e) => SdcError.is(e, 'PROTO_SCHEMA_INVALID'), type);
    for (const key of Object.keys(body)) {
      const without = { ...body };
      delete without[key];
      const optional = ((type === 'TELEMETRY' || type === 'TELEMETRY_BATCH') && key === 'prev_hash') || (type === 'ERROR' && key === 'ref_id') || (type === 'ALERT' && key === 'risk_score')
        || (type === 'POLICY_BUNDLE_REPORT' && (key === 'held_version' || key === 'error'))
        || (type === 'OTA_NOTICE' && (key === 'health_nonce' || key === 'artifact_url' || key === 'notice_state')) || (type === 'OTA_REPORT' && ['nonce', 'release_counter', 'healthy', 'error'].includes(key));
      if (!optional) assert.throws(() => validateMessageBody(type, without), (e) => SdcError.is(e, 'PROTO_SCHEMA_INVALID'), `${type}.${key}`);
      assert.throws(() => validateMessageBody(type, { ...body, [key]: null }), (e) => SdcError.is(e, 'PROTO_SCHEMA_INVALID'), `${type}.${key}`);
    }
  }
});

test('an unknown type is PROTO_UNKNOWN_TYPE', () => {
  assert.throws(() => validateMessageBody('REBOOT_NOW', {}), (e) => SdcError.is(e, 'PROTO_UNKNOWN_TYPE'));
  assert.throws(() => validateMessageBody('__proto__', {}), (e) => SdcError.is(e, 'PROTO_UNKNOWN_TYPE'));
});

test('arbitrary JSON values never throw anything but typed protocol errors', () => {
  fc.assert(fc.property(fc.constantFrom(...messageTypes, 'BOGUS'), fc.jsonValue(), (type, body) => {
    try {
      validateMessageBody(type, body);
    } catch (error) {
      assert.ok(SdcError.is(error));
      assert.ok(['PROTO_SCHEMA_INVALID', 'PROTO_UNKNOWN_TYPE'].includes(error.code));
    }
  }), { numRuns: 2000 });
});

test('opcode arguments: known opcodes validate their args, unknown opcodes are refused', () => {
  for (const opcode of opcodes) {
    if (opcode === 'EXEC_STAGE_UPDATE') {
      validateOpcodeArgs(opcode, { version: '1.2.3', sha256: 'a'.repeat(64), size_bytes: 10 });
      assert.throws(() => validateOpcodeArgs(opcode, { version: '1.2.3' }), (e) => SdcError.is(e, 'PROTO_SCHEMA_INVALID'));
    } else if (opcode === 'EXEC_COMMIT_UPDATE') {
      validateOpcodeArgs(opcode, { version: '1.2.3' });
    } else if (opcode === 'EXEC_COLLECT_ARTIFACT') {
      validateOpcodeArgs(opcode, { kind: 'logs' });
      validateOpcodeArgs(opcode, { kind: 'screenshot' });
      assert.throws(() => validateOpcodeArgs(opcode, { kind: 'memory_dump' }), (e) => SdcError.is(e, 'PROTO_SCHEMA_INVALID'));
      assert.throws(() => validateOpcodeArgs(opcode, { kind: 'logs', upload_url: 'https://elsewhere' }), (e) => SdcError.is(e, 'PROTO_SCHEMA_INVALID'));
    } else {
      validateOpcodeArgs(opcode, {});
      assert.throws(() => validateOpcodeArgs(opcode, { rm: '-rf /' }), (e) => SdcError.is(e, 'PROTO_SCHEMA_INVALID'));
    }
  }
  assert.throws(() => validateOpcodeArgs('EXEC_FORMAT_DISK', {}), (e) => SdcError.is(e, 'PROTO_UNKNOWN_OPCODE') && e.message.endsWith(`known opcodes: ${opcodes.join(', ')}`));
  assert.throws(() => validateOpcodeArgs(42, {}), (e) => SdcError.is(e, 'PROTO_UNKNOWN_OPCODE'));
});

test('update versions the kernel cannot label are refused by the opcode schema (review h1, finding 6)', () => {
  const stage = (version: string) => validateOpcodeArgs('EXEC_STAGE_UPDATE', { version, sha256: 'a'.repeat(64), size_bytes: 10 });
  const commit = (version: string) => validateOpcodeArgs('EXEC_COMMIT_UPDATE', { version });
  for (const version of ['1.0.0+build.7', 'v'.repeat(32), 'a'.repeat(40), '..', '.', '', '1.0 beta', '1/2']) {
    for (const run of [stage, commit]) {
      assert.throws(() => run(version), (e) => SdcError.is(e, 'PROTO_SCHEMA_INVALID') && (e.details.path === '/version'), version);
    }
  }
  for (const version of ['1.0.0', 'v'.repeat(31), '1.0.0-rc.1', '...', '.hidden', '2_0']) {
    stage(version);
    commit(version);
  }
});

test('docs/protocol-messages.md is generated from the schemas (run `npm run docs:protocol`)', async () => {
  const { readFileSync } = await import('node:fs');
  const { renderMessageDocs } = await import('./message-docs.js');
  const onDisk = readFileSync(new URL('../../../docs/protocol-messages.md', import.meta.url), 'utf8');
  assert.equal(onDisk, renderMessageDocs());
});
