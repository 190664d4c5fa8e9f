import { html, nothing } from 'lit';
import { ApiClient, type Session } from '../api.js';
import { LiveStream, type LiveEvent, type LiveStatus } from '../live.js';
import { noticeFor, withNotice, type Notice } from '../notify.js';
import { roleAtLeast } from '../roles.js';
import { parseRoute, type Route } from '../router.js';
import { LightElement } from './light-element.js';
import './sdc-login.js';
import './sdc-fleet.js';
import './sdc-device.js';
import './sdc-composer.js';
import './sdc-command.js';
import './sdc-audit.js';
import './sdc-research.js';
import './sdc-alerts.js';
import type { ApprovalSigner } from './sdc-approvals.js';
import './sdc-approvals.js';
import './sdc-dead-letters.js';
import './sdc-releases.js';
import './sdc-artifacts.js';
import './sdc-notices.js';
import { visibleText as v } from '../visible-text.js';

/** Live events fan out to the views through this target, as `live` CustomEvents; views subscribe while connected. */
export type LiveBus = EventTarget;

/**
 * The shell: the login gate, the navigation, the live stream's status and the current view.
 * It owns the API client (the token in memory) and the one SSE stream every view listens to.
 */
export class SdcApp extends LightElement {
  static override properties = {
    session: { state: true }, route: { state: true }, liveStatus: { state: true }, notice: { state: true }, reauth: { state: true },
    notices: { state: true }, notificationPermission: { state: true },
  };

  declare session: Session | undefined;
  declare route: Route;
  declare liveStatus: LiveStatus;
  declare notice: string | undefined;
  /**
   * Set when the token expired or was refused while a session was open: the page stays as it is
   * (the view, what was typed, the notices) under a dialog asking for the password again, and
   * carries on after it. The API has no refresh token, so re-asking is how a session continues.
   */
  declare reauth: string | undefined;
  declare notices: readonly Notice[];
  declare notificationPermission: NotificationPermission | 'unsupported';
  readonly api: ApiClient;
  readonly liveBus: LiveBus = new EventTarget();
  #live: LiveStream | undefined;
  /** The approver's signing key, in page memory only; forgotten at logout like the token. */
  #signer: ApprovalSigner | undefined;
  #expiryTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #onHash = () => { this.route = parseRoute(location.hash); };

  constructor() {
    super();
    this.session = undefined;
    this.route = parseRoute(location.hash);
    this.liveStatus = 'closed';
    this.notice = undefined;
    this.reauth = undefined;
    this.notices = [];
    this.notificationPermission = typeof Notification === 'undefined' ? 'unsupported' : Notification.permission;
    this.api = new ApiClient({ onSessionEnd: (reason) => this.#pauseSession(`Your session ended (${reason}); log in again to carry on.`) });
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
    // Someone else logging in at the re-ask starts afresh: nothing of the previous user's stays.
    if (this.reauth !== undefined && this.session !== undefined && session.name !== this.session.name) {
      this.#signer = undefined;
      this.notices = [];
      location.hash = '#/fleet';
    }
    this.reauth = undefined;
    this.session = session;
    this.notice = undefined;
    clearTimeout(this.#expiryTimer);
    // Re-ask at expiry: the API would refuse the token from then on anyway.
    this.#expiryTimer = setTimeout(() => this.#pauseSession('Your session expired; log in again to carry on.'), Math.max(0, session.expiresAtMs - Date.now()));
    this.#live = new LiveStream({
      // A one-time ticket per connect, asked for with the token in the header (viewer/live.ts says why).
      ticket: async () => {
        if (this.api.session === undefined) return undefined;
        return (await this.api.post<{ ticket: string }>('/v1/live/tickets', {})).ticket;
      },
      onEvent: (event: LiveEvent) => {
        this.liveBus.dispatchEvent(new CustomEvent<LiveEvent>('live', { detail: event }));
        this.#notify(event);
      },
      onStatus: (status) => {
        this.liveStatus = status;
        if (status === 'open') this.liveBus.dispatchEvent(new Event('resync'));
      },
      onResync: () => this.liveBus.dispatchEvent(new Event('resync')),
      onTokenExpired: () => this.#pauseSession('Your session expired; log in again to carry on.'),
      onSessionRevoked: (reason) => this.#pauseSession(reason === 'token_revoked'
        ? 'Your session was ended (a new password, a new role, or log out everywhere); log in again to carry on.'
        : 'Your account was removed or changed; log in again to carry on.'),
    });
    this.#live.start();
  }

