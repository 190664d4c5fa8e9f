/**
 * Text a peer controls (the server's answer: device ids and labels, a device's error message, a
 * requester's reason, an alert's text, an audit entry's actor) as the CLI prints it for a person.
 * A terminal acts on what it is sent: a CR or ESC[2K erases the line, ESC[8m hides what follows,
 * a C1 control can start an escape sequence, a right-to-left override (U+202E) or an isolate
 * (U+2066-U+2069) reorders the text after it, and a zero-width character makes two different ids
 * look alike. Every such character is written as a visible \u escape instead (review h13; first
 * for the approval prompts, cli/commands/approvals.ts). The set is the console's
 * (viewer/visible-text.ts; viewer/visible-text.test.ts checks the two agree). `--json` output
 * stays raw: a program reading it gets the server's values as they are.
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
 * The unshown characters of `text` written as \u escapes, nothing else changed: for a sentence the
 * CLI wrote around a peer's words (a refusal the server sent), where doubling backslashes would
 * change the CLI's own text. A shown escape cannot hide anything; a value to be told apart from
 * another goes through shownText, which also quotes and doubles backslashes.
 */
export function escapedUnshown(text: string): string {
  return text.replace(unshownCharacters, escaped);
}

/** JSON text with the characters JSON leaves as they are (the rest of unshownCharacters) written as \u escapes too. */
export function escapedJsonText(jsonText: string): string {
  return escapedUnshown(jsonText);
}

/** A plain token (an id, a version, a name): nothing in it can move the cursor, hide text or pose as the CLI's own words. */
const plainToken = /^[A-Za-z0-9._@:/+-]{1,256}$/;

/**
 * A string from the server or a requester, as the CLI prints it: a plain token as it is, anything
 * else as a JSON string with every unshown character escaped, so a value cannot erase, overwrite
 * or reorder what is printed beside it, nor pass for another value.
 */
export function shownText(value: string): string {
  return plainToken.test(value) ? value : quotedText(value);
}

/** A value from the server that may be absent or not a string (a figure, a null label): '' when absent, else shownText of its String() form. */
export function shownValue(value: unknown): string {
  return value === null || value === undefined ? '' : shownText(typeof value === 'string' ? value : String(value));
}

/** Free text (a reason, a message): always quoted, escaped as shownText escapes it. */
export function quotedText(value: string): string {
  return escapedJsonText(JSON.stringify(value));
}
