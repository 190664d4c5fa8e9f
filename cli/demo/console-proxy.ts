import { createHash, webcrypto } from 'node:crypto';
import { request as httpsRequest, createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { SdcError } from '../../core/errors/index.js';
import { toPem } from '../../trust/pem.js';
import { x509 } from '../../trust/x509-provider.js';

/**
 * A TLS front for the operator console in a browser. Our CA and every certificate it issues are
 * Ed25519, which no mainstream browser accepts in TLS (Chromium answers
 * ERR_SSL_VERSION_OR_CIPHER_MISMATCH), so a browser cannot reach `sdc serve` directly. This
 * proxy listens on loopback with a throwaway ECDSA P-256 certificate (self-signed, made in
 * memory at start, never written) and forwards every request, the /v1/live stream included, to
 * the API over TLS that trusts only our root CA. The browser still sees one origin for the page
 * and the API. A deployment puts its own reverse proxy with a browser-trusted certificate there
 * instead (docs/viewer.md).
 */
export interface ConsoleProxy {
  readonly url: string;
  /** SHA-256 of the certificate's DER, hex with colons: what the browser's warning page shows, to compare. */
  readonly certificateSha256: string;
  close(): Promise<void>;
}

/** Requests forwarded at once; more wait in the kernel's accept queue (a console makes a handful). */
const proxyLimits = Object.freeze({ socketsMax: 64, validityMs: 7 * 86_400_000 });

async function selfSignedP256(hostnames: readonly string[]): Promise<{ certPem: string; keyPem: string; sha256: string }> {
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']) as CryptoKeyPair;
  const nowMs = Date.now();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString('hex').replace(/^[89a-f]/, '1'),
    name: 'CN=sdc console (throwaway)',
    notBefore: new Date(nowMs - 60_000),
    notAfter: new Date(nowMs + proxyLimits.validityMs),
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.ExtendedKeyUsageExtension(['1.3.6.1.5.5.7.3.1'], false),
      new x509.SubjectAlternativeNameExtension(hostnames.map((value) => (/^[\d.]+$|:/.test(value) ? { type: 'ip' as const, value } : { type: 'dns' as const, value })), false),
    ],
  }, webcrypto as unknown as Crypto);
  const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const sha256 = createHash('sha256').update(new Uint8Array(certificate.rawData)).digest('hex').toUpperCase().match(/../g)!.join(':');
  return { certPem: certificate.toString('pem'), keyPem: toPem('PRIVATE KEY', pkcs8), sha256 };
}

export async function startConsoleProxy(options: { apiUrl: string; rootCaPem: string; host?: string; port?: number }): Promise<ConsoleProxy> {
  const host = options.host ?? '127.0.0.1';
  const target = new URL(options.apiUrl);
  const tls = await selfSignedP256([host, 'localhost']);
  const server: Server = createServer({ key: tls.keyPem, cert: tls.certPem, minVersion: 'TLSv1.3' }, (incoming, outgoing) => {
    const upstream = httpsRequest({
      host: target.hostname, port: target.port, method: incoming.method, path: incoming.url,
      headers: { ...incoming.headers, host: target.host }, ca: options.rootCaPem, servername: target.hostname === '127.0.0.1' ? undefined : target.hostname,
    }, (answer) => {
      outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(outgoing);
    });
    upstream.on('error', () => {
      if (!outgoing.headersSent) outgoing.writeHead(502, { 'content-type': 'application/json; charset=utf-8' });
      outgoing.end(JSON.stringify({ error: { code: 'API_NOT_READY', message: 'the control plane behind the console proxy did not answer', trace_id: '' } }));
    });
    // A browser that goes away (a closed tab's SSE stream) ends the forwarded request too.
    outgoing.on('close', () => upstream.destroy());
    incoming.pipe(upstream);
  });
  server.maxConnections = proxyLimits.socketsMax;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(new SdcError('API_PORT_UNAVAILABLE', `the console proxy cannot listen on ${host}:${options.port ?? 0}: ${error.message}`)));
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    certificateSha256: tls.sha256,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
