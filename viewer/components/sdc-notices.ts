import { html, nothing } from 'lit';
import { formatTime } from '../format.js';
import type { Notice } from '../notify.js';
import { LightElement } from './light-element.js';

/**
 * The in-page notifications (an alert raised, a command finished), newest first, each a link to
 * what it is about, dismissable one by one; and the switch for the browser's own notifications,
 * which the browser allows only after the operator asks (a click), never on load.
 */
export class SdcNotices extends LightElement {
  static override properties = { notices: { attribute: false }, permission: {} };

  declare notices: readonly Notice[];
  declare permission: NotificationPermission | 'unsupported';

  constructor() {
    super();
    this.notices = [];
    this.permission = 'unsupported';
  }

  #dismiss(id: string): void {
    this.dispatchEvent(new CustomEvent<string>('notice-dismissed', { detail: id, bubbles: true }));
  }

  override render() {
    return html`
      <aside class="notices" aria-label="Notifications">
        ${this.permission === 'default' ? html`<button type="button" @click=${() => this.dispatchEvent(new Event('notifications-requested', { bubbles: true }))}>Enable browser notifications</button>` : nothing}
        <ul role="log" aria-live="polite" data-testid="notices">${this.notices.map((n) => html`
          <li class="notice notice-${n.severity}" data-notice=${n.id}>
            <a href=${n.href}><strong>${n.title}</strong></a> ${n.body} <small>${formatTime(n.atMs)}</small>
            <button type="button" aria-label="Dismiss ${n.title}" @click=${() => this.#dismiss(n.id)}>×</button>
          </li>`)}</ul>
      </aside>`;
  }
}

customElements.define('sdc-notices', SdcNotices);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-notices': SdcNotices;
  }
}
