import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RolloutApprovalSubject } from '../core/ota/rollout-approval.js';
import { rolloutDecisionText, rolloutSubjectText } from './rollout-approval.js';
import { resumeOutcomeText, type ResumeRequestView } from './rollout-resume.js';
import { visibleJson, visibleText } from './visible-text.js';
import { artifactRow, type ArtifactRecord } from './artifacts.js';
import { cellText } from './format.js';
import { noticeFor } from './notify.js';
import { verdictOf } from './policy-verdict.js';
import { policyRefusalText } from './rollout-refusal.js';

describe('peer-supplied text in the approval panels (viewer/visible-text.ts)', () => {
  it('shows a right-to-left override and an ESC as \\u escapes, leaves plain text as it is', () => {
    assert.equal(visibleText('ro-1 by ann: change window'), 'ro-1 by ann: change window');
    assert.equal(visibleText('fix \u202Eyltraeuq\u202C \u001b[2Know'), 'fix \\u202eyltraeuq\\u202c \\u001b[2Know');
    assert.equal(visibleText('a\rb\nc\u0000\u007f\u009b\u061c\u200e\u200f\u2028\u2029'), 'a\\u000db\\u000ac\\u0000\\u007f\\u009b\\u061c\\u200e\\u200f\\u2028\\u2029');
    for (const c of ['\u202a', '\u202b', '\u202d', '\u2066', '\u2067', '\u2068', '\u2069']) assert.equal(visibleText(c), `\\u${c.charCodeAt(0).toString(16)}`);
    // Six typed characters cannot pose as an escaped override (or as the absence of one).
    assert.equal(visibleText('\\u202e'), '\\\\u202e');
    assert.equal(visibleText(4096), '4096');
  });

  it('shows command arguments as JSON with the characters JSON leaves raw escaped too', () => {
    assert.equal(visibleJson({ path: '/etc/\u202Efdp.exe', n: 1 }), '{"path":"/etc/\\u202efdp.exe","n":1}');
    assert.equal(visibleJson({ s: 'a\u001bb\\' }), '{"s":"a\\u001bb\\\\"}');
  });

  it('escapes them in what the rollout panels say: the subject, a decision\'s reason, an outcome', () => {
    const subject = {
      kind: 'ota_rollout', id: 'ro-1', release_id: 'rel-2', platform: 'linux-x64', requested_by: 'mallory\u202E',
      target: { path: 'fw.bin', length: 4_096, sha256: 'a'.repeat(64), sha512: 'b'.repeat(128), release_counter: 2, version: '2.0.0\u001b[8m' },
      waves: [{ devices: ['d1'], success_threshold: { succeeded_min: 1, succeeded_percent_min: 100, soak_ms: 0 }, error_threshold: { executed_min: 1, failed_percent_max: 0 } }],
    } as unknown as RolloutApprovalSubject;
    const text = rolloutSubjectText(subject);
    assert.match(text, /release rel-2 2\.0\.0\\u001b\[8m \(fw\.bin, 4096 bytes/);
    assert.match(text, /asked by mallory\\u202e$/);
    assert.doesNotMatch(text, /[\u001b\u202e]/);
    const at = Date.UTC(2026, 11, 6, 0, 30, 0);
    assert.equal(rolloutDecisionText({ approver: 'cy\u2067', decision: 'reject', role: 'admin', kid: 'k3', at_ms: at, expires_at_ms: at, reason: 'freeze \u202Eesaeler\u202C\r' }, at),
      'reject by cy\\u2067 (admin) at 2026-12-06 00:30:00Z: freeze \\u202eesaeler\\u202c\\u000d');
    const request = { outcome: { state: 'resumed', at_ms: at, by: 'ann', approvers: ['ann', 'b\u202Eob'] } } as unknown as ResumeRequestView;
    assert.equal(resumeOutcomeText(request), 'resumed at 2026-12-06 00:30:00Z with the approvals of ann, b\\u202eob');
  });

  it('shows zero-width and other invisible format characters as escapes, so two ids that look alike do not show alike', () => {
    assert.equal(visibleText('dev\u200b-1'), 'dev\\u200b-1');
    assert.equal(visibleText('dev-1\ufeff\u2060\u00ad\u180e\u034f\u206a\ufff9'), 'dev-1\\ufeff\\u2060\\u00ad\\u180e\\u034f\\u206a\\ufff9');
    // Tag characters (U+E0000-U+E007F) draw as nothing: escaped as their surrogate pair, as JSON writes one.
    assert.equal(visibleText('dev-1\u{e0041}'), 'dev-1\\udb40\\udc41');
    assert.equal(visibleJson({ id: 'dev\u200d-1' }), '{"id":"dev\\u200d-1"}');
  });

  it('shows every default-ignorable code point escaped: Hangul fillers, variation selectors and the rest draw as nothing (review h9)', () => {
    assert.equal(visibleText('rack-1\ufe0f'), 'rack-1\\ufe0f');
    assert.equal(visibleText('a\u115f\u1160\u3164\uffa0\u17b4\u180b\ufe00'), 'a\\u115f\\u1160\\u3164\\uffa0\\u17b4\\u180b\\ufe00');
    assert.equal(visibleText('b\u{e0100}\u{1bca0}\u{1d173}'), 'b\\udb40\\udd00\\ud82f\\udca0\\ud834\\udd73');
    // Every default-ignorable code point, whatever Unicode version the engine has, and no visible letter.
    const ignorable = /\p{Default_Ignorable_Code_Point}/u;
    for (let code = 0; code <= 0x10ffff; code++) {
      if (code >= 0xd800 && code <= 0xdfff) continue;
      const character = String.fromCodePoint(code);
      if (ignorable.test(character)) assert.notEqual(visibleText(character), character, `U+${code.toString(16)}`);
    }
    assert.equal(visibleText('rack-1 é 中 ✓'), 'rack-1 é 中 ✓');
  });

  it('escapes them in what the other views say from pure code: notices, cells, policy verdicts and refusals, artifact rows', () => {
    const alert = noticeFor({ type: 'alert', alert_id: 'a1', device_id: 'dev\u200b-1', severity: 'warning', kind: 'tamper\u202e', message: 'lid \u202eopen\r', at_ms: 0 })!;
    assert.equal(alert.title, 'Alert: tamper\\u202e on dev\\u200b-1');
    assert.equal(alert.body, 'lid \\u202eopen\\u000d');
    const command = noticeFor({ type: 'command', command_id: 'c\u2066', device_id: 'd\u001b[2K', state: 'failed', at_ms: 0 })!;
    assert.equal(command.body, 'c\\u2066 on d\\u001b[2K');
    assert.equal(cellText('init\u202e'), 'init\\u202e');
    assert.equal(cellText({ name: 'x\u200b' }), '{"name":"x\\u200b"}');
    assert.equal(cellText(7), '7');
    assert.equal(verdictOf({ policy_revision: 1, decision: 'deny', reason: 'no rule\u202e', device_refusal: { code: 'X', message: 'device \u001b[8mgone' } }).text, 'refused before the policy: device \\u001b[8mgone');
    assert.equal(verdictOf({ policy_revision: 1, decision: 'deny', reason: 'quiet\u202e', rule_id: 'r\u200b' }).text, 'denied: quiet\\u202e (rule r\\u200b)');
    assert.match(policyRefusalText({ code: 'C', reason: 'night\u2067', opcode: 'OP', rule_id: 'n\u200b', revision: 2 }), /^refused by the command policy: night\\u2067 \(rule n\\u200b, OP, policy revision 2\)/);
    const row = artifactRow({ id: 'c_1', device_id: 'lab-01', kind: 'screenshot', state: 'queued', created_by: 'ol\u202ega', created_at_ms: 0, sha256: null } as unknown as ArtifactRecord);
    assert.equal(row.created, '1970-01-01 00:00:00Z by ol\\u202ega');
  });
});
