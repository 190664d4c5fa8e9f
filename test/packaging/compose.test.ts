// compose.yaml (issue 9, packaging), read: no Docker engine runs on the development machines. The
// file against the Compose Specification's schema (vendored, compose-spec.NOTICE.md), then what
// the issue asks of it: the root CA key out of the services' volume, no default database password,
// no secret on a command line, health checks on /readyz and a gateway's port, a TLS certificate
// per process, and gateway addresses that devices outside the compose network can reach.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import Ajv2019 from 'ajv/dist/2019.js';
import { parse } from 'yaml';
import { main } from '../../cli/main.js';
import type { CliIo } from '../../cli/command.js';
import { composeText, interpolate, repositoryRoot } from './compose-support.js';

const root = repositoryRoot;


interface Service {
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  networks?: string[];
  secrets?: string[];
  profiles?: string[];
  user?: string;
  restart?: string;
  network_mode?: string;
  healthcheck?: { test?: string[]; disable?: boolean };
  depends_on?: Record<string, { condition: string }>;
  image?: string;
  build?: unknown;
  read_only?: boolean;
  cap_drop?: string[];
  cap_add?: string[];
  security_opt?: string[];
  tmpfs?: string[];
  privileged?: boolean;
}
interface ComposeFile { services: Record<string, Service>; secrets: Record<string, { file?: string }>; networks: Record<string, { internal?: boolean }>; volumes: Record<string, unknown> }

const publicEnv = { SDC_PUBLIC_HOST: 'devices.example.test' };
function load(env: Record<string, string> = publicEnv): ComposeFile {
  return parse(interpolate(composeText, env), { merge: true }) as ComposeFile;
}
const compose = load();
const services = compose.services;
/** The services `docker compose up` starts (a profile makes a service opt-in). */
const online = Object.entries(services).filter(([, s]) => s.profiles === undefined);
/** The long-running sdc processes (a one-shot job such as gateway-files says restart "no"). */
const sdcServices = online.filter(([, s]) => s.image?.includes('secure-device-control') === true && s.restart !== 'no');

function option(service: Service, name: string): string[] {
  return (service.command ?? []).filter((a) => a.startsWith(`--${name}=`)).map((a) => a.slice(name.length + 3));
}

