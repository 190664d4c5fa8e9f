import type { Socket } from 'node:net';

/** A connected socket's remote address and port. */
export interface SocketPeer {
  readonly address: string;
  readonly port: number;
}

interface PeerNameHandle {
  getpeername?(out: { address?: string; port?: number }): number;
}

/**
 * The socket's peer, read from its handle into an object of our own, which the caller lets go.
 *
 * Why not `socket.remoteAddress`: Node keeps what that getter reads on the socket (`_peername`,
 * an object and an address string) for the socket's life. The gateway reads the peer of every
 * TCP socket and of the TLS socket over it, for its handshake admission only, and then holds
 * each socket for as long as its agent stays connected: two objects and two strings per session
 * that the bare `ws` server never makes (docs/benchmarks.md, 2026-12-04 night). A TLS socket's
 * handle answers for the TCP handle under it.
 *
 * Without a handle that answers (a socket already destroyed), Node's getters decide, as before.
 */
export function socketPeerOf(socket: Socket): SocketPeer {
  const handle = (socket as unknown as { _handle?: PeerNameHandle | null })._handle;
  const out: { address?: string; port?: number } = {};
  if (typeof handle?.getpeername === 'function' && handle.getpeername(out) === 0 && typeof out.address === 'string') {
    return { address: out.address, port: out.port ?? 0 };
  }
  return { address: socket.remoteAddress ?? 'unknown', port: socket.remotePort ?? 0 };
}
