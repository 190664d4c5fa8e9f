import { html, nothing } from 'lit';
import type { ApiClient, ApiError } from '../api.js';
import { opcodeArgs, opcodes, type Opcode } from '../../core/protocol/messages/opcodes.js';
import { asApiError, errorLine } from './error-line.js';
import { LightElement } from './light-element.js';

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

/**
 * Device, opcode and arguments; sent with an Idempotency-Key that is kept until the API answers,
 * so pressing Send again after a failure retries the same command instead of creating a second one
 * (docs/api.md, "Commands and idempotency"). On success it opens the command's live timeline.
 */
export class SdcComposer extends LightElement {
  static override properties = {
    api: { attribute: false }, deviceId: {}, opcode: { state: true }, error: { state: true }, busy: { state: true }, idempotencyKey: { state: true },
  };

  declare api: ApiClient;
  declare deviceId: string | undefined;
  declare opcode: Opcode;
  declare error: ApiError | undefined;
  declare busy: boolean;
  declare idempotencyKey: string;

  constructor() {
    super();
    this.deviceId = undefined;
    this.opcode = 'EXEC_GET_PROCESS_LIST';
    this.error = undefined;
    this.busy = false;
    this.idempotencyKey = newIdempotencyKey();
  }

  async #submit(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    const data = new FormData(event.target as HTMLFormElement);
    const deviceId = String(data.get('device') ?? '').trim();
    const body = { device_id: deviceId, opcode: this.opcode, args: argsFromForm(this.opcode, (name) => String(data.get(`arg-${name}`) ?? '')) };
    this.busy = true;
    this.error = undefined;
    try {
      const command = await this.api.post<{ id: string }>('/v1/commands', body, { 'idempotency-key': this.idempotencyKey });
      this.idempotencyKey = newIdempotencyKey();
      location.hash = `#/commands/${encodeURIComponent(command.id)}`;
    } catch (error) {
      this.error = asApiError(error);
    } finally {
      this.busy = false;
    }
  }

  override render() {
    const fields = argFields(this.opcode);
    return html`
      <section aria-labelledby="compose-title">
        <h1 id="compose-title">Send a command</h1>
        <form class="card composer" @submit=${this.#submit}>
          <label>Device <input name="device" required maxlength="128" pattern="[A-Za-z0-9_.:\\-]+" .value=${this.deviceId ?? ''} autocomplete="off"></label>
          <label>Opcode
            <select name="opcode" @change=${(e: Event) => { this.opcode = (e.target as HTMLSelectElement).value as Opcode; }}>
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
          <button type="submit" ?disabled=${this.busy}>${this.busy ? 'Sending…' : 'Send'}</button>
          ${errorLine(this.error)}
        </form>
      </section>`;
  }
}

customElements.define('sdc-composer', SdcComposer);

declare global {
  interface HTMLElementTagNameMap {
    'sdc-composer': SdcComposer;
  }
}
