import { html, nothing } from 'lit';
import { ApiClient, type Session } from '../api.js';
import { LiveStream, type LiveEvent, type LiveStatus } from '../live.js';
import { parseRoute, type Route } from '../router.js';
import { LightElement } from './light-element.js';
import './sdc-login.js';
import './sdc-fleet.js';
import './sdc-device.js';
import './sdc-composer.js';
import './sdc-command.js';
import './sdc-audit.js';
import './sdc-research.js';

/** Live events fan out to the views through this target, as `live` CustomEvents; views subscribe while connected. */
export type LiveBus = EventTarget;

/**
 * The shell: the login gate, the navigation, the live stream's status and the current view.
 * It owns the API client (the token in memory) and the one SSE stream every view listens to.
 */
export class SdcApp extends LightElement {
  static override properties = {
    session: { state: true }, route: { state: true }, liveStatus: { state: true }, notice: { state: true },
  };

  declare session: Session | undefined;
  declare route: Route;
  declare liveStatus: LiveStatus;
  declare notice: string | undefined;
  readonly api: ApiClient;
  readonly liveBus: LiveBus = new EventTarget();
  #live: LiveStream | undefined;
  #expiryTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #onHash = () => { this.route = parseRoute(location.hash); };

  constructor() {
    super();
    this.session = undefined;
    this.route = parseRoute(location.hash);
    this.liveStatus = 'closed';
    this.notice = undefined;
    this.api = new ApiClient({ onSessionEnd: (reason) => this.#endSession(`Your session ended (${reason}); log in again.`) });
  }

  override connectedCallback(): void {
    super.connectedCallback();
    addEventListener('hashchange', this.#onHash);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    removeEventListener('hashchange', this.#onHash);
    this.#live?.stop();
  }

  #loggedIn(session: Session): void {
    this.session = session;
    this.notice = undefined;
    clearTimeout(this.#expiryTimer);
    // Re-ask at expiry: the API would refuse the token from then on anyway.
    this.#expiryTimer = setTimeout(() => this.#endSession('Your session expired; log in again.'), Math.max(0, session.expiresAtMs - Date.now()));
    this.#live = new LiveStream({
      token: () => this.api.session?.token,
      onEvent: (event: LiveEvent) => this.liveBus.dispatchEvent(new CustomEvent<LiveEvent>('live', { detail: event })),
      onStatus: (status) => {
        this.liveStatus = status;
        if (status === 'open') this.liveBus.dispatchEvent(new Event('resync'));
      },
      onTokenExpired: () => this.#endSession('Your session expired; log in again.'),
    });
    this.#live.start();
  }

  #endSession(notice: string | undefined): void {
    clearTimeout(this.#expiryTimer);
    this.#live?.stop();
    this.#live = undefined;
    this.api.logout();
    this.session = undefined;
    this.notice = notice;
  }

  override render() {
    if (this.session === undefined) {
      return html`<main class="login-page"><sdc-login .api=${this.api} .notice=${this.notice} @logged-in=${(e: CustomEvent<Session>) => this.#loggedIn(e.detail)}></sdc-login></main>`;
    }
    const current = this.route.view;
    const link = (view: Route['view'], href: string, label: string) =>
      html`<a href=${href} aria-current=${current === view ? 'page' : 'false'}>${label}</a>`;
    return html`
      <header class="bar">
        <span class="brand">Secure Device Control</span>
        <nav aria-label="Main">
          ${link('fleet', '#/fleet', 'Fleet')} ${link('compose', '#/compose', 'Send a command')} ${link('audit', '#/audit', 'Audit')} ${link('research', '#/research', 'Simulation runs')}
        </nav>
        <span class="live live-${this.liveStatus}" role="status" aria-live="polite" data-testid="live-status">live: ${this.liveStatus}</span>
        <span class="who">${this.session.name} (${this.session.role})</span>
        <button type="button" @click=${() => this.#endSession(undefined)}>Log out</button>
      </header>
      <main id="main">${this.#view()}</main>`;
  }

  #view() {
    const r = this.route;
    switch (r.view) {
      case 'fleet': return html`<sdc-fleet .api=${this.api} .liveBus=${this.liveBus}></sdc-fleet>`;
      case 'device': return html`<sdc-device .api=${this.api} .liveBus=${this.liveBus} .deviceId=${r.deviceId}></sdc-device>`;
      case 'compose': return html`<sdc-composer .api=${this.api} .deviceId=${r.deviceId}></sdc-composer>`;
      case 'command': return html`<sdc-command .api=${this.api} .liveBus=${this.liveBus} .commandId=${r.commandId}></sdc-command>`;
      case 'audit': return html`<sdc-audit .api=${this.api}></sdc-audit>`;
      case 'research': return html`<sdc-research></sdc-research>`;
      default: return nothing;
    }
  }
}

customElements.define('sdc-app', SdcApp);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-app': SdcApp;
  }
}
