/** The logging the proxy needs; pino's logger fits it. Every refusal is logged with its `code`. */
export interface ChaosLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export const silentLogger: ChaosLogger = { info: () => {}, warn: () => {}, error: () => {} };
