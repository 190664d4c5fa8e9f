import { html, nothing } from 'lit';
import type { ApiClient, ApiError } from '../api.js';
import { verifyAuditInBrowser, type BrowserAuditReport } from '../audit-verify.js';
import { formatTime } from '../format.js';
import { asApiError, errorLine } from './error-line.js';
import { LightElement } from './light-element.js';
import { visibleText as v } from '../visible-text.js';

interface AuditRow { seq: number; ts: number; kind: string; actor: string; subject: string; payload: Record<string, unknown>; prev_hash: string; hash: string }
interface AuditPage { items: AuditRow[]; next_from_seq: number | null }

/** Pages of 500; the browser check reads at most this many entries (50,000) and says so when the log is longer. */
export const auditViewLimits = Object.freeze({ pageSize: 500, verifyPagesMax: 100 });

/** The audit log by page, and "verify in this browser": the whole chain and every device signature, checked here. */
export class SdcAudit extends LightElement {
  static override properties = {
    api: { attribute: false }, page: { state: true }, fromSeq: { state: true }, error: { state: true }, report: { state: true }, verifying: { state: true }, truncated: { state: true },
  };

  declare api: ApiClient;
  declare page: AuditPage | undefined;
  declare fromSeq: number;
  declare error: ApiError | undefined;
  declare report: BrowserAuditReport | undefined;
  declare verifying: boolean;
  declare truncated: boolean;

  constructor() {
    super();
    this.page = undefined;
    this.fromSeq = 1;
    this.error = undefined;
    this.report = undefined;
    this.verifying = false;
    this.truncated = false;
  }

  protected override willUpdate(changed: Map<string, unknown>): void {
    if (changed.has('fromSeq')) void this.load();
  }

  async load(): Promise<void> {
    try {
      this.page = await this.api.get<AuditPage>(`/v1/audit?from_seq=${this.fromSeq}&limit=50`);
      this.error = undefined;
    } catch (error) {
      this.error = asApiError(error);
    }
  }

  async verify(): Promise<void> {
    this.verifying = true;
    this.report = undefined;
    this.error = undefined;
    try {
      const entries: unknown[] = [];
      let from: number | null = 1;
      let pages = 0;
      while (from !== null && pages < auditViewLimits.verifyPagesMax) {
        const page: AuditPage = await this.api.get(`/v1/audit?from_seq=${from}&limit=${auditViewLimits.pageSize}`);
        entries.push(...page.items);
        from = page.next_from_seq;
        pages += 1;
      }
      this.truncated = from !== null;
      this.report = await verifyAuditInBrowser(entries);
    } catch (error) {
      this.error = asApiError(error);
    } finally {
      this.verifying = false;
    }
  }

  override render() {
    return html`
      <section aria-labelledby="audit-title">
        <h1 id="audit-title">Audit log</h1>
        <p><button type="button" @click=${() => this.verify()} ?disabled=${this.verifying}>${this.verifying ? 'Verifying…' : 'Verify in this browser'}</button>
          <small>Recomputes every entry's SHA-256 link and checks each device-signed frame's Ed25519 signature here, without asking the server.</small></p>
        ${this.#report()}
        ${errorLine(this.error)}
        ${this.#table()}
      </section>`;
  }

  #report() {
    const r = this.report;
    if (r === undefined) return nothing;
    const ok = r.firstBrokenSeq === undefined;
    return html`
      <div class="verdict ${ok ? 'ok' : 'broken'}" role="status" data-testid="audit-verdict" data-ok=${String(ok)}>
        ${ok && r.chain.ok
          ? html`<strong>Chain verified</strong> in this browser: ${r.chain.count} entries, head ${r.chain.headSeq} <code>${v(r.chain.headHash.slice(0, 16))}…</code>; ${r.signaturesChecked} device signatures valid${r.macFramesSkipped > 0 ? `, ${r.macFramesSkipped} session-MAC frames not checkable here` : ''}.`
          : html`<strong>Broken at entry <span data-testid="first-broken-seq">${r.firstBrokenSeq}</span></strong>:
              ${r.chain.ok ? nothing : html`chain ${v(r.chain.reason)}: ${v(r.chain.detail)}`}
              ${r.signatureBreak ? html`signature <code>${v(r.signatureBreak.code)}</code>: ${v(r.signatureBreak.detail)}` : nothing}
              <button type="button" @click=${() => { this.fromSeq = Math.max(1, (r.firstBrokenSeq ?? 1) - 2); }}>Show it</button>`}
        ${this.truncated ? html`<p class="notice">Only the first ${r.entries} entries were checked.</p>` : nothing}
      </div>`;
  }

  #table() {
    const p = this.page;
    if (p === undefined) return html`<p>Loading…</p>`;
    const broken = this.report?.firstBrokenSeq;
    return html`
      <table class="audit">
        <caption class="visually-hidden">Audit entries from ${this.fromSeq}</caption>
        <thead><tr><th scope="col">Seq</th><th scope="col">Time</th><th scope="col">Kind</th><th scope="col">Actor</th><th scope="col">Subject</th><th scope="col">Hash</th></tr></thead>
        <tbody>${p.items.map((e) => html`<tr class=${e.seq === broken ? 'broken' : ''}>
          <th scope="row">${v(e.seq)}</th><td>${formatTime(e.ts)}</td><td>${v(e.kind)}</td><td>${v(e.actor)}</td><td>${v(e.subject)}</td><td><code>${v(e.hash.slice(0, 12))}…</code></td></tr>`)}</tbody>
      </table>
      <nav class="pager" aria-label="Audit pages">
        <button type="button" ?disabled=${this.fromSeq <= 1} @click=${() => { this.fromSeq = Math.max(1, this.fromSeq - 50); }}>Previous</button>
        <button type="button" ?disabled=${p.next_from_seq === null} @click=${() => { if (p.next_from_seq !== null) this.fromSeq = p.next_from_seq; }}>Next</button>
      </nav>`;
  }
}

customElements.define('sdc-audit', SdcAudit);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-audit': SdcAudit;
  }
}
