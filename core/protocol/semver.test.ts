import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compareSemVer, parseSemVer, semVerIn } from './semver.js';

describe('semver', () => {
  it('orders versions as semver.org item 11 does', () => {
    const ordered = ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.2.0', '1.10.0', '2.0.0'];
    for (let index = 1; index < ordered.length; index += 1) {
      assert.ok(compareSemVer(parseSemVer(ordered[index - 1]!)!, parseSemVer(ordered[index]!)!) < 0, `${ordered[index - 1]} < ${ordered[index]}`);
    }
  });

  it('parses exact versions only, and finds the version at the end of an agent string', () => {
    for (const bad of ['1.2', 'v1.2.3', '01.2.3', '1.2.3-', '1.2.3 ', '']) assert.equal(parseSemVer(bad), undefined, bad);
    assert.deepEqual(semVerIn('sdc-agent/0.1.0'), { major: 0, minor: 1, patch: 0, prerelease: [] });
    assert.deepEqual(semVerIn('agent 2.0.0-rc.1+build.5'), { major: 2, minor: 0, patch: 0, prerelease: ['rc', '1'] });
    assert.equal(semVerIn('sdc-agent'), undefined);
    assert.equal(semVerIn('1.2.3.4'), undefined);
  });

  it('compare is antisymmetric and consistent with equality', () => {
    const version = fc.tuple(fc.nat(3), fc.nat(3), fc.nat(3), fc.constantFrom('', '-rc.1', '-rc.2', '-beta')).map(([a, b, c, pre]) => parseSemVer(`${a}.${b}.${c}${pre}`)!);
    // Summed, not negated: -Math.sign(0) is -0, which strict equality tells apart from 0, so the
    // negated form failed whenever fast-check drew two equal versions (about one run in three).
    const same = parseSemVer('1.2.3-rc.1')!;
    fc.assert(fc.property(version, version, (a, b) => {
      assert.equal(Math.sign(compareSemVer(a, b)) + Math.sign(compareSemVer(b, a)), 0);
      if (compareSemVer(a, b) === 0) assert.deepEqual(a, b);
    }), { examples: [[same, same]] });
  });
});