describe('compose.yaml', () => {
  test('is valid against the Compose Specification schema', () => {
    const schema = JSON.parse(readFileSync(join(root, 'test', 'packaging', 'compose-spec.schema.json'), 'utf8')) as object;
    // The 2021 schema names its subschemas with draft-04 `id` (an annotation here) and declares
    // formats (duration, ports) that no validator ships: those values are not format-checked.
    const ajv = new Ajv2019.default({ strict: false, allErrors: true, validateSchema: false, logger: false });
    ajv.removeKeyword('id');
    ajv.addKeyword({ keyword: 'id', schemaType: 'string' });
    const validate = ajv.compile(schema);
    const uninterpolated = parse(composeText, { merge: true }) as unknown;
    assert.equal(validate(uninterpolated), true, JSON.stringify(validate.errors));
    assert.equal(validate(compose), true, JSON.stringify(validate.errors));
    // The check can fail: an unknown service key is refused.
    assert.equal(validate({ services: { x: { image: 'x', bogus: true } } }), false);
  });

  test('needs SDC_PUBLIC_HOST: without it interpolation stops with a message saying what to set', () => {
    assert.throws(() => load({}), /required variable SDC_PUBLIC_HOST is missing: set SDC_PUBLIC_HOST in \.env/);
  });

  test('the root CA key stays out of every volume an online service mounts', () => {
    const pkiInit = services['pki-init'];
    assert.ok(pkiInit, 'a pki-init service');
    assert.deepEqual(pkiInit.profiles, ['setup'], 'pki-init is opt-in, not part of docker compose up');
    assert.equal(pkiInit.network_mode, 'none');
    assert.ok(pkiInit.volumes?.includes('./offline-ca:/offline'), 'the CA is created in the host folder ./offline-ca');
    for (const [name, service] of online) {
      for (const volume of service.volumes ?? []) assert.doesNotMatch(volume, /offline/, `${name} mounts ${volume}`);
    }
    // What pki-init copies into the services' volume: the certificates, the intermediate key and the serving CA's key (browsers' chain, decision 0006) only.
    const script = readFileSync(join(root, 'deploy', 'pki-init.sh'), 'utf8');
    const copied = [...script.matchAll(/^install -m \d+ .*"\$offline\/pki\/([^"]+)" "\$online\//gm)].map((m) => m[1]);
    assert.deepEqual(copied.sort(), ['intermediate-ca.key', 'intermediate-ca.pem', 'root-ca.pem', 'serving-ca.key', 'serving-ca.pem']);
    // The serving CA is constrained to the names the API is reached by.
    assert.match(script, /pki init --dir "\$offline" --serving-name control-plane --serving-name "\$SDC_PUBLIC_HOST"/);
    assert.equal(pkiInit.environment?.SDC_PUBLIC_HOST, 'devices.example.test', 'pki-init is given the public host (interpolated from the test .env)');
    assert.deepEqual([...script.matchAll(/^(?:cp|mv|install|ln)\b.*root-ca\.key/gm)], [], 'the root key is never copied');
  });

  test('no default database password: MariaDB and the services read the db_password secret file', () => {
    // No password variable at all (so none with a default); a password *file* path may have one.
    assert.doesNotMatch(composeText, /\$\{[A-Z_]*PASSWORD\b|change-me/);
    const mariadb = services.mariadb!;
    assert.equal(mariadb.environment?.MARIADB_PASSWORD, undefined);
    assert.equal(mariadb.environment?.MARIADB_PASSWORD_FILE, '/run/secrets/db_password');
    assert.ok(mariadb.secrets?.includes('db_password'));
    assert.ok(compose.secrets.db_password?.file, 'the secret is a file the operator creates');
    const controlPlane = services['control-plane']!;
    assert.equal(controlPlane.environment?.SDC_MYSQL_PASSWORD_FILE, '/run/secrets/db_password');
    assert.ok(controlPlane.secrets?.includes('db_password'));
  });

  test('Redis has a password: the redis_password secret, given to redis-server through a tmpfs config file (never its argv) and to the sdc services as SDC_REDIS_PASSWORD_FILE', () => {
    const redis = services.redis!;
    assert.ok(redis.secrets?.includes('redis_password'));
    assert.match(compose.secrets.redis_password?.file ?? '', /^\.\/secrets\//, 'a file the operator creates');
    assert.deepEqual(redis.entrypoint, ['/bin/sh', '/redis-start.sh']);
    assert.ok(redis.volumes?.includes('./deploy/redis-start.sh:/redis-start.sh:ro'));
    assert.ok(redis.tmpfs?.includes('/tmp'), 'the config file lives on a tmpfs');
    const script = readFileSync(join(root, 'deploy', 'redis-start.sh'), 'utf8');
    const commands = script.split('\n').filter((l) => !l.trimStart().startsWith('#'));
    assert.match(script, /^config=\/tmp\//m);
    assert.match(script, /^printf 'requirepass "%s"\\n' "\$password" > "\$config"$/m);
    const exec = commands.filter((l) => l.startsWith('exec '));
    assert.deepEqual(exec, ['exec docker-entrypoint.sh redis-server --include "$config" --appendonly yes'], 'the password is not an argument');
    assert.ok(commands.indexOf('umask 077') < commands.findIndex((l) => l.startsWith('printf ')), 'the config is written 0600');
    // The health check authenticates from the file (an unauthenticated PING answers NOAUTH, exit 0).
    assert.equal(redis.healthcheck?.test?.[0], 'CMD-SHELL');
    assert.match(redis.healthcheck?.test?.[1] ?? '', /^REDISCLI_AUTH="\$\(head -n 1 \/run\/secrets\/redis_password\)" redis-cli ping \| grep -qx PONG$/);
    const redisClients = Object.entries(services).filter(([, s]) => option(s, 'redis').length > 0);
    assert.deepEqual(redisClients.map(([name]) => name).sort(), ['control-plane', 'gateway-2']);
    for (const [name, service] of redisClients) {
      assert.equal(service.environment?.SDC_REDIS_PASSWORD_FILE, '/run/secrets/redis_password', name);
      assert.ok(service.secrets?.includes('redis_password'), name);
      assert.doesNotMatch(option(service, 'redis')[0]!, /@/, `${name}: no user or password in --redis`);
    }
  });

  test('no secret on a command line: no password in a URL, no secret-looking flag or variable', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const argument of [...(service.command ?? []), ...(service.entrypoint ?? [])]) {
        assert.doesNotMatch(argument, /:\/\/[^/@\s]*:[^/@\s]*@/, `${name}: a URL with a password: ${argument}`);
        assert.doesNotMatch(argument, /password|secret|passphrase|token/i, `${name}: ${argument}`);
      }
    }
    // The password reaches MySQL from the file: sdc serve takes it from $SDC_MYSQL_PASSWORD_FILE.
    assert.deepEqual(option(services['control-plane']!, 'mysql'), ['mysql://sdc@mariadb:3306/sdc']);
  });

  test('health checks: the control plane on /readyz of its API port, gateway-2 on its port; gateway-2 waits for a healthy control plane', () => {
    const controlPlane = services['control-plane']!;
    const gateway2 = services['gateway-2']!;
    for (const service of [controlPlane, gateway2]) assert.deepEqual(service.healthcheck?.test, ['CMD', 'node', '/opt/sdc/deploy/healthcheck.mjs']);
    assert.equal(controlPlane.environment?.SDC_HEALTHCHECK_URL, `https://localhost:${option(controlPlane, 'api-port')[0]}/readyz`);
    assert.equal(gateway2.environment?.SDC_HEALTHCHECK_URL, `tcp://localhost:${option(gateway2, 'gateway-port')[0]}`);
    assert.equal(gateway2.depends_on?.['control-plane']?.condition, 'service_healthy');
    assert.equal(controlPlane.depends_on?.mariadb?.condition, 'service_healthy');
    assert.equal(controlPlane.depends_on?.redis?.condition, 'service_healthy');
  });

  test('gateway-2 fetches the CRL from the control plane (--crl-url): its copy from gateway-files is never refreshed (decision 0021)', () => {
    const controlPlane = services['control-plane']!;
    const gateway2 = services['gateway-2']!;
    const [url] = option(gateway2, 'crl-url');
    assert.ok(url !== undefined, 'gateway-2 has --crl-url');
    const parsed = new URL(url);
    assert.equal(parsed.protocol, 'https:');
    assert.equal(parsed.pathname, '/v1/crl');
    // The host is the control plane's service name, on its API port, and in its certificate.
    assert.equal(parsed.hostname, 'control-plane');
    assert.equal(parsed.port, option(controlPlane, 'api-port')[0]);
    assert.ok(option(controlPlane, 'server-name').includes('control-plane'), 'the API certificate names control-plane');
    assert.ok((gateway2.networks ?? []).some((network) => (controlPlane.networks ?? []).includes(network)), 'gateway-2 reaches the control plane');
    // The CA it checks the API's certificate against is among its files.
    assert.match(readFileSync(join(root, 'deploy', 'gateway-files.sh'), 'utf8'), /install -m 644 \/data\/pki\/root-ca\.pem [^\n]*\/gateway\/pki\//);
    // The control plane's own gateway (gw-1) reads the file that process writes: no copy, no URL.
    assert.deepEqual(option(controlPlane, 'crl-url'), []);
    // Every gateway-only process without the control plane's volume fetches.
    for (const [name, service] of sdcServices.filter(([, s]) => s.command?.[0] === 'gateway')) {
      assert.ok(!(service.volumes ?? []).some((volume) => volume.startsWith('sdc-data:')), `${name} has its own files`);
      assert.equal(option(service, 'crl-url').length, 1, `${name} has --crl-url`);
    }
  });

  test('each sdc process has its own TLS certificate in the shared data volume', () => {
    assert.ok(sdcServices.length >= 2);
    const tlsNames = sdcServices.map(([, s]) => (s.command![0] === 'serve' ? 'server' : `gateway-${option(s, 'gateway-id')[0]}`));
    assert.equal(new Set(tlsNames).size, tlsNames.length, tlsNames.join(', '));
    const gatewayIds = sdcServices.map(([, s]) => option(s, 'gateway-id')[0]);
    assert.equal(new Set(gatewayIds).size, gatewayIds.length, gatewayIds.join(', '));
  });

  test('gateway addresses given to devices: the public host and the published port of each gateway process', () => {
    const advertised = option(services['control-plane']!, 'advertise-gateway');
    const expected = sdcServices.map(([, s]) => {
      const containerPort = option(s, 'gateway-port')[0]!;
      const published = (s.ports ?? []).map((p) => p.split(':')).find((parts) => parts.at(-1) === containerPort);
      assert.ok(published, `gateway port ${containerPort} is published`);
      assert.ok(option(s, 'server-name').includes(publicEnv.SDC_PUBLIC_HOST), 'its certificate covers the public host');
      return `wss://${publicEnv.SDC_PUBLIC_HOST}:${published.at(-2)}/v1/agent`;
    });
    assert.deepEqual(advertised.sort(), expected.sort());
    // Another published port moves the advertised address with it.
    const moved = load({ ...publicEnv, SDC_GATEWAY_2_PORT: '9444' });
    assert.ok(option(moved.services['control-plane']!, 'advertise-gateway').includes(`wss://${publicEnv.SDC_PUBLIC_HOST}:9444/v1/agent`));
  });

  test('hardening: every service drops all capabilities and gains none by setuid; read-only root filesystems with tmpfs where they write', () => {
    // The capabilities an image's entrypoint needs, and why; nothing else is ever added back.
    const capabilitiesAllowed: Record<string, string[]> = {
      'pki-init': ['CHOWN', 'DAC_OVERRIDE', 'FOWNER'], // root owning the two CA folders, writing into the operator's ./offline-ca
      mariadb: ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'SETGID', 'SETUID'], // the image's entrypoint owns its directories, then gosu
      redis: ['CHOWN', 'DAC_OVERRIDE', 'SETGID', 'SETUID'], // reading the operator's secret file, owning the config and /data, then gosu
    };
    // Services whose root filesystem stays writable, and why (each says so in compose.yaml).
    const writableRoot: Record<string, string> = { minio: 'MinIO writes its configuration under $HOME', 'minio-init': 'mc writes its configuration under $HOME' };
    for (const [name, service] of Object.entries(services)) {
      assert.deepEqual(service.cap_drop, ['ALL'], `${name}: cap_drop`);
      assert.ok(service.security_opt?.includes('no-new-privileges:true'), `${name}: no-new-privileges`);
      assert.notEqual(service.privileged, true, name);
      assert.deepEqual(service.cap_add ?? [], capabilitiesAllowed[name] ?? [], `${name}: cap_add`);
      if (writableRoot[name] === undefined) assert.equal(service.read_only, true, `${name}: read_only`);
      else assert.notEqual(service.read_only, true, `${name} is listed as writable: remove it from the list`);
    }
    for (const [name, service] of Object.entries(services).filter(([, s]) => s.image?.includes('secure-device-control') === true)) {
      assert.ok(service.tmpfs?.includes('/tmp'), `${name}: /tmp is a tmpfs (the fleet writes its results there)`);
      const user = service.user?.split(':')[0];
      assert.ok(user === undefined || name === 'pki-init', `${name} runs as the image's user, not ${service.user}`);
    }
    assert.ok(services.mariadb!.tmpfs?.includes('/run/mysqld'), 'MariaDB\'s socket directory');
    // The check can fail: the merge key carries the hardening; a service without it is caught.
    const bare = parse(interpolate(composeText.replace(/^ {4}<<: \*hardened\n {4}image: redis:7$/m, '    image: redis:7'), publicEnv), { merge: true }) as ComposeFile;
    assert.equal(bare.services.redis!.security_opt, undefined);
  });

  test('the stores publish no port and sit on an internal network', () => {
    assert.equal(compose.networks.backend?.internal, true);
    for (const name of ['mariadb', 'redis']) {
      assert.equal(services[name]!.ports, undefined, name);
      assert.deepEqual(services[name]!.networks, ['backend'], name);
    }
  });

  test('deploy/compose.env.example sets every variable compose.yaml requires, and no secret', () => {
    const example = readFileSync(join(root, 'deploy', 'compose.env.example'), 'utf8');
    const settings = Object.fromEntries(example.split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    const required = [...composeText.matchAll(/\$\{([A-Z_]+):?\?/g)].map((m) => m[1]!);
    for (const name of required) assert.ok(settings[name], `${name} in compose.env.example`);
    assert.doesNotThrow(() => load(settings));
    for (const name of Object.keys(settings)) assert.doesNotMatch(name, /PASSWORD$|SECRET|PASSPHRASE/, name);
  });

  test('sdc gateway refuses a gateway id that cannot name its TLS files', async () => {
    const err: string[] = [];
    const io: CliIo = { stdout: () => undefined, stderr: (t) => { err.push(t); }, readStdin: async () => '', env: {} };
    const code = await main(['gateway', '--dir', '/nonexistent', '--redis', 'redis://127.0.0.1:6379', '--gateway-id', '../gw'], io);
    assert.equal(code, 2);
    assert.match(err.join(''), /^sdc: CLI_USAGE: --gateway-id \.\.\/gw is not 1 to 64 of/);
  });
});
