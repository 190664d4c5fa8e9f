import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import { parseStrictJson } from '../../core/protocol/strict-json.js';
import { otaChannels, otaKeys } from '../bus-contract/ota-keys.js';
import type { GatewayContext } from './gateway-context.js';

/** A session that can take an OTA_NOTICE now; false when it is closing. */
export type NoticeTarget = (notice: MessageBody<'OTA_NOTICE'>) => boolean;

/** A stored notice is at most this long: three signed commands and a director document fit in a few KiB. */
const noticeBytesMax = 32 * 1024;

/**
 * The gateway's half of the OTA notice push (docs/ota.md, "Rollouts"), modelled on the policy
 * bundle push: the control plane writes a device's notice under otaKeys.notice and announces the
 * device id; the gateway sends the notice if the device is here. After every AUTH the stored
 * notice is sent again, so a device that was offline, or an announcement this gateway missed,
 * still reaches the device. The gateway verifies nothing here: the agent checks the director's
 * signature and the kernel checks the commands'.
 */
export class OtaNoticePush {
  readonly #context: GatewayContext;
  readonly #targetOf: (deviceId: string) => NoticeTarget | undefined;
  #unsubscribe: (() => Promise<void>) | undefined;

  constructor(options: { context: GatewayContext; targetOf: (deviceId: string) => NoticeTarget | undefined }) {
    this.#context = options.context;
    this.#targetOf = options.targetOf;
  }

  async start(): Promise<void> {
    this.#unsubscribe = await this.#context.options.stores.kv.subscribe(otaChannels.noticeReady, (deviceId) => void this.send(deviceId));
  }

  async stop(): Promise<void> {
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
    await unsubscribe?.().catch((error: unknown) => this.#context.options.logger.warn({ err: error }, 'OTA notice channel unsubscribe failed'));
  }

  /**
   * Sends the stored notice to the device if it is held here and one is stored. Never throws;
   * false only when the store failed (the gateway tries again later: gateway-core.ts
   * #refreshOwed). A malformed stored value is logged and counts as done: reading it again would
   * find the same value.
   */
  async send(deviceId: string): Promise<boolean> {
    const target = this.#targetOf(deviceId);
    if (target === undefined) return true;
    let text: string | null;
    try {
      text = await this.#context.options.stores.kv.get(otaKeys.notice(deviceId));
    } catch (error) {
      this.#context.options.logger.warn({ err: error, device_id: deviceId }, 'OTA notice not sent: the store failed');
      return false;
    }
    if (text === null) return true;
    try {
      const notice = parseStrictJson(text, { frameBytesMax: noticeBytesMax }) as unknown as MessageBody<'OTA_NOTICE'>;
      if (target(notice)) this.#context.options.logger.info({ device_id: deviceId, execution_id: notice.execution_id }, 'OTA notice sent');
    } catch (error) {
      this.#context.options.logger.warn({ err: error, device_id: deviceId }, 'OTA notice not sent');
    }
    return true;
  }
}

/** A device's OTA_REPORT: passed on verbatim (the device-signed frame) to the control plane's events stream. */
export async function reportOta(context: GatewayContext, deviceId: string, frame: string, nowMs: number): Promise<void> {
  await context.report('ota_report', { device_id: deviceId, gateway_id: context.options.gatewayId, at_ms: nowMs, frame });
}
