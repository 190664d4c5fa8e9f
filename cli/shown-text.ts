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
