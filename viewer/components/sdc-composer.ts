import { html, nothing } from 'lit';
import { ApiError, type ApiClient } from '../api.js';
import { composerDevicesMax, verdictOf, type EvaluateAnswer, type Verdict } from '../policy-verdict.js';
import { opcodeArgs, opcodes, type Opcode } from '../../core/protocol/messages/opcodes.js';
import { asApiError, errorLine } from './error-line.js';
import { LightElement } from './light-element.js';
import { visibleText as v } from '../visible-text.js';

interface ArgField {
  readonly name: string;
  readonly type: 'integer' | 'string';
  readonly required: boolean;
  readonly pattern?: string;
  readonly minimum?: number;
  readonly maximum?: number;
}

/** The argument fields of an opcode, from the same TypeBox schema the API validates with. */
export function argFields(opcode: Opcode): ArgField[] {
  const schema = opcodeArgs[opcode] as unknown as { properties?: Record<string, Record<string, unknown>>; required?: string[] };
  return Object.entries(schema.properties ?? {}).map(([name, property]) => ({
    name,
    type: property.type === 'integer' ? 'integer' : 'string',
    required: (schema.required ?? []).includes(name),
    ...(typeof property.pattern === 'string' ? { pattern: property.pattern } : {}),
    ...(typeof property.minimum === 'number' ? { minimum: property.minimum } : {}),
    ...(typeof property.maximum === 'number' ? { maximum: property.maximum } : {}),
  }));
}

/** The args object from the form: empty optional fields left out, integers as numbers. */
export function argsFromForm(opcode: Opcode, read: (name: string) => string): Record<string, string | number> {
  const args: Record<string, string | number> = {};
  for (const field of argFields(opcode)) {
    const text = read(field.name).trim();
    if (text === '') continue;
    args[field.name] = field.type === 'integer' ? Number(text) : text;
  }
  return args;
}

function newIdempotencyKey(): string {
  return `viewer-${crypto.randomUUID()}`;
}

type TargetMode = 'device' | 'tag';

interface Checked {
  /** What was checked: the devices, opcode and args as JSON; Send sends only what was checked. */
  readonly key: string;
  readonly verdicts: ReadonlyArray<{ deviceId: string; verdict?: Verdict; error?: ApiError }>;
}

/**
 * Devices (one by id, or every device carrying a tag), opcode and arguments; the policy's dry run
 * (`POST /v1/policy/evaluate`) for each device is shown before anything is sent: Send first checks
 * what is in the form, and sends only what was checked, so a verdict is always on screen before
 * a command exists. Each device's command carries its own Idempotency-Key, kept until the API
 * answers, so pressing Send again after a failure retries the same command instead of creating a
 * second one (docs/api.md, "Commands and idempotency"). One device: its live timeline opens;
 * several: a list of the commands made.
 */
export class SdcComposer extends LightElement {
  static override properties = {
    api: { attribute: false }, deviceId: {}, opcode: { state: true }, error: { state: true }, busy: { state: true }, idempotencyKey: { state: true },
    mode: { state: true }, tagDevices: { state: true }, checked: { state: true }, sent: { state: true },
  };

  declare api: ApiClient;
  declare deviceId: string | undefined;
  declare opcode: Opcode;
  declare error: ApiError | undefined;
  declare busy: boolean;
  /** The key of the next command to the first (or only) device; shown so an operator can quote it. */
  declare idempotencyKey: string;
  declare mode: TargetMode;
  /** The devices found for the tag, each with whether it is picked. */
  declare tagDevices: ReadonlyArray<{ id: string; picked: boolean }> | undefined;
  declare checked: Checked | undefined;
  declare sent: ReadonlyArray<{ deviceId: string; commandId?: string; state?: string; error?: ApiError }> | undefined;
  /** Idempotency keys by device, kept until that device's create is answered. */
  readonly #keys = new Map<string, string>();

  constructor() {
    super();
    this.deviceId = undefined;
    this.opcode = 'EXEC_GET_PROCESS_LIST';
    this.error = undefined;
    this.busy = false;
    this.idempotencyKey = newIdempotencyKey();
    this.mode = 'device';
    this.tagDevices = undefined;
    this.checked = undefined;
    this.sent = undefined;
  }

