import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SdcError } from '../../core/errors/index.js';
import { parseCommandArgs, renderCommandHelp, type CliIo } from '../command.js';
import { canonicalizeCommand } from './envelope-canonicalize.js';

// Not run through cli/main.ts: the command is registered by the `sdc envelope` group, not here.

function fakeIo(stdin = ''): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => out.push(t), stderr: (t) => err.push(t), readStdin: async () => stdin, env: {} };
}

async function run(argv: string[], io: CliIo): Promise<number> {
  return canonicalizeCommand.run(parseCommandArgs(canonicalizeCommand, argv), io);
}

test('canonicalizes standard input', async () => {
  for (const argv of [[], ['-']]) {
    const io = fakeIo('{ "b": [1.50, 1E2], "a": "\\u00e9" }\n');
    assert.equal(await run(argv, io), 0);
    assert.deepEqual(io.out, ['{"a":"é","b":[1.5,100]}\n']);
  }
});

test('canonicalizes a file, and refuses invalid UTF-8, duplicates and missing files', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-canon-'));
  try {
    const good = join(dir, 'good.json');
    await writeFile(good, '{"z":null,"a":[true]}');
    const io = fakeIo();
    assert.equal(await run([good], io), 0);
    assert.deepEqual(io.out, ['{"a":[true],"z":null}\n']);

    const bad = join(dir, 'bad.json');
    await writeFile(bad, new Uint8Array([0x22, 0xff, 0x22]));
    await assert.rejects(run([bad], fakeIo()), (e) => SdcError.is(e, 'PROTO_NOT_UTF8'));
    await assert.rejects(run([], fakeIo('{"a":1,"a":2}')), (e) => SdcError.is(e, 'PROTO_JSON_DUPLICATE_KEY'));
    await assert.rejects(run([join(dir, 'missing.json')], fakeIo()), (e) => SdcError.is(e, 'CLI_INPUT'));
    await assert.rejects(run([good, good], fakeIo()), (e) => SdcError.is(e, 'CLI_USAGE'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('accepts documents above the 64 KiB frame limit', async () => {
  const big = JSON.stringify(Array.from({ length: 4_000 }, () => 'x'.repeat(20)));
  assert.ok(big.length > 65_536);
  const io = fakeIo(big);
  assert.equal(await run([], io), 0);
  assert.equal(io.out.join(''), big + '\n');
});

test('help names the usage and the FILE argument', () => {
  const help = renderCommandHelp('envelope canonicalize', canonicalizeCommand);
  assert.match(help, /Usage: sdc envelope canonicalize \[FILE\]/);
  assert.match(help, /standard input/);
});
