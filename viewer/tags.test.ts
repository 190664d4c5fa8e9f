import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiError } from './api.js';
import { roleAtLeast } from './roles.js';
import { parseTagsInput } from './tags.js';

describe('tags typed in the console', () => {
  it('splits on commas and spaces, lowercases and drops repeats and blanks', () => {
    assert.deepEqual(parseTagsInput(' Site:Lab, group:kiosks  site:lab,,\nfloor-2 '), ['site:lab', 'group:kiosks', 'floor-2']);
    assert.deepEqual(parseTagsInput('   '), []);
  });

  it('names a tag the API would refuse, and refuses more than 32', () => {
    for (const bad of ['-lead', 'a/b', 'x'.repeat(65), 'é']) {
      assert.throws(() => parseTagsInput(`ok ${bad}`), (error: unknown) => error instanceof ApiError && error.code === 'VIEWER_TAG_INVALID' && error.message.includes(bad.slice(0, 20)), bad);
    }
    assert.throws(() => parseTagsInput(Array.from({ length: 33 }, (_, i) => `t${i}`).join(' ')), (error: unknown) => error instanceof ApiError && /at most 32/.test(error.message));
    assert.equal(parseTagsInput(Array.from({ length: 32 }, (_, i) => `t${i}`).join(' ')).length, 32);
  });
});

describe('the role ladder the console hides actions by', () => {
  it('ranks viewer < operator < approver < admin', () => {
    assert.equal(roleAtLeast('operator', 'operator'), true);
    assert.equal(roleAtLeast('viewer', 'operator'), false);
    assert.equal(roleAtLeast('approver', 'operator'), true);
    assert.equal(roleAtLeast('operator', 'approver'), false);
    assert.equal(roleAtLeast('admin', 'approver'), true);
    assert.equal(roleAtLeast(undefined, 'viewer'), false);
  });
});
