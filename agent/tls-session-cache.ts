/**
 * The agent's TLS session for resumption (issue 15, the reconnect storm): the latest TLS 1.3
 * session ticket its gateway sent, offered at the next connection. Gateways of one deployment
 * share their ticket keys (server/gateway/tls-session-tickets.ts), so after a gateway dies the
 * agent resumes on another one and both sides skip the certificate chain work of a full
 * handshake. The gateway still reads the certificate the ticket carries and checks it, and AUTH
 * still signs a fresh challenge, so a ticket never stands in for the device key.
 *
 * One ticket, in memory only: it holds the session's resumption secret, so it is never written
 * to disk (a restarted agent does a full handshake). It is offered only to the host it came from
 * (gateways behind one name; a resumed session is not checked against a new host name again) and
 * only with the client certificate it was made with (a renewed certificate starts afresh).
 */
export class TlsSessionCache {
  #entry: { readonly host: string; readonly certPem: string; readonly ticket: Buffer } | undefined;

  /** The ticket to offer when connecting to `url` with `certPem`, if one fits. */
  offerFor(url: string, certPem: string): Buffer | undefined {
    const entry = this.#entry;
    if (entry === undefined || entry.certPem !== certPem || entry.host !== hostOf(url)) return undefined;
    return entry.ticket;
  }

  /** A ticket the gateway at `url` sent (TLS 1.3 sends them after the handshake; the latest wins). */
  remember(url: string, certPem: string, ticket: Buffer): void {
    this.#entry = { host: hostOf(url), certPem, ticket };
  }

  forget(): void {
    this.#entry = undefined;
  }
}

/** The name the client checks the server certificate against: the URL's host, without the port. */
function hostOf(url: string): string {
  return new URL(url).hostname;
}
