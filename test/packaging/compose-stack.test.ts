// compose.yaml's whole stack (issue 15), read without a Docker engine: every image tag pinned,
// a health check on every long-running service and start order by health, every `sdc` command
// line parsed by the CLI's own option parser (with --help appended: every flag is checked and
// nothing starts), MinIO with its bucket, Toxiproxy with proxies in front of the stores, and the
// simulated fleet wired to the stack. compose.test.ts holds the schema and the security checks.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { main } from '../../cli/main.js';
import { readPasswordOption, type CliIo } from '../../cli/command.js';
import { composeText, interpolate, repositoryRoot } from './compose-support.js';

const root = repositoryRoot;


interface Service {
  image?: string; build?: unknown; command?: string[]; entrypoint?: string[]; restart?: string; profiles?: string[];
  environment?: Record<string, string>; secrets?: Array<string | { source: string; target?: string }>; volumes?: string[];
  networks?: string[]; ports?: string[]; extra_hosts?: string[];
  healthcheck?: { test?: string[]; disable?: boolean };
  depends_on?: Record<string, { condition: string }>;
}
interface ComposeFile { services: Record<string, Service>; secrets: Record<string, { file?: string }>; volumes: Record<string, unknown> }

/** The settings an operator starts from: deploy/compose.env.example. */
const exampleEnv: Record<string, string> = Object.fromEntries(readFileSync(join(root, 'deploy', 'compose.env.example'), 'utf8')
  .split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
const load = (env: Record<string, string> = exampleEnv): ComposeFile => parse(interpolate(composeText, env), { merge: true }) as ComposeFile;
const compose = load();
const services = Object.entries(compose.services);
const sdcImage = (s: Service) => s.image?.startsWith('secure-device-control') === true;
/** A job that runs once and exits: `restart: "no"` and not an sdc server. */
const isOneShot = (s: Service) => s.restart === 'no';

function option(service: Service, name: string): string[] {
  return (service.command ?? []).filter((a) => a.startsWith(`--${name}=`)).map((a) => a.slice(name.length + 3));
}

/** `name:tag` or `name@sha256:...`: a tag that is not `latest`, after the last path segment. */
function pinnedTag(image: string): string | undefined {
  if (/@sha256:[0-9a-f]{64}$/.test(image)) return image.slice(image.indexOf('@') + 1);
  const lastSegment = image.slice(image.lastIndexOf('/') + 1);
  const tag = lastSegment.includes(':') ? lastSegment.slice(lastSegment.indexOf(':') + 1) : undefined;
  return tag === undefined || tag === '' || tag === 'latest' ? undefined : tag;
}

async function sdcParses(argv: readonly string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const io: CliIo = { stdout: () => undefined, stderr: (t) => { stderr += t; }, readStdin: async () => '', env: {} };
  // --help last: parseCommandArgs checks every flag strictly, then help is printed instead of running.
  const code = await main([...argv, '--help'], io);
  return { code, stderr };
}

describe('compose.yaml, the whole stack', () => {
  test('has MinIO, Toxiproxy and the simulated fleet beside the stores, the control plane and gateway-2', () => {
    for (const name of ['mariadb', 'redis', 'minio', 'minio-init', 'toxiproxy', 'control-plane', 'gateway-2', 'fleet']) {
      assert.ok(compose.services[name], name);
    }
  });

  test('every image has a pinned tag (no latest, no bare name); the sdc image is the one built here', () => {
    assert.equal(pinnedTag('redis'), undefined);
    assert.equal(pinnedTag('minio/minio:latest'), undefined);
    assert.equal(pinnedTag('localhost:5000/redis'), undefined, 'a registry port is not a tag');
    assert.equal(pinnedTag('ghcr.io/shopify/toxiproxy:2.9.0'), '2.9.0');
    for (const [name, service] of services) {
      assert.ok(service.image, `${name} names its image`);
      assert.ok(pinnedTag(service.image), `${name}: ${service.image} has no pinned tag`);
      if (sdcImage(service)) assert.ok(service.build !== undefined, `${name} builds the sdc image from this checkout`);
    }
  });

  test('a health check on every long-running service; one-shot jobs are waited for by completion', () => {
    for (const [name, service] of services) {
      if (isOneShot(service) && (!sdcImage(service) || name === 'gateway-files')) {
        assert.equal(service.healthcheck?.disable, true, `${name}: a one-shot job says it has no health check`);
        continue;
      }
      if (name === 'pki-init') continue; // the CA ceremony: an sdc one-shot with its own profile (compose.test.ts)
      assert.notEqual(service.healthcheck?.disable, true, `${name} disables its health check`);
      assert.ok((service.healthcheck?.test?.length ?? 0) > 1, `${name} has no health check`);
      assert.notEqual(service.healthcheck?.test?.[0], 'NONE', name);
    }
  });

  test('start order by health: every dependency waits for healthy (or a one-shot job\'s success), never only "started"', () => {
    let edges = 0;
    for (const [name, service] of services) {
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        const target = compose.services[dependency];
        assert.ok(target, `${name} depends on unknown ${dependency}`);
        const expected = isOneShot(target) ? 'service_completed_successfully' : 'service_healthy';
        assert.equal(condition, expected, `${name} -> ${dependency}`);
        if (expected === 'service_healthy') assert.ok(target.healthcheck?.test, `${dependency} is waited for but has no health check`);
        // A service that is always started never waits for an opt-in one (docker compose up would refuse).
        if (service.profiles === undefined) assert.equal(target.profiles, undefined, `${name} -> opt-in ${dependency}`);
        edges += 1;
      }
    }
    assert.ok(edges >= 8, `${edges} dependencies`);
  });

  test('every sdc command line in compose.yaml and its scripts parses with the CLI\'s own option parser', async () => {
    const lines: Array<{ where: string; argv: string[] }> = [];
    for (const [name, service] of services) {
      if (sdcImage(service) && service.command !== undefined && service.entrypoint === undefined) lines.push({ where: name, argv: service.command });
    }
    // The scripts the sdc image runs as entrypoints: `node /opt/sdc/bin/sdc.js ...` lines (their
    // shell variables become placeholders; only the flags are checked).
    for (const script of ['pki-init.sh']) {
      for (const match of readFileSync(join(root, 'deploy', script), 'utf8').matchAll(/^\s*node \/opt\/sdc\/bin\/sdc\.js (.+)$/gm)) {
        lines.push({ where: script, argv: match[1]!.split(/\s+/).map((w) => w.replace(/^"|"$/g, '').replace(/\$\{?\w+\}?/g, 'X')) });
      }
    }
    assert.ok(lines.length >= 4, lines.map((l) => l.where).join(', '));
    for (const { where, argv } of lines) {
      const { code, stderr } = await sdcParses(argv);
      assert.equal(code, 0, `${where}: sdc ${argv.join(' ')}: ${stderr}`);
    }
    // The check can fail: a flag the command does not have, and a command that does not exist.
    assert.equal((await sdcParses(['serve', '--dir=/data', '--api-prot=8080'])).code, 2);
    assert.equal((await sdcParses(['sim', '--real=https://x:1', '--agent=5'])).code, 2);
    assert.equal((await sdcParses(['gatway', '--dir=/data'])).code, 2);
  });

  test('MinIO: data in a volume on the internal network, root credentials from secret files, the bucket made by a one-shot job once MinIO is healthy', () => {
    const minio = compose.services.minio!;
    assert.deepEqual(minio.networks, ['backend']);
    assert.equal(minio.ports, undefined, 'no published port');
    assert.ok(minio.volumes?.some((v) => v.startsWith('minio-data:')));
    assert.deepEqual(minio.secrets, [{ source: 'minio_root_user', target: 'access_key' }, { source: 'minio_root_password', target: 'secret_key' }]);
    assert.equal(Object.keys(minio.environment ?? {}).filter((k) => /USER|PASSWORD|KEY/.test(k)).length, 0, 'no credential in the environment');
    const init = compose.services['minio-init']!;
    assert.equal(init.depends_on?.minio?.condition, 'service_healthy');
    assert.deepEqual(init.entrypoint, ['/bin/sh', '/minio-init.sh']);
    const script = readFileSync(join(root, 'deploy', 'minio-init.sh'), 'utf8');
    assert.match(script, /^mc mb --ignore-existing "sdc\/\$bucket"$/m);
    assert.match(script, /cat \/run\/secrets\/minio_root_password/);
    assert.equal(init.environment?.SDC_ARTIFACT_BUCKET, 'sdc-artifacts');
    for (const secret of ['minio_root_user', 'minio_root_password', 'admin_password']) assert.match(compose.secrets[secret]?.file ?? '', /^\.\/secrets\//, secret);
  });

  test('Toxiproxy: proxies in front of Redis, MariaDB and gw-1; the services reach the stores through them when told to', () => {
    const toxiproxy = compose.services.toxiproxy!;
    assert.deepEqual(toxiproxy.profiles, ['chaos']);
    assert.ok(toxiproxy.networks?.includes('backend'), 'it reaches the stores');
    const config = toxiproxy.command?.find((a) => a.startsWith('-config='))?.slice('-config='.length);
    const mount = toxiproxy.volumes?.find((v) => v.endsWith(`:${config}:ro`));
    assert.equal(mount, './deploy/toxiproxy.json:/config/toxiproxy.json:ro');
    const proxies = JSON.parse(readFileSync(join(root, 'deploy', 'toxiproxy.json'), 'utf8')) as Array<{ name: string; listen: string; upstream: string; enabled: boolean }>;
    const byName = Object.fromEntries(proxies.map((p) => [p.name, p]));
    assert.equal(byName.redis?.upstream, 'redis:6379');
    assert.equal(byName.mariadb?.upstream, 'mariadb:3306');
    assert.equal(byName['gateway-1']?.upstream, `control-plane:${option(compose.services['control-plane']!, 'gateway-port')[0]}`);
    for (const proxy of proxies) {
      assert.ok(compose.services[proxy.upstream.split(':')[0]!], `${proxy.name} -> ${proxy.upstream}`);
      assert.equal(proxy.enabled, true);
    }
    // By default the services use the stores directly; a chaos run points them at the proxies.
    const direct = compose.services['control-plane']!;
    assert.deepEqual([option(direct, 'redis')[0], option(direct, 'mysql')[0]], ['redis://redis:6379/0', 'mysql://sdc@mariadb:3306/sdc']);
    const port = (listen: string) => listen.slice(listen.lastIndexOf(':') + 1);
    const chaos = load({ ...exampleEnv, SDC_REDIS_ADDRESS: `toxiproxy:${port(byName.redis!.listen)}`, SDC_MYSQL_ADDRESS: `toxiproxy:${port(byName.mariadb!.listen)}` });
    for (const name of ['control-plane', 'gateway-2']) assert.equal(option(chaos.services[name]!, 'redis')[0], 'redis://toxiproxy:26379/0', name);
    assert.equal(option(chaos.services['control-plane']!, 'mysql')[0], 'mysql://sdc@toxiproxy:23306/sdc');
  });

  test('the fleet: sdc sim --real against the control plane\'s API with the deployment CA, the password from a secret file, after both gateways are healthy', () => {
    const fleet = compose.services.fleet!;
    const controlPlane = compose.services['control-plane']!;
    assert.deepEqual(fleet.profiles, ['fleet']);
    assert.equal(fleet.command?.[0], 'sim');
    assert.equal(option(fleet, 'real')[0], `https://control-plane:${option(controlPlane, 'api-port')[0]}`);
    assert.ok(option(controlPlane, 'server-name').includes('control-plane'), 'the API certificate names control-plane');
    assert.equal(option(fleet, 'ca')[0], '/data/pki/root-ca.pem');
    assert.ok(fleet.volumes?.includes('sdc-data:/data:ro'), 'the CA from the shared volume, read-only');
    assert.equal(option(fleet, 'agents')[0], '100');
    assert.equal(fleet.environment?.SDC_PASSWORD_FILE, '/run/secrets/admin_password');
    assert.ok(fleet.secrets?.includes('admin_password'));
    assert.equal(fleet.depends_on?.['control-plane']?.condition, 'service_healthy');
    assert.equal(fleet.depends_on?.['gateway-2']?.condition, 'service_healthy');
    // The advertised gateway addresses name the public host: inside the fleet container it is the Docker host.
    assert.deepEqual(fleet.extra_hosts, [`${exampleEnv.SDC_PUBLIC_HOST}:host-gateway`]);
    assert.equal(option(load({ ...exampleEnv, SDC_FLEET_AGENTS: '2000' }).services.fleet!, 'agents')[0], '2000');
  });

  test('SDC_PASSWORD_FILE: the first line of the file is the password; a missing or empty file is one CLI_INPUT line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sdc-pw-'));
    try {
      const file = join(dir, 'admin_password');
      await writeFile(file, 'correct horse battery staple\nignored\n', { mode: 0o600 });
      const io = (env: Record<string, string>): CliIo => ({ stdout: () => undefined, stderr: () => undefined, readStdin: async () => '', env });
      const args = { values: {}, positionals: [] };
      assert.equal(await readPasswordOption(args, io({ SDC_PASSWORD_FILE: file })), 'correct horse battery staple');
      assert.equal(await readPasswordOption(args, io({ SDC_PASSWORD_FILE: file, SDC_PASSWORD: 'from env' })), 'from env');
      await assert.rejects(readPasswordOption(args, io({ SDC_PASSWORD_FILE: join(dir, 'none') })), /CLI_INPUT|cannot read SDC_PASSWORD_FILE/);
      await writeFile(file, '\n');
      await assert.rejects(readPasswordOption(args, io({ SDC_PASSWORD_FILE: file })), /has no password on its first line/);
      await assert.rejects(readPasswordOption(args, io({})), /SDC_PASSWORD_FILE/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
