// k6/encoding in Node: standard base64 in, ArrayBuffer out; 'rawurl' is base64url without padding.
export function b64decode(text) {
  const bytes = Buffer.from(text, 'base64');
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}
export function b64encode(input, encoding) {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : Buffer.from(input);
  return bytes.toString(encoding === 'rawurl' || encoding === 'url' ? 'base64url' : 'base64');
}
