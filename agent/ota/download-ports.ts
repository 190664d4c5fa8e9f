/**
 * The update path's I/O as ports (issue 10): the same UpdateRunner and resumable downloader run
 * the real agent over HTTP and files (node-download-adapters.ts) and the simulator's devices on
 * virtual time in memory (memory-staging-store.ts, sim/ota/sim-fetch.ts). TUF metadata comes
 * through agent/tuf's TufFetcher and TufFileStore, which were ports already; the journal is
 * update-journal.ts's UpdateJournal; time is the Clock and Scheduler ports.
 */

/** One GET of an artifact URL: the status and headers, then the body chunk by chunk. */
export interface ArtifactResponse {
  readonly status: number;
  /** The ETag header as sent (weak or strong), if any. */
  readonly etag: string | undefined;
  readonly contentRange: string | undefined;
  /** The declared Content-Length, if any. */
  readonly contentLength: number | undefined;
  /**
   * The next chunk; undefined after the last chunk of a whole body. Rejects when the body was cut
   * (a plain Error) or destroyed (with the reason given), but only after every chunk received
   * before that was handed out.
   */
  next(): Promise<Uint8Array | undefined>;
  /** Stops the body: a pending and every later `next` rejects with `reason`. */
  destroy(reason?: Error): void;
}

export interface ArtifactFetcher {
  /**
   * Sends one GET with `headers` (lower-case names: range, if-range) and resolves with the
   * response's headers, or rejects when none came (an SdcError, or a plain Error for a broken
   * connection). When `signal` aborts, the request is abandoned and the promise rejects.
   */
  get(url: URL, headers: Readonly<Record<string, string>>, signal: AbortSignal): Promise<ArtifactResponse>;
}

/** A file being written at explicit positions (the resumable downloader continues a partial). */
export interface StagingWriter {
  write(chunk: Uint8Array, position: number): Promise<void>;
  /** Durable before the download's state says the bytes are there (a no-op in memory). */
  sync(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Where the agent stages downloads: the partial artifact, its small state file, and the verified
 * artifact the kernel's STAGE reads. Names are paths (the Node adapter's files; keys in memory).
 */
export interface StagingStore {
  /** The file's text; undefined when there is none. */
  readText(path: string): Promise<string | undefined>;
  writeText(path: string, text: string): Promise<void>;
  /** The file's length; 0 when there is none. */
  size(path: string): Promise<number>;
  /** Opens for writing, creating it; `truncate` empties it first. */
  open(path: string, options: { readonly truncate: boolean }): Promise<StagingWriter>;
  /** The file's bytes in order; undefined when there is none. */
  chunks(path: string): Promise<AsyncIterable<Uint8Array> | undefined>;
  rename(from: string, to: string): Promise<void>;
  /** Removes the file; nothing when there is none. */
  remove(path: string): Promise<void>;
  /** The folder a file will be written in exists (private to the agent). */
  ensureDirectory(path: string): Promise<void>;
}
