import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { commandSigningInput } from '../../core/protocol/signed-command.js';
import { parseSignedCommand, type CommandArg } from './parse.js';
import { CommandReplayWindow } from './replay-window.js';

const utf8 = new TextEncoder();

// What the control plane signs, for arbitrary ids, issuers and args of the shapes the opcodes use.
const signedInput = fc.record({
  id: fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/),
  device_id: fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,63}$/),
  device_seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  issuer: fc.string({ maxLength: 128 }),
  issued_at: fc.integer({ min: 0, max: 2 ** 45 }),
  args: fc.dictionary(fc.stringMatching(/^[a-z_]{1,64}$/), fc.oneof(fc.string({ maxLength: 80 }), fc.nat()), { maxKeys: 32 }),
});

test('property: every command the control plane signs is read back with its device, seq, opcode and args', () => {
  fc.assert(fc.property(signedInput, (c) => {
    const bytes = commandSigningInput({ ...c, opcode: 'EXEC_GET_STATUS', expires_at: c.issued_at + 1 });
    const parsed = parseSignedCommand(bytes);
    assert.ok(parsed, new TextDecoder().decode(bytes));
    assert.equal(parsed.deviceId, c.device_id);
    assert.equal(parsed.deviceSeq, BigInt(c.device_seq));
    assert.equal(parsed.expiresAt, BigInt(c.issued_at + 1));
    assert.equal(parsed.opcode, 'EXEC_GET_STATUS');
    assert.deepEqual([...parsed.args.keys()].sort(), Object.keys(c.args).sort());
    for (const [name, value] of Object.entries(c.args)) {
      const arg: CommandArg = parsed.args.get(name)!;
      if (typeof value === 'number') assert.deepEqual(arg, { kind: 'integer', value: BigInt(value) });
      else assert.equal(arg.kind === 'string' && JSON.parse(`"${new TextDecoder().decode(arg.raw)}"`), value);
    }
  }), { numRuns: 300 });
});

test('refuses what is not one strict command object', () => {
  const ok = 'sdc-command-v1\n{"args":{},"device_id":"d1","device_seq":3,"expires_at":1700000060000,"opcode":"EXEC_GET_STATUS"}';
  assert.ok(parseSignedCommand(utf8.encode(ok)));
  const bad = [
    ok.replace('sdc-command-v1', 'sdc-command-v2'),
    ok.replace('{"args"', ' {"args"'),
    ok + ' ',
    ok.replace('"device_seq":3', '"device_seq":0'),
    ok.replace('"device_seq":3', '"device_seq":3.0'),
    ok.replace('"device_seq":3', '"device_seq":9007199254740992'),
    ok.replace('"device_id":"d1"', '"device_id":"d1","device_id":"d2"'),
    ok.replace('"args":{}', '"args":{"a":1,"a":2}'),
    ok.replace('"args":{}', '"args":{"a":{"b":1}}'),
    ok.replace('"args":{}', '"args":{"a":true}'),
    ok.replace(',"opcode":"EXEC_GET_STATUS"', ''),
    // expires_at: required, one non-negative safe integer.
    ok.replace(',"expires_at":1700000060000', ''),
    ok.replace('"expires_at":1700000060000', '"expires_at":1700000060000,"expires_at":1'),
    ok.replace('"expires_at":1700000060000', '"expires_at":"1700000060000"'),
    ok.replace('"expires_at":1700000060000', '"expires_at":1.7e12'),
    ok.replace('"expires_at":1700000060000', '"expires_at":-1'),
    ok.replace('"expires_at":1700000060000', '"expires_at":9007199254740992'),
    ok.replace('"device_id":"d1"', '"device_id":"d\\u0031"'),
    ok.replace('"args":{}', `"args":{},"x":${'['.repeat(9)}${']'.repeat(9)}`),
    ok.replace('"d1"', '"d1\u0001"'),
  ];
  for (const text of bad) assert.equal(parseSignedCommand(utf8.encode(text)), undefined, text);
  // Unknown fields are skipped whatever JSON they hold, within the depth bound.
  assert.ok(parseSignedCommand(utf8.encode(ok.replace('"args":{}', `"args":{},"x":[1.5e-3,true,null,{"y":"\\""}]`))));
});

test('property: the replay window admits a seq exactly once, and nothing a whole window below the highest', () => {
  fc.assert(fc.property(fc.array(fc.bigInt({ min: 1n, max: 2000n }), { maxLength: 300 }), (seqs) => {
    const window = new CommandReplayWindow();
    const seen = new Set<bigint>();
    let highest = 0n;
    for (const seq of seqs) {
      const fresh = !seen.has(seq) && highest - seq < 256n;
      assert.equal(window.fresh(seq), fresh, `seq ${seq} after highest ${highest}`);
      if (fresh) {
        window.mark(seq);
        seen.add(seq);
        if (seq > highest) highest = seq;
      }
    }
  }), { numRuns: 300 });
});