  /** In the page always; as a system notification too when the browser allows it (the mobile app's push role). */
  #notify(event: LiveEvent): void {
    const notice = noticeFor(event);
    if (notice === undefined) return;
    const before = this.notices;
    this.notices = withNotice(before, notice);
    if (this.notices.length === before.length && this.notices[0] === before[0]) return;
    if (this.notificationPermission === 'granted') {
      try {
        new Notification(notice.title, { body: notice.body, tag: notice.id });
      } catch {
        // Some browsers allow notifications only from a service worker; the in-page notice stays.
      }
    }
  }

  async #requestNotifications(): Promise<void> {
    if (typeof Notification === 'undefined') return;
    this.notificationPermission = await Notification.requestPermission();
  }

  /** The token is gone (expired or refused) but the page is kept: the re-ask dialog covers it. */
  #pauseSession(notice: string): void {
    if (this.session === undefined || this.reauth !== undefined) return;
    clearTimeout(this.#expiryTimer);
    this.#live?.stop();
    this.#live = undefined;
    this.api.logout();
    this.liveStatus = 'closed';
    this.reauth = notice;
  }

  #endSession(notice: string | undefined): void {
    this.reauth = undefined;
    clearTimeout(this.#expiryTimer);
    this.#live?.stop();
    this.#live = undefined;
    this.api.logout();
    this.#signer = undefined;
    this.session = undefined;
    this.notices = [];
    this.notice = notice;
  }

  override render() {
    if (this.session === undefined) {
      return html`<main class="login-page"><sdc-login .api=${this.api} .notice=${this.notice} @logged-in=${(e: CustomEvent<Session>) => this.#loggedIn(e.detail)}></sdc-login></main>`;
    }
    const current = this.route.view;
    const link = (view: Route['view'], href: string, label: string) =>
      html`<a href=${href} aria-current=${current === view ? 'page' : 'false'}>${label}</a>`;
    const paused = this.reauth !== undefined;
    return html`
      ${paused ? html`
        <div class="reauth-backdrop">
          <div class="reauth" role="dialog" aria-modal="true" aria-label="Log in again" data-testid="reauth">
            <sdc-login .api=${this.api} .notice=${this.reauth} .presetName=${this.session.name} @logged-in=${(e: CustomEvent<Session>) => this.#loggedIn(e.detail)}></sdc-login>
            <button type="button" @click=${() => this.#endSession(undefined)}>Log out instead</button>
          </div>
        </div>` : nothing}
      <header class="bar" ?inert=${paused}>
        <span class="brand">Secure Device Control</span>
        <nav aria-label="Main">
          ${link('fleet', '#/fleet', 'Fleet')} ${link('compose', '#/compose', 'Send a command')} ${link('alerts', '#/alerts', 'Alerts')}
          ${roleAtLeast(this.session.role, 'approver') ? link('approvals', '#/approvals', 'Approvals') : nothing}
          ${roleAtLeast(this.session.role, 'operator') ? link('dead-letters', '#/dead-letters', 'Dead letters') : nothing}
          ${link('releases', '#/releases', 'Releases')} ${link('artifacts', '#/artifacts', 'Artifacts')} ${link('audit', '#/audit', 'Audit')} ${link('research', '#/research', 'Simulation runs')}
        </nav>
        <span class="live live-${this.liveStatus}" role="status" aria-live="polite" data-testid="live-status">live: ${this.liveStatus}</span>
        <span class="who">${v(this.session.name)} (${v(this.session.role)})</span>
        <button type="button" @click=${() => this.#endSession(undefined)}>Log out</button>
      </header>
      <sdc-notices .notices=${this.notices} .permission=${this.notificationPermission}
        @notice-dismissed=${(e: CustomEvent<string>) => { this.notices = this.notices.filter((n) => n.id !== e.detail); }}
        @notifications-requested=${() => void this.#requestNotifications()} ?inert=${paused}></sdc-notices>
      <main id="main" ?inert=${paused}>${this.#view()}</main>`;
  }

  #view() {
    const r = this.route;
    switch (r.view) {
      case 'fleet': return html`<sdc-fleet .api=${this.api} .liveBus=${this.liveBus}></sdc-fleet>`;
      case 'device': return html`<sdc-device .api=${this.api} .liveBus=${this.liveBus} .deviceId=${r.deviceId} .userRole=${this.session?.role}></sdc-device>`;
      case 'compose': return html`<sdc-composer .api=${this.api} .deviceId=${r.deviceId}></sdc-composer>`;
      case 'command': return html`<sdc-command .api=${this.api} .liveBus=${this.liveBus} .commandId=${r.commandId}></sdc-command>`;
      case 'audit': return html`<sdc-audit .api=${this.api}></sdc-audit>`;
      case 'research': return html`<sdc-research></sdc-research>`;
      case 'alerts': return html`<sdc-alerts .api=${this.api} .liveBus=${this.liveBus} .userRole=${this.session?.role}></sdc-alerts>`;
      case 'approvals': return html`<sdc-approvals .api=${this.api} .liveBus=${this.liveBus} .userRole=${this.session?.role} .userName=${this.session?.name ?? ''} .signer=${this.#signer}
        @signer-changed=${(e: CustomEvent<ApprovalSigner>) => { this.#signer = e.detail; }}></sdc-approvals>`;
      case 'dead-letters': return html`<sdc-dead-letters .api=${this.api} .userRole=${this.session?.role} .deviceId=${r.deviceId}></sdc-dead-letters>`;
      case 'releases': return html`<sdc-releases .api=${this.api} .userRole=${this.session?.role} .userName=${this.session?.name ?? ''} .signer=${this.#signer}></sdc-releases>`;
      case 'artifacts': return html`<sdc-artifacts .api=${this.api} .userRole=${this.session?.role}></sdc-artifacts>`;
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
