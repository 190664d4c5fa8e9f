import { html, nothing } from 'lit';
import { ApiError, type ApiClient, type Session } from '../api.js';
import { LightElement } from './light-element.js';
import { visibleText as v } from '../visible-text.js';

/** Name and password against POST /v1/auth/login; fires `logged-in` with the session. The password is never kept. */
export class SdcLogin extends LightElement {
  static override properties = { api: { attribute: false }, notice: { attribute: false }, presetName: { attribute: false }, error: { state: true }, busy: { state: true } };

  declare api: ApiClient;
  declare notice: string | undefined;
  /** At a re-ask: the name of the session that expired, filled in, and the focus on the password. */
  declare presetName: string | undefined;
  declare error: ApiError | undefined;
  declare busy: boolean;

  constructor() {
    super();
    this.notice = undefined;
    this.presetName = undefined;
    this.error = undefined;
    this.busy = false;
  }

  async #submit(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    const data = new FormData(form);
    this.busy = true;
    this.error = undefined;
    try {
      const session = await this.api.login(String(data.get('name') ?? ''), String(data.get('password') ?? ''), Date.now());
      form.querySelector<HTMLInputElement>('input[name="password"]')!.value = '';
      this.dispatchEvent(new CustomEvent<Session>('logged-in', { detail: session, bubbles: true }));
    } catch (error) {
      this.error = error instanceof ApiError ? error : new ApiError('VIEWER_INTERNAL', String(error), 0);
    } finally {
      this.busy = false;
    }
  }

  protected override firstUpdated(): void {
    // `autofocus` acts at page load only; a re-ask dialog appears later, so focus the password here.
    if (this.presetName !== undefined) this.querySelector<HTMLInputElement>('input[name="password"]')?.focus();
  }

  override render() {
    return html`
      <form class="card login" @submit=${this.#submit} aria-labelledby="login-title">
        <h1 id="login-title">Secure Device Control</h1>
        ${this.notice ? html`<p class="notice" role="status">${v(this.notice)}</p>` : nothing}
        <label>Name <input name="name" autocomplete="username" required maxlength="128" .value=${this.presetName ?? ''} ?autofocus=${this.presetName === undefined}></label>
        <label>Password <input name="password" type="password" autocomplete="current-password" required maxlength="1024" ?autofocus=${this.presetName !== undefined}></label>
        <button type="submit" ?disabled=${this.busy}>${this.busy ? 'Logging in…' : 'Log in'}</button>
        ${this.error ? html`<p class="error" role="alert"><code>${v(this.error.code)}</code> ${v(this.error.message)}</p>` : nothing}
      </form>`;
  }
}

customElements.define('sdc-login', SdcLogin);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-login': SdcLogin;
  }
}
