/**
 * Renders the TypeScript constants and the C header from kernel/contract.json, so both sides of
 * the IOCTL boundary read one source. The renderers also check the contract for internal
 * consistency (IOCTL codes match the CTL_CODE formula, fields are contiguous and in bounds).
 */

export type FieldType = 'u8' | 'u16' | 'u32' | 'u64' | 'bytes';

export interface ContractField {
  name: string;
  type: FieldType;
  offset: number;
  length?: number;
  summary?: string;
}

export interface ContractPayload {
  bytes: number;
  fields: ContractField[];
  trailing?: { kind: 'array'; of: string; countField: string } | { kind: 'bytes'; lengthField: string; summary?: string };
}

export interface KernelContract {
  name: string;
  contractVersion: number;
  summary: string;
  ioctl: { deviceType: number; functionBase: number; method: number; access: number };
  magic: { request: { ascii: string; value: string }; response: { ascii: string; value: string } };
  limits: Record<string, number>;
  header: { bytes: number; fields: ContractField[] };
  signature: { bytes: number };
  opcodes: Array<{ name: string; value: number; ioctlCode: string; request: string; response: string; summary: string; privileged?: boolean }>;
  statuses: Array<{ name: string; value: number; summary: string }>;
  payloads: Record<string, ContractPayload>;
}

const scalarBytes: Record<Exclude<FieldType, 'bytes'>, number> = { u8: 1, u16: 2, u32: 4, u64: 8 };

export function ctlCode(contract: KernelContract, opcodeValue: number): number {
  const { deviceType, functionBase, method, access } = contract.ioctl;
  return ((deviceType << 16) | (access << 14) | ((functionBase + opcodeValue) << 2) | method) >>> 0;
}

function fieldBytes(field: ContractField): number {
  if (field.type === 'bytes') {
    if (field.length === undefined || field.length <= 0) throw new Error(`field ${field.name}: bytes needs a positive length`);
    return field.length;
  }
  return scalarBytes[field.type];
}

function hex32(value: number): string {
  return '0x' + value.toString(16).padStart(8, '0');
}

/** Throws on any inconsistency; run by both renderers so a bad contract never generates code. */
export function validateContract(contract: KernelContract): void {
  const checkLayout = (name: string, bytes: number, fields: ContractField[]): void => {
    let next = 0;
    for (const field of fields) {
      if (field.offset !== next) throw new Error(`${name}.${field.name}: offset ${field.offset}, expected ${next}`);
      const size = fieldBytes(field);
      if (field.type !== 'bytes' && field.offset % size !== 0) throw new Error(`${name}.${field.name}: misaligned`);
      next += size;
    }
    if (next !== bytes) throw new Error(`${name}: fields cover ${next} bytes, declared ${bytes}`);
  };
  checkLayout('header', contract.header.bytes, contract.header.fields);
  for (const [name, payload] of Object.entries(contract.payloads)) {
    checkLayout(name, payload.bytes, payload.fields);
    const trailing = payload.trailing;
    if (trailing?.kind === 'array' && !contract.payloads[trailing.of]) throw new Error(`${name}: unknown element ${trailing.of}`);
    const ref = trailing?.kind === 'array' ? trailing.countField : trailing?.lengthField;
    if (ref !== undefined && !payload.fields.some((f) => f.name === ref)) throw new Error(`${name}: unknown field ${ref}`);
  }
  const seen = new Set<number>();
  for (const op of contract.opcodes) {
    if (seen.has(op.value)) throw new Error(`opcode value ${op.value} used twice`);
    seen.add(op.value);
    const computed = hex32(ctlCode(contract, op.value));
    if (computed !== op.ioctlCode) throw new Error(`${op.name}: listed ${op.ioctlCode}, CTL_CODE gives ${computed}`);
    if (!contract.payloads[op.request] || !contract.payloads[op.response]) throw new Error(`${op.name}: unknown payload`);
  }
  const statusValues = new Set(contract.statuses.map((s) => s.value));
  if (statusValues.size !== contract.statuses.length) throw new Error('status value used twice');
  for (const m of [contract.magic.request, contract.magic.response]) {
    const bytes = Buffer.from(m.ascii, 'latin1');
    if (bytes.length !== 4 || hex32(bytes.readUInt32LE(0)) !== m.value) throw new Error(`magic ${m.ascii} != ${m.value}`);
  }
}

const generatedNote = 'GENERATED from kernel/contract.json by kernel/generate.ts (npm run kernel:generate). Do not edit.';

