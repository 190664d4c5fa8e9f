import { BlockList, isIP, type AddressInfo, type Server } from 'node:net';
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

/** 127.0.0.0/8, ::1 and IPv4-mapped 127.0.0.0/8: the addresses only this host reaches. */
const loopbackAddresses = new BlockList();
loopbackAddresses.addSubnet('127.0.0.0', 8, 'ipv4');
loopbackAddresses.addAddress('::1', 'ipv6');
loopbackAddresses.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

/** A loopback address, or the name `localhost`; any other name is not resolved here, so it is not loopback. */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  const family = isIP(host);
  return family !== 0 && loopbackAddresses.check(host, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * A proxy listens on loopback unless its server was started to allow more (review h1, F7): the
 * API has no authentication (Toxiproxy's), so any local caller could otherwise open
 * `0.0.0.0:16379 -> 127.0.0.1:6379` and put a loopback-only store on the network.
 */
export function checkListenAllowed(listen: string, externalListenAllowed: boolean): void {
  if (externalListenAllowed) return;
  const { host } = parseHostPort(listen, 'listen', 0);
  if (isLoopbackHost(host)) return;
  throw new SdcError('CHAOS_LISTEN_NOT_LOOPBACK', `listen ${listen}: not a loopback address (start the proxy with --allow-external-listen to listen on others)`, { listen });
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
