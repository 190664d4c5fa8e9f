import assert from 'node:assert/strict';
import { test } from 'node:test';
import { visibleText } from '../viewer/visible-text.js';
import { escapedUnshown, quotedText, shownText, shownValue } from './shown-text.js';

/** Every character the CLI must not print as it is: a C0/C1 control, a bidi control, a zero-width or other invisible format character. */
const hiddenOnes = ['\u0000', '\u0007', '\r', '\u001b', '\u007f', '\u0085', '\u009b', '\u00ad', '\u034f', '\u061c', '\u180e', '\u200b', '\u200c', '\u200d',
  '\u200e', '\u200f', '\u2028', '\u2029', '\u202a', '\u202e', '\u2060', '\u2064', '\u2066', '\u2069', '\u206f', '\ufeff', '\ufff9', '\u{e0001}', '\u{e0041}', '\u{e007f}'];

test('shownText: a plain token as it is; anything else quoted with every hidden character a visible escape', () => {
  assert.equal(shownText('dev-1'), 'dev-1');
  assert.equal(shownText('a b'), '"a b"');
  for (const c of hiddenOnes) {
    const shown = shownText(`dev${c}1`);
    assert.ok(shown.startsWith('"dev\\') && shown.endsWith('1"'), `U+${c.codePointAt(0)!.toString(16)} shows escaped: ${shown}`);
    assert.equal(JSON.parse(shown), `dev${c}1`, 'the escape is JSON: it reads back as the value');
  }
  // Two ids that look alike on screen do not print alike: a zero-width space or a tag character shows.
  assert.equal(shownText('dev\u200b-1'), '"dev\\u200b-1"');
  assert.equal(shownText('dev\u{e0041}-1'), '"dev\\udb40\\udc41-1"');
  // A backslash typed into a value cannot pose as an escape.
  assert.equal(shownText('\\u202e'), '"\\\\u202e"');
});

test('quotedText always quotes; shownValue shows absent values as nothing and figures as tokens', () => {
  assert.equal(quotedText('ok'), '"ok"');
  assert.equal(shownValue(null), '');
  assert.equal(shownValue(undefined), '');
  assert.equal(shownValue(3), '3');
  assert.equal(shownValue('x\u202ey'), '"x\\u202ey"');
});

test('escapedUnshown: the hidden characters escaped in a sentence, everything else as it is', () => {
  assert.equal(escapedUnshown('GET /v1/alerts/x refused: no alert a_\u202e\u001b[2K (\\d)'), 'GET /v1/alerts/x refused: no alert a_\\u202e\\u001b[2K (\\d)');
  for (const c of hiddenOnes) assert.doesNotMatch(escapedUnshown(`a${c}b`), /[^\x20-\x7e]/u, `U+${c.codePointAt(0)!.toString(16)}`);
});

test('the CLI escapes the very characters the console escapes (viewer/visible-text.ts): one set on both sides', () => {
  const differ: string[] = [];
  for (let code = 0; code <= 0x10ffff; code += code < 0x30000 || (code >= 0xe0000 && code < 0xe0100) ? 1 : 0x100) {
    if ((code >= 0xd800 && code <= 0xdfff) || code === 0x5c) continue; // lone surrogates; the backslash, which only the console doubles
    const c = String.fromCodePoint(code);
    if ((visibleText(c) !== c) !== (escapedUnshown(c) !== c)) differ.push(code.toString(16));
  }
  assert.deepEqual(differ, []);
});
