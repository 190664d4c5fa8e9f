import { html, nothing } from 'lit';
import type { ApiClient, ApiError } from '../api.js';
import { parseTagsInput } from '../tags.js';
import { asApiError, errorLine } from './error-line.js';
import { LightElement } from './light-element.js';
import { visibleText as v } from '../visible-text.js';

/**
 * A device's tags, edited in one text field (comma or space separated) and saved with
 * `PUT /v1/devices/{id}/tags`, which replaces them all. Fires `tags-saved` with the stored tags.
 */
export class SdcTagsEditor extends LightElement {
  static override properties = {
    api: { attribute: false }, deviceId: {}, tags: { attribute: false }, editable: { type: Boolean },
    error: { state: true }, busy: { state: true }, saved: { state: true },
  };

  declare api: ApiClient;
  declare deviceId: string;
  declare tags: readonly string[];
  declare editable: boolean;
  declare error: ApiError | undefined;
  declare busy: boolean;
  declare saved: boolean;

  constructor() {
    super();
    this.tags = [];
    this.editable = false;
    this.error = undefined;
    this.busy = false;
    this.saved = false;
  }

  async #save(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    this.saved = false;
    let tags: string[];
    try {
      tags = parseTagsInput(String(new FormData(event.target as HTMLFormElement).get('tags') ?? ''));
    } catch (error) {
      this.error = asApiError(error);
      return;
    }
    this.busy = true;
    try {
      const answer = await this.api.put<{ device_id: string; tags: string[] }>(`/v1/devices/${encodeURIComponent(this.deviceId)}/tags`, { tags });
      this.tags = answer.tags;
      this.error = undefined;
      this.saved = true;
      this.dispatchEvent(new CustomEvent<string[]>('tags-saved', { detail: answer.tags, bubbles: true }));
    } catch (error) {
      this.error = asApiError(error);
    } finally {
      this.busy = false;
    }
  }

  override render() {
    const list = this.tags.length === 0 ? html`<span>none</span>` : this.tags.map((tag) => html`<span class="tag">${v(tag)}</span> `);
    if (!this.editable) return html`<p data-testid="device-tags">Tags: ${list}</p>`;
    return html`
      <form class="tags-editor" @submit=${(e: SubmitEvent) => void this.#save(e)}>
        <p data-testid="device-tags">Tags: ${list}</p>
        <label>Tags <input name="tags" aria-label="Tags of ${this.deviceId}" .value=${this.tags.join(', ')} placeholder="site:lab, group:kiosks" autocomplete="off"></label>
        <button type="submit" ?disabled=${this.busy}>Save tags</button>
        ${this.saved ? html`<span role="status">saved</span>` : nothing}
        ${errorLine(this.error)}
      </form>`;
  }
}

customElements.define('sdc-tags-editor', SdcTagsEditor);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-tags-editor': SdcTagsEditor;
  }
}
