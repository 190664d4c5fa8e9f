import { EventEmitter } from 'node:events';
import { SdcError } from '../../../core/errors/index.js';
import type { Scheduler } from '../../../core/ports/ports.js';
import { readBoundedBody, type BodySource } from '../bounded-body.js';
import type { TufFetcher } from '../http-fetcher.js';
import type { TestTufRepository } from './tuf-repository.js';

/**
 * A TufFetcher over a TestTufRepository with no sockets: URLs under `baseUrl` are served by path,
 * and the body goes through the same readBoundedBody as the HTTP fetcher, on the scheduler the
 * test passes (virtual time), so byte and time limits are those of production. `bodies` lets a
 * test replace a path's body with a stream of its own (endless or slow).
 */
export const fakeRepositoryBaseUrl = 'http://repository.test/';

export class FakeBody extends EventEmitter implements BodySource {
  destroyed = false;
  destroy(): void {
    this.destroyed = true;
  }
  /** Emits data unless destroyed. */
  push(chunk: Uint8Array): void {
    if (!this.destroyed) this.emit('data', chunk);
  }
  end(): void {
    if (!this.destroyed) this.emit('end');
  }
}

export function repositoryFetcher(repo: TestTufRepository, scheduler: Scheduler,
  bodies: Map<string, () => FakeBody> = new Map()): TufFetcher {
  return {
    async fetch(url, limits, what) {
      if (!url.startsWith(fakeRepositoryBaseUrl)) {
        return { ok: false, error: new SdcError('TUF_DOWNLOAD_FAILED', `${what}: unknown host in ${url}`) };
      }
      const path = url.slice(fakeRepositoryBaseUrl.length);
      const custom = bodies.get(path);
      let body: FakeBody;
      if (custom !== undefined) {
        repo.requests.push(path);
        body = custom();
      } else {
        const served = repo.serve(path);
        if (served.status !== 200) {
          return { ok: false, status: served.status, error: new SdcError('TUF_DOWNLOAD_FAILED', `${what}: HTTP ${served.status}`) };
        }
        body = new FakeBody();
        const bytes = served.bytes ?? new Uint8Array(0);
        // After the reader has attached its listeners, as a socket would deliver.
        queueMicrotask(() => {
          body.push(bytes);
          body.end();
        });
      }
      try {
        return { ok: true, bytes: await readBoundedBody(body, limits, scheduler, what) };
      } catch (error) {
        return { ok: false, error: error as SdcError };
      }
    },
  };
}
