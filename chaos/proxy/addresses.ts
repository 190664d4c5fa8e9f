import { isIP, type AddressInfo, type Server } from 'node:net';
import { SdcError } from '../../core/errors/index.js';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** A DNS name (RFC 1123 labels) or an IPv4 address; IPv6 comes in brackets. */
const hostPattern = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const bracketed = /^\[([^\]]+)\]:(\d{1,5})$/;
const plain = /^([^:\[\]]+):(\d{1,5})$/;

export function badRequestBody(message: string, details: Record<string, string | number> = {}): SdcError {
  return new SdcError('CHAOS_BAD_REQUEST_BODY', `bad request body: ${message}`, details);
}

/**
 * Parses `host:port` (`[v6]:port` for IPv6). `portMin` is 0 for a listen address (0 picks a free
 * port) and 1 for an upstream. An empty host (Toxiproxy's `:8474`, every interface) is refused:
 * say `0.0.0.0` or `[::]` when every interface is meant.
 */
export function parseHostPort(text: string, field: string, portMin: 0 | 1): HostPort {
  const match = bracketed.exec(text) ?? plain.exec(text);
  const host = match?.[1] ?? '';
  const port = Number(match?.[2]);
  const hostOk = text.startsWith('[') ? isIP(host) === 6 : hostPattern.test(host);
  if (!match || !hostOk || !Number.isInteger(port) || port < portMin || port > 65_535) {
    throw badRequestBody(`${field} must be host:port with a port from ${portMin} to 65535 ([address]:port for IPv6)`, { field });
  }
  return { host, port };
}

/** How Go prints an address (and so Toxiproxy's `listen`): IPv6 in brackets. */
export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Go's words for the usual listen failures, so a client sees what Toxiproxy would say. */
const listenErrorWords: Readonly<Record<string, string>> = {
  EADDRINUSE: 'bind: address already in use',
  EADDRNOTAVAIL: 'bind: cannot assign requested address',
  EACCES: 'bind: permission denied',
  ENOTFOUND: 'no such host',
  EAI_AGAIN: 'temporary failure in name resolution',
};

export function listenError(address: string, error: NodeJS.ErrnoException): SdcError {
  const words = listenErrorWords[error.code ?? ''] ?? error.message;
  return new SdcError('CHAOS_LISTEN_FAILED', `listen tcp ${address}: ${words}`, { listen: address, errno: error.code ?? 'unknown' });
}

/** Listens on host:port alone (no shared port); a failure is CHAOS_LISTEN_FAILED in Go's words. */
export function listenExclusive(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const refuse = (error: NodeJS.ErrnoException) => reject(listenError(formatHostPort(host, port), error));
    server.once('error', refuse);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', refuse);
      resolve(server.address() as AddressInfo);
    });
  });
}
