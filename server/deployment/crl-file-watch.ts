import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Scheduler, TimerHandle } from '../../core/ports/ports.js';
import { readVerifiedCrl } from '../../trust/crl.js';
import { parseCertificate } from '../../trust/x509-provider.js';

/** How often the gateway reads the CRL file again; the kv revoked keys carry a revocation sooner. */
export const crlReloadIntervalMsDefault = 60_000;

/**
 * The CRL file (written by the control plane from SQL) as a set of revoked serials for the
 * gateway's revocation check, so a revocation holds even when the key/value store lost its keys.
 * Read at start and every `reloadIntervalMs`; a missing file is an empty set (a gateway on another
 * host may not have it); a file that does not verify against our intermediate is ignored and the
 * last good set kept, and so is a CRL whose number is below the last one taken (an older CRL our
 * CA really signed, put back in the file, would otherwise take back the revocations made since;
 * review h16). The number is remembered for the process's life only.
 */
export class CrlFileWatch {
  #serials: ReadonlySet<string> = new Set();
  #crlNumber: bigint | null = null;
  #timer: TimerHandle | undefined;
  #running = false;

  constructor(private readonly options: { path: string; intermediateCaPem: string; scheduler: Scheduler; logger: Logger; reloadIntervalMs?: number }) {}

  /** The serials of the last CRL read and verified. */
  serials(): ReadonlySet<string> {
    return this.#serials;
  }

  async start(): Promise<void> {
    this.#running = true;
    await this.reload();
    this.#schedule();
  }

  stop(): void {
    this.#running = false;
    if (this.#timer !== undefined) this.options.scheduler.cancel(this.#timer);
    this.#timer = undefined;
  }

  async reload(): Promise<void> {
    const { path, logger } = this.options;
    let pem: string;
    try {
      pem = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') logger.warn({ err: error, path }, 'CRL file unreadable; keeping the last one');
      return;
    }
    try {
      const crl = await readVerifiedCrl({ pem, issuer: parseCertificate(this.options.intermediateCaPem) });
      if (this.#crlNumber !== null && (crl.crlNumber === null || crl.crlNumber < this.#crlNumber)) {
        logger.error({ code: 'TRUST_CRL_INVALID', path, crlNumber: crl.crlNumber?.toString() ?? null, lastCrlNumber: this.#crlNumber.toString() },
          'CRL file refused: older than the CRL already taken; keeping the last one');
        return;
      }
      this.#serials = crl.serials;
      this.#crlNumber = crl.crlNumber;
    } catch (error) {
      logger.error({ err: error, path }, 'CRL file refused; keeping the last one');
    }
  }

  #schedule(): void {
    if (!this.#running) return;
    this.#timer = this.options.scheduler.schedule(this.options.reloadIntervalMs ?? crlReloadIntervalMsDefault, () => {
      void this.reload().finally(() => this.#schedule());
    });
  }
}
