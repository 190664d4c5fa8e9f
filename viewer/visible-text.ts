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
 * Controls (C0, DEL, C1), every Unicode default-ignorable code point (drawn as nothing: the soft
 * hyphen, the combining grapheme joiner, the zero-width characters, the word joiner and invisible
 * operators, the deprecated format characters, the BOM, the Hangul fillers, the variation
 * selectors, the tag characters and the rest of the set), the bidi controls (LRM/RLM, the Arabic
 * letter mark, embeddings, overrides and isolates), the line and paragraph separators and the
 * interlinear annotation characters. By Unicode property rather than a list of ranges: a list
 * missed the Hangul fillers and the variation selectors (review h9), so `rack-1` and `rack-1`
 * followed by U+FE0F looked the same. An emoji's variation selector is shown escaped too: labels
 * and reasons are told apart before they are pretty.
 */
export const unshownCharacters = /[\p{Cc}\p{Default_Ignorable_Code_Point}\p{Bidi_Control}\p{Zl}\p{Zp}\ufff9-\ufffb]/gu;

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
