import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { SdcError } from '../../core/errors/index.js';
import {
  createNodeEd25519Provider, pemFromPrivateSeed, pemFromPublicKey, privateSeedFromPem, publicKeyFromPem,
} from '../../runtime/ed25519-node.js';
import { ed25519SeedBytes } from '../../core/crypto/ed25519-sizes.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { decodeEnvelope, parseEnvelopeFields, signEnvelope, verifyEnvelope } from '../../core/protocol/envelope.js';
import { parseStrictJson } from '../../core/protocol/strict-json.js';
import { requireOption, type CliIo, type Command, type CommandGroup, type ParsedCommandArgs } from '../command.js';
import { canonicalizeCommand } from './envelope-canonicalize.js';
import { shownText } from '../shown-text.js';

/** Reads FILE, or stdin for '-' / no FILE, as text. Envelopes are frames, so the frame limits of the strict parser apply. */
async function readInput(args: ParsedCommandArgs, io: CliIo, what: string): Promise<string> {
  if (args.positionals.length > 1) throw new SdcError('CLI_USAGE', `${what} takes at most one FILE`);
  const file = args.positionals[0];
  return file === undefined || file === '-' ? io.readStdin() : readText(file);
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw new SdcError('CLI_INPUT', `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/** The seed of a --key file; a file that is not an Ed25519 key is refused naming it. */
async function readSigningKey(file: string): Promise<Uint8Array> {
  const text = await readText(file);
  try {
    return privateSeedFromPem(text);
  } catch (error) {
    throw new SdcError('CLI_INPUT', `${file} is not an Ed25519 private key (PKCS#8 PEM): ${(error as Error).message}`);
  }
}

/** Creates a new file; never overwrites one, so a key cannot be clobbered by a repeated command. */
async function writeNewFile(file: string, text: string, mode: number): Promise<void> {
  try {
    await writeFile(file, text, { mode, flag: 'wx' });
  } catch (error) {
    throw new SdcError('CLI_INPUT', `cannot create ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

const keygenCommand: Command = {
  name: 'keygen',
  summary: 'Make an Ed25519 key pair as PEM files (PKCS#8 private key, mode 0600; SPKI public key)',
  usage: '--out-private FILE --out-public FILE',
  optionHelp: [
    ['--out-private FILE', 'Private key to create (refused if it exists)'],
    ['--out-public FILE', 'Public key to create (refused if it exists)'],
  ],
  options: { 'out-private': { type: 'string' }, 'out-public': { type: 'string' } },
  async run(args, io) {
    const privatePath = requireOption(args, 'out-private');
    const publicPath = requireOption(args, 'out-public');
    if (privatePath === publicPath) throw new SdcError('CLI_USAGE', '--out-private and --out-public must differ');
    const seed = new Uint8Array(randomBytes(ed25519SeedBytes));
    const publicKey = createNodeEd25519Provider().publicKeyFromSeed(seed);
    await writeNewFile(privatePath, pemFromPrivateSeed(seed), 0o600);
    await writeNewFile(publicPath, pemFromPublicKey(publicKey), 0o644);
    io.stdout(`wrote ${privatePath} (private, 0600) and ${publicPath}\n`);
    return 0;
  },
};

const signCommand: Command = {
  name: 'sign',
  summary: 'Sign envelope fields (a JSON object without sig) and print the signed envelope as canonical JSON',
  usage: '--key PRIVATE.pem --kid KID [FILE]',
  optionHelp: [
    ['--key PRIVATE.pem', 'Ed25519 private key (PKCS#8 PEM, e.g. from keygen or openssl genpkey -algorithm ed25519)'],
    ['--kid KID', 'Key id to put in sig.kid'],
    ['FILE', "JSON object {v, type, id, device_id, session_id, seq, ts, body} ('-' or omitted: standard input)"],
  ],
  options: { key: { type: 'string' }, kid: { type: 'string' } },
  allowPositionals: true,
  async run(args, io) {
    const seed = await readSigningKey(requireOption(args, 'key'));
    const kid = requireOption(args, 'kid');
    const fields = parseEnvelopeFields(parseStrictJson(await readInput(args, io, 'sign')));
    const envelope = signEnvelope({ fields, kid, seed, provider: createNodeEd25519Provider() });
    io.stdout(canonicalize(envelope) + '\n');
    return 0;
  },
};

const verifyCommand: Command = {
  name: 'verify',
  summary: "Verify a signed envelope with a public key; prints 'ok kid=...' or the refusal",
  usage: '--pub PUBLIC.pem [--kid KID] [FILE]',
  optionHelp: [
    ['--pub PUBLIC.pem', 'Ed25519 public key (SPKI PEM)'],
    ['--kid KID', 'Accept only this sig.kid (default: the key is tried for any kid)'],
    ['FILE', "Signed envelope ('-' or omitted: standard input)"],
  ],
  options: { pub: { type: 'string' }, kid: { type: 'string' } },
  allowPositionals: true,
  async run(args, io) {
    const publicKey = publicKeyFromPem(await readText(requireOption(args, 'pub')));
    const onlyKid = args.values.kid;
    const envelope = decodeEnvelope(await readInput(args, io, 'verify'));
    verifyEnvelope({
      envelope,
      resolveKey: (kid) => (typeof onlyKid === 'string' && kid !== onlyKid ? undefined : publicKey),
      provider: createNodeEd25519Provider(),
    });
    io.stdout(`ok kid=${shownText(envelope.sig.kid)}\n`);
    return 0;
  },
};

export const envelopeGroup: CommandGroup = {
  name: 'envelope',
  summary: 'Signed envelopes: canonical JSON, keys, signing and verification',
  commands: [canonicalizeCommand, keygenCommand, signCommand, verifyCommand],
};
