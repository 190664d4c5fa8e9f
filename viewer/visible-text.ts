/**
 * Text a peer controls (a device's id, status, labels, messages and command results, an alert's
 * text, an audit entry's actor, another operator's reason, a server's error message) as the
 * console shows it: every character that would hide, erase or reorder text on screen written as a
 * visible \u escape. lit escapes HTML, not these: a right-to-left override (U+202E) in a reason
 * reverses the words after it, U+2066..U+2069 isolate and reorder, a CR or ESC is dropped or drawn
 * as nothing, and a zero-width space (U+200B) or a tag character (U+E0041) makes two different
 * device ids look the same. The set is the one the CLI escapes (cli/shown-text.ts, review h13;
 * visible-text.test.ts checks the two agree). Display only: what is signed and hashed is computed
 * from the raw data (viewer/approval-signing.ts), and links and attributes keep the raw value.
 * Pure, tested in Node.
 */

/**
 * C0 controls, DEL, C1 controls, the soft hyphen, the combining grapheme joiner, the Arabic letter
 * mark, the Mongolian vowel separator, the zero-width space, non-joiner and joiner, LRM/RLM, the
 * line and paragraph separators, the bidi embeddings and overrides, the word joiner and invisible
 * operators, the bidi isolates, the deprecated format characters, the zero-width no-break space
 * (BOM), the interlinear annotation characters and the tag characters (U+E0000-U+E007F).
 */
export const unshownCharacters = /[\u0000-\u001f\u007f-\u009f\u00ad\u034f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\u{e0000}-\u{e007f}]/gu;

/** A character as \u escapes of its UTF-16 units (a tag character as its surrogate pair, as JSON writes one). */
function escaped(character: string): string {
  let text = '';
  for (let i = 0; i < character.length; i++) text += `\\u${character.charCodeAt(i).toString(16).padStart(4, '0')}`;
  return text;
}

/**
 * The text with the unshown characters escaped; a backslash doubled, so a requester who types
 * the six characters "\u202e" cannot pass them off as an escaped override (or hide one). A value
 * that is not a string (a figure the server sends) is shown as its String() form, escaped alike.
 */
export function visibleText(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  return text.replace(/\\/g, '\\\\').replace(unshownCharacters, escaped);
}

/** A value as JSON (a command's arguments): JSON.stringify escapes C0 and backslashes; the rest of the set is escaped here. */
export function visibleJson(value: unknown): string {
  return (JSON.stringify(value) ?? 'undefined').replace(unshownCharacters, escaped);
}
