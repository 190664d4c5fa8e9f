import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SdcError } from '../core/errors/index.js';
import { validateOpcodeArgs } from '../core/protocol/messages/validate.js';
import { versionLabelCharsMax } from '../core/protocol/version-label.js';
import { isVersion, parseReleaseTarget } from '../core/ota/release-target.js';
import { VERSION_LABEL_BYTES } from './generated/contract.js';
import { encodeLabel } from './payloads.js';

/**
 * One version rule (review h1, finding 6): what the operator-facing opcode schema admits is
 * exactly what the kernel can label, so a version is refused at create time, never on the device.
 */
test("the shared label length is the kernel contract's label field less its NUL", () => {
  assert.equal(versionLabelCharsMax, VERSION_LABEL_BYTES - 1);
});

test('the opcode schema admits a version exactly when the kernel encoder does', () => {
  const schemaAdmits = (version: string): boolean => {
    try {
      validateOpcodeArgs('EXEC_COMMIT_UPDATE', { version });
      return true;
    } catch (error) {
      assert.ok(SdcError.is(error, 'PROTO_SCHEMA_INVALID'));
      return false;
    }
  };
  const kernelEncodes = (version: string): boolean => {
    try {
      encodeLabel(version);
      return true;
    } catch (error) {
      assert.ok(SdcError.is(error, 'KERNEL_BAD_ARGUMENT'));
      return false;
    }
  };
  const alphabet = fc.constantFrom(...'aZ09._-+/ '.split(''));
  fc.assert(fc.property(fc.string({ unit: alphabet, minLength: 0, maxLength: 40 }), (version) => schemaAdmits(version) === kernelEncodes(version)), { seed: 6, numRuns: 2000 });
  for (const version of ['.', '..', '...', '1.0.0+b', 'x'.repeat(31), 'x'.repeat(32)]) assert.equal(schemaAdmits(version), kernelEncodes(version), version);
});

test('every OTA release version (major.minor.patch) is a kernel label, the longest included', () => {
  const longest = '999999999.999999999.999999999';
  assert.ok(isVersion(longest));
  assert.doesNotThrow(() => encodeLabel(longest));
  const custom = {
    sdc: { release_id: 'rel-1', version: longest, release_counter: 1, platforms: ['linux-x64'], min_agent_version: '0.1.0', reboot_required: false, health_check: { timeout_ms: 1000, probes: [] } },
  };
  assert.equal(parseReleaseTarget(custom).version, longest);
});
