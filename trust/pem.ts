const lineLength = 64;

/** RFC 7468 textual encoding; used where the x509 library's own label differs from OpenSSL's (CRLs). */
export function toPem(label: string, der: Uint8Array | ArrayBuffer): string {
  const base64 = Buffer.from(der instanceof ArrayBuffer ? new Uint8Array(der) : der).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < base64.length; i += lineLength) lines.push(base64.slice(i, i + lineLength));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