function camel(snake: string): string {
  return snake.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function upperSnake(pascal: string): string {
  return pascal.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

export function renderTypeScript(contract: KernelContract): string {
  validateContract(contract);
  const out: string[] = [`// ${generatedNote}`, ''];
  out.push(`export const CONTRACT_VERSION = ${contract.contractVersion};`);
  out.push(`export const REQUEST_MAGIC = ${contract.magic.request.value};`);
  out.push(`export const RESPONSE_MAGIC = ${contract.magic.response.value};`);
  out.push(`export const HEADER_BYTES = ${contract.header.bytes};`);
  out.push(`export const SIGNATURE_BYTES = ${contract.signature.bytes};`);
  for (const [name, value] of Object.entries(contract.limits)) {
    out.push(`export const ${upperSnake(name)} = ${value};`);
  }
  out.push('');
  out.push('/** Opcode values carried in the header. */');
  out.push('export const Opcode = {');
  for (const op of contract.opcodes) out.push(`  ${op.name}: ${op.value},`);
  out.push('} as const;');
  out.push('export type OpcodeName = keyof typeof Opcode;');
  out.push('export type OpcodeValue = (typeof Opcode)[OpcodeName];');
  out.push('');
  out.push('/** CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800 + opcode, METHOD_BUFFERED, FILE_ANY_ACCESS) per opcode. */');
  out.push('export const IoctlCode = {');
  for (const op of contract.opcodes) out.push(`  ${op.name}: ${op.ioctlCode},`);
  out.push('} as const;');
  out.push('');
  out.push('/** Status codes in response headers (and the native call\'s return value). */');
  out.push('export const KernelStatus = {');
  for (const s of contract.statuses) out.push(`  ${s.name}: ${s.value},`);
  out.push('} as const;');
  out.push('export type KernelStatusName = keyof typeof KernelStatus;');
  out.push('');
  out.push('export const kernelStatusNames: Readonly<Record<number, KernelStatusName>> = {');
  for (const s of contract.statuses) out.push(`  ${s.value}: '${s.name}',`);
  out.push('};');
  out.push('');
  out.push('/** Byte offsets and sizes of every fixed layout, plus each opcode\'s payload layouts. */');
  out.push('export const Layout = {');
  const layouts: Array<[string, ContractPayload]> = [['Header', { bytes: contract.header.bytes, fields: contract.header.fields }], ...Object.entries(contract.payloads)];
  for (const [name, payload] of layouts) {
    out.push(`  ${name}: {`);
    out.push(`    bytes: ${payload.bytes},`);
    for (const f of payload.fields) out.push(`    ${camel(f.name)}: { offset: ${f.offset}, bytes: ${fieldBytes(f)} },`);
    out.push('  },');
  }
  out.push('} as const;');
  out.push('');
  out.push('/** Opcodes the kernel runs only with a control-plane signed command attached (command_len > 0). */');
  out.push(`export const PRIVILEGED_OPCODES: ReadonlySet<OpcodeName> = new Set([${contract.opcodes.filter((o) => o.privileged).map((o) => `'${o.name}'`).join(', ')}]);`);
  out.push('');
  out.push('export const opcodePayloads = {');
  for (const op of contract.opcodes) out.push(`  ${op.name}: { request: '${op.request}', response: '${op.response}' },`);
  out.push('} as const;');
  out.push('');
  return out.join('\n');
}

export function renderCHeader(contract: KernelContract): string {
  validateContract(contract);
  const out: string[] = [`/* ${generatedNote} */`, '#ifndef SDC_KERNEL_CONTRACT_H', '#define SDC_KERNEL_CONTRACT_H', ''];
  const def = (name: string, value: string | number): void => { out.push(`#define ${name} ${value}`); };
  def('SDC_CONTRACT_VERSION', `${contract.contractVersion}u`);
  def('SDC_REQUEST_MAGIC', `${contract.magic.request.value}u`);
  def('SDC_RESPONSE_MAGIC', `${contract.magic.response.value}u`);
  def('SDC_HEADER_BYTES', `${contract.header.bytes}u`);
  def('SDC_SIGNATURE_BYTES', `${contract.signature.bytes}u`);
  for (const [name, value] of Object.entries(contract.limits)) def(`SDC_${upperSnake(name)}`, `${value}u`);
  out.push('');
  out.push('/* Opcodes */');
  for (const op of contract.opcodes) def(`SDC_OP_${op.name}`, `${op.value}u`);
  out.push('');
  out.push('/* IOCTL codes: CTL_CODE(0x22, 0x800 + opcode, METHOD_BUFFERED, FILE_ANY_ACCESS) */');
  for (const op of contract.opcodes) def(`SDC_IOCTL_${op.name}`, `${op.ioctlCode}u`);
  const privileged = contract.opcodes.filter((o) => o.privileged).map((o) => `(op) == SDC_OP_${o.name}`);
  out.push('/* Opcodes run only with a control-plane signed command attached */');
  def('SDC_OPCODE_PRIVILEGED(op)', `(${privileged.join(' || ') || '0'})`);
  out.push('');
  out.push('/* Status codes */');
  for (const s of contract.statuses) def(`SDC_STATUS_${s.name}`, `${s.value}`);
  out.push('');
  out.push('/* Layouts: <LAYOUT>_BYTES and <LAYOUT>_<FIELD>_OFFSET / _SIZE */');
  const layouts: Array<[string, ContractPayload]> = [['Header', { bytes: contract.header.bytes, fields: contract.header.fields }], ...Object.entries(contract.payloads)];
  for (const [name, payload] of layouts) {
    const prefix = `SDC_${upperSnake(name)}`;
    def(`${prefix}_BYTES`, `${payload.bytes}u`);
    for (const f of payload.fields) {
      def(`${prefix}_${f.name.toUpperCase()}_OFFSET`, `${f.offset}u`);
      def(`${prefix}_${f.name.toUpperCase()}_SIZE`, `${fieldBytes(f)}u`);
    }
  }
  out.push('', '#endif /* SDC_KERNEL_CONTRACT_H */', '');
  return out.join('\n');
}
