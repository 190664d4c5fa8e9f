import { readFile } from 'node:fs/promises';
import { SdcError } from '../../core/errors/index.js';
import { httpsJson } from '../../runtime/https-json.js';
import { passwordEnv, readPasswordOption, requireOption, type Command } from '../command.js';
import { apiClient } from '../api-client.js';
import { removeLogin, saveLogin } from '../credentials.js';
import { shownValue } from '../shown-text.js';

/** The token's own expiry (`exp`, seconds): the stored login says when to log in again. */
function tokenExpiresAtMs(token: string): number {
  const payload = token.split('.')[1];
  try {
    const exp = (JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    if (typeof exp === 'number' && Number.isFinite(exp)) return exp * 1000;
  } catch {
    // Falls through to the refusal below.
  }
  throw new SdcError('CLI_INPUT', 'the server answered with a token that is not a JWT');
}

function serverUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new SdcError('CLI_USAGE', `--server must be a URL like https://127.0.0.1:8080, got '${raw}'`);
  }
  if (url.protocol !== 'https:') throw new SdcError('CLI_USAGE', '--server must be an https:// URL');
  return url.origin;
}

export const loginCommand: Command = {
  name: 'login',
  summary: 'Log in to a running control plane and keep the token (not the password) for the other commands',
  usage: '--server URL --name N --ca FILE (--password-stdin | SDC_PASSWORD=...) [--json]',
  optionHelp: [
    ['--server URL', 'The control plane, like https://127.0.0.1:8080'],
    ['--name N', 'Operator name'],
    ['--ca FILE', "The server's root CA (data/pki/root-ca.pem); stored with the login"],
    ['--password-stdin', `Read the password from the first line of stdin (otherwise from ${passwordEnv})`],
    ['--json', 'Print the stored login (without the token) as JSON'],
  ],
  options: { server: { type: 'string' }, name: { type: 'string' }, ca: { type: 'string' }, 'password-stdin': { type: 'boolean' }, json: { type: 'boolean' } },
  async run(args, io) {
    const server = serverUrl(requireOption(args, 'server'));
    const name = requireOption(args, 'name');
    const caFile = requireOption(args, 'ca');
    const caPem = await readFile(caFile, 'utf8').catch(() => {
      throw new SdcError('CLI_INPUT', `cannot read the CA file ${caFile}`, { path: caFile });
    });
    if (!caPem.includes('-----BEGIN CERTIFICATE-----')) throw new SdcError('CLI_INPUT', `${caFile} is not a PEM certificate`, { path: caFile });
    const password = await readPasswordOption(args, io);
    const answer = (await httpsJson<{ token: string; role: string }>({ method: 'POST', url: new URL('/v1/auth/login', server), caPem, body: { name, password }, timeoutMs: 30_000 })).body;
    const login = { server, ca_pem: caPem, name, role: answer.role, token: answer.token, expires_at_ms: tokenExpiresAtMs(answer.token) };
    const path = await saveLogin(io.env, login);
    const shown = { server, name, role: login.role, expires_at_ms: login.expires_at_ms, credentials: path };
    io.stdout(args.values.json === true ? JSON.stringify(shown) + '\n' : `logged in to ${server} as ${name} (${shownValue(login.role)}) until ${new Date(login.expires_at_ms).toISOString()}; token in ${path}\n`);
    return 0;
  },
};

/** What POST /v1/auth/logout-all answers. */
interface LogoutAllAnswer { name: string; live_streams_closed: number }

export const logoutCommand: Command = {
  name: 'logout',
  summary: 'Forget the stored login; with --all, first revoke every token of yours on the server (POST /v1/auth/logout-all)',
  usage: '[--all] [--json]',
  optionHelp: [
    ['--all', 'Log out everywhere: revoke every token you hold (other terminals, browsers, a token someone took) and close your live streams, then forget the stored login. Nothing is forgotten if the server refuses'],
    ['--json', 'Print { "removed": true|false }; with --all also name, server, revoked and live_streams_closed'],
  ],
  options: { all: { type: 'boolean' }, json: { type: 'boolean' } },
  async run(args, io) {
    const json = args.values.json === true;
    if (args.values.all !== true) {
      const removed = await removeLogin(io.env);
      io.stdout(json ? JSON.stringify({ removed }) + '\n' : removed ? 'logged out\n' : 'not logged in\n');
      return 0;
    }
    // The stored token asks for its own end: without a valid login (none, expired, refused) there
    // is nothing to revoke with, and the error says so; the login is kept until the server agreed.
    const api = await apiClient(io);
    const answer = await api.post<LogoutAllAnswer>('/v1/auth/logout-all', {});
    const removed = await removeLogin(io.env);
    const { server } = api.login;
    io.stdout(json
      ? JSON.stringify({ name: answer.name, server, revoked: true, live_streams_closed: answer.live_streams_closed, removed }) + '\n'
      : `logged out everywhere: every token of ${shownValue(answer.name)} on ${server} is revoked; ${shownValue(answer.live_streams_closed)} live stream(s) closed on that control plane (the others close theirs at once); ${removed ? 'stored login removed' : 'no stored login left to remove'}\n`);
    return 0;
  },
};
