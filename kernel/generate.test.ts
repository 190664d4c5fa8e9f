import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ctlCode, renderCHeader, renderTypeScript, validateContract } from './contract-render.js';
import { generatedHeaderUrl, generatedTsUrl, loadContract } from './contract-files.js';

test('committed generated files equal fresh output of kernel/generate.ts', () => {
  const contract = loadContract();
  assert.equal(readFileSync(generatedTsUrl, 'utf8'), renderTypeScript(contract), 'run npm run kernel:generate');
  assert.equal(readFileSync(generatedHeaderUrl, 'utf8'), renderCHeader(contract), 'run npm run kernel:generate');
});

test('IOCTL codes follow CTL_CODE(0x22, 0x800 + opcode, METHOD_BUFFERED, FILE_ANY_ACCESS)', () => {
  const contract = loadContract();
  assert.equal(ctlCode(contract, 1), 0x222004);
  assert.equal(ctlCode(contract, 7), 0x22201c);
});

test('validateContract refuses a listed IOCTL code that disagrees with the formula', () => {
  const contract = loadContract();
  const broken = structuredClone(contract);
  broken.opcodes[0]!.ioctlCode = '0x00222000';
  assert.throws(() => validateContract(broken), /CTL_CODE gives 0x00222004/);
});

test('validateContract refuses overlapping or gapped fields', () => {
  const broken = structuredClone(loadContract());
  broken.payloads.PingResponse!.fields[1]!.offset = 12;
  assert.throws(() => validateContract(broken), /offset 12, expected 8/);
});
