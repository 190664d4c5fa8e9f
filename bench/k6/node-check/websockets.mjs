// k6/websockets in Node, as k6 behaves with the agent script's options: the client certificate is
// the tlsAuth entry whose domains name the URL's host, the address is options.hosts' mapping,
// and the server certificate is not checked (insecureSkipTLSVerify). Backed by the ws package.
import WS from 'ws';

export class WebSocket {
  constructor(url) {
    const shim = globalThis.__k6shim;
    const target = new URL(url);
    const auth = shim.options.tlsAuth.find((a) => a.domains.includes(target.hostname));
    const address = shim.options.hosts[target.hostname];
    if (auth === undefined || address === undefined) throw new Error(`no tlsAuth or hosts entry for ${target.hostname}`);
    this.onmessage = null;
    this.onclose = null;
    this.onerror = null;
    this.ws = new WS(`wss://${address}${target.pathname}`, { cert: auth.cert, key: auth.key, rejectUnauthorized: !shim.options.insecureSkipTLSVerify, minVersion: 'TLSv1.3' });
    this.ws.on('message', (data) => this.onmessage?.({ data: data.toString('utf8') }));
    this.ws.on('close', () => { shim.closed += 1; this.onclose?.(); });
    this.ws.on('error', (error) => { shim.errors.push(String(error)); this.onerror?.({ error: String(error) }); });
  }
  send(text) { this.ws.send(text); }
  close() { this.ws.close(); }
}
