import { toxicityScale } from './link.js';
import type { AttributeValues, ToxicKind, ToxicStream } from './toxics/types.js';

/** A toxic as the API knows it: its Toxiproxy fields and its validated attributes. */
export interface ToxicState {
  readonly name: string;
  readonly kind: ToxicKind;
  readonly stream: ToxicStream;
  /** The probability (0 to 1) that the toxic applies to one direction of one connection. */
  readonly toxicity: number;
  readonly toxicityPpm: number;
  readonly attributes: AttributeValues;
}

export interface ToxicJson {
  name: string;
  type: string;
  stream: ToxicStream;
  toxicity: number;
  attributes: Record<string, number>;
}

export function makeToxicState(fields: Omit<ToxicState, 'toxicityPpm'>): ToxicState {
  return { ...fields, toxicityPpm: Math.round(fields.toxicity * toxicityScale) };
}

export function toxicJson(toxic: ToxicState): ToxicJson {
  return { name: toxic.name, type: toxic.kind.type, stream: toxic.stream, toxicity: toxic.toxicity, attributes: { ...toxic.attributes } };
}