  #keyFor(deviceId: string, index: number): string {
    let key = this.#keys.get(deviceId);
    if (key === undefined) {
      key = index === 0 ? this.idempotencyKey : newIdempotencyKey();
      this.#keys.set(deviceId, key);
    }
    return key;
  }

  /** The devices, opcode and args in the form now. */
  #request(form: HTMLFormElement): { devices: string[]; args: Record<string, string | number> } {
    const data = new FormData(form);
    const devices = this.mode === 'device'
      ? [String(data.get('device') ?? '').trim()].filter((id) => id !== '')
      : (this.tagDevices ?? []).filter((d) => d.picked).map((d) => d.id);
    return { devices, args: argsFromForm(this.opcode, (name) => String(data.get(`arg-${name}`) ?? '')) };
  }

  async #findByTag(): Promise<void> {
    const input = this.querySelector<HTMLInputElement>('input[name="tag"]');
    const tag = input?.value.trim().toLowerCase() ?? '';
    this.error = undefined;
    this.checked = undefined;
    if (tag === '') { this.tagDevices = undefined; return; }
    try {
      const page = await this.api.get<{ items: Array<{ id: string }> }>(`/v1/devices?tag=${encodeURIComponent(tag)}&limit=${composerDevicesMax}`);
      this.tagDevices = page.items.map((d) => ({ id: d.id, picked: true }));
    } catch (error) {
      this.error = asApiError(error);
    }
  }

  async #check(form: HTMLFormElement): Promise<Checked | undefined> {
    const { devices, args } = this.#request(form);
    if (devices.length === 0) {
      this.error = new ApiError('VIEWER_INPUT_MISSING', this.mode === 'device' ? 'give a device id' : 'find the devices of a tag and pick at least one', 0);
      return undefined;
    }
    const verdicts = [];
    for (const deviceId of devices) {
      try {
        const answer = await this.api.post<EvaluateAnswer>('/v1/policy/evaluate', { device_id: deviceId, opcode: this.opcode, args });
        verdicts.push({ deviceId, verdict: verdictOf(answer) });
      } catch (error) {
        verdicts.push({ deviceId, error: asApiError(error) });
      }
    }
    this.checked = { key: JSON.stringify({ devices, opcode: this.opcode, args }), verdicts };
    return this.checked;
  }

  async #submit(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    const { devices, args } = this.#request(form);
    const key = JSON.stringify({ devices, opcode: this.opcode, args });
    this.busy = true;
    this.error = undefined;
    try {
      // Not checked yet, or changed since: show the verdict first; the next Send sends.
      if (this.checked?.key !== key) {
        await this.#check(form);
        return;
      }
      const sent = [];
      for (const [index, deviceId] of devices.entries()) {
        try {
          const command = await this.api.post<{ id: string; state: string }>('/v1/commands', { device_id: deviceId, opcode: this.opcode, args }, { 'idempotency-key': this.#keyFor(deviceId, index) });
          this.#keys.delete(deviceId);
          sent.push({ deviceId, commandId: command.id, state: command.state });
        } catch (error) {
          sent.push({ deviceId, error: asApiError(error) });
        }
      }
      if (this.#keys.size === 0) this.idempotencyKey = newIdempotencyKey();
      const only = sent[0];
      if (sent.length === 1 && only?.commandId !== undefined) {
        location.hash = `#/commands/${encodeURIComponent(only.commandId)}`;
        return;
      }
      if (sent.length === 1) this.error = only?.error;
      else this.sent = sent;
    } finally {
      this.busy = false;
    }
  }

  #verdicts() {
    const checked = this.checked;
    if (checked === undefined) return nothing;
    return html`
      <div class="verdicts" role="status" aria-live="polite" data-testid="verdicts">
        <h2>Policy dry run</h2>
        <ul>${checked.verdicts.map((one) => html`
          <li data-device=${one.deviceId} data-verdict=${one.verdict?.kind ?? 'error'} data-testid="verdict">
            <strong>${v(one.deviceId)}</strong>:
            ${one.verdict === undefined ? errorLine(one.error) : html`<span class="policy-verdict policy-verdict-${one.verdict.kind}">${one.verdict.text}</span>${one.verdict.code ? html` <code>${v(one.verdict.code)}</code>` : nothing}`}
          </li>`)}</ul>
        <p class="hint">Press <strong>Send</strong> to send ${checked.verdicts.length === 1 ? 'it' : `to these ${checked.verdicts.length} devices`}; changing the form checks again first.</p>
      </div>`;
  }

  #sentList() {
    if (this.sent === undefined) return nothing;
    return html`
      <div class="card" data-testid="sent-list" role="status">
        <h2>Sent</h2>
        <ul>${this.sent.map((s) => html`<li data-device=${s.deviceId}>${v(s.deviceId)}:
          ${s.commandId === undefined ? errorLine(s.error) : html`<a href="#/commands/${encodeURIComponent(s.commandId)}">${v(s.commandId)}</a> (${v(s.state)})`}</li>`)}</ul>
      </div>`;
  }

  override render() {
    const fields = argFields(this.opcode);
    const changed = () => { this.sent = undefined; };
    return html`
      <section aria-labelledby="compose-title">
        <h1 id="compose-title">Send a command</h1>
        <form class="card composer" @submit=${this.#submit} @input=${changed}>
          <fieldset>
            <legend>Devices</legend>
            <label class="inline"><input type="radio" name="mode" value="device" ?checked=${this.mode === 'device'} @change=${() => { this.mode = 'device'; this.checked = undefined; }}> One device</label>
            <label class="inline"><input type="radio" name="mode" value="tag" ?checked=${this.mode === 'tag'} @change=${() => { this.mode = 'tag'; this.checked = undefined; }}> Devices with a tag</label>
            ${this.mode === 'device'
              ? html`<label>Device <input name="device" required maxlength="128" pattern="[A-Za-z0-9_.:\\-]+" .value=${this.deviceId ?? ''} autocomplete="off"></label>`
              : html`<label>Tag <input name="tag" maxlength="64" autocomplete="off" @keydown=${(e: KeyboardEvent) => { if (e.key === 'Enter') { e.preventDefault(); void this.#findByTag(); } }}></label>
                <button type="button" @click=${() => void this.#findByTag()}>Find devices</button>
                ${this.tagDevices === undefined ? nothing : this.tagDevices.length === 0 ? html`<p data-testid="tag-devices">No device carries this tag.</p>` : html`
                  <ul class="picks" data-testid="tag-devices">${this.tagDevices.map((d, i) => html`<li><label class="inline"><input type="checkbox" .checked=${d.picked}
                    @change=${(e: Event) => { this.tagDevices = this.tagDevices!.map((x, j) => (j === i ? { ...x, picked: (e.target as HTMLInputElement).checked } : x)); this.checked = undefined; }}> ${v(d.id)}</label></li>`)}</ul>
                  ${this.tagDevices.length >= composerDevicesMax ? html`<p class="hint">The first ${composerDevicesMax} devices of the tag.</p>` : nothing}`}`}
          </fieldset>
          <label>Opcode
            <select name="opcode" @change=${(e: Event) => { this.opcode = (e.target as HTMLSelectElement).value as Opcode; this.checked = undefined; }}>
              ${opcodes.map((o) => html`<option value=${o} ?selected=${o === this.opcode}>${o}</option>`)}
            </select>
          </label>
          <fieldset>
            <legend>Arguments</legend>
            ${fields.length === 0 ? html`<p>This opcode takes no arguments.</p>` : fields.map((f) => html`
              <label>${f.name}${f.required ? nothing : html` <small>(optional)</small>`}
                <input name="arg-${f.name}" type=${f.type === 'integer' ? 'number' : 'text'} ?required=${f.required}
                  min=${f.minimum ?? nothing} max=${f.maximum ?? nothing} step=${f.type === 'integer' ? '1' : nothing} pattern=${f.pattern ?? nothing}>
              </label>`)}
          </fieldset>
          <p class="hint">Idempotency-Key <code data-testid="idempotency-key">${this.idempotencyKey}</code>: kept until the API answers, so sending again after a failure cannot create a second command.</p>
          <div class="actions">
            <button type="button" ?disabled=${this.busy} @click=${(e: Event) => { const form = (e.target as HTMLElement).closest('form'); if (form?.reportValidity()) void this.#check(form); }}>Check with the policy</button>
            <button type="submit" ?disabled=${this.busy}>${this.busy ? 'Working…' : 'Send'}</button>
          </div>
          ${errorLine(this.error)}
          ${this.#verdicts()}
        </form>
        ${this.#sentList()}
      </section>`;
  }
}

customElements.define('sdc-composer', SdcComposer);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-composer': SdcComposer;
  }
}
