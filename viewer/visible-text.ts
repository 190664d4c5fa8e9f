/**
 * Peer-supplied text (a requester's name or reason, an approver's name, a device id, a command's
 * arguments) as the approval panels show it: every character that would hide, erase or reorder
 * text on screen written as a visible \u escape. lit escapes HTML, not these: a right-to-left
 * override (U+202E) in a reason reverses the words after it, U+2066..U+2069 isolate and reorder,
 * a CR or ESC is dropped or drawn as nothing. The set is the one the CLI's prompts escape
 * (cli/commands/approvals.ts, shownText; review h13). Display only: what is signed and hashed is
 * computed from the raw data (viewer/approval-signing.ts). Pure, tested in Node.
 */

/** C0 controls, DEL, C1 controls, the Arabic letter mark, LRM/RLM, the line and paragraph separators, bidi embeddings, overrides and isolates. */
const unshownCharacters = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;

function escaped(c: string): string {
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
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
