// The Dockerfile, read (no Docker engine on the development machines, so no image is built here):
// multi-stage with the compilers in the build stage only, a runtime stage that copies the build's
// output and runs as a user other than root, a HEALTHCHECK on /healthz, EXPOSE of the ports that
// `sdc serve` listens on by default, and the files it copies where the code looks for them.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { nativeArtifacts } from '../../kernel/native/build.js';
import { main } from '../../cli/main.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

interface Instruction { keyword: string; args: string }
interface Stage { from: string; name: string | undefined; instructions: Instruction[] }

/** Instructions of a Dockerfile: comments dropped, `\` continuations joined, keywords upper-cased. */
function parseDockerfile(text: string): Instruction[] {
  const logical: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    logical.push(pending + line);
    pending = '';
  }
  return logical.map((line) => {
    const [keyword = '', ...rest] = line.split(/\s+/);
    return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
  });
}

function stages(instructions: Instruction[]): Stage[] {
  const result: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const match = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      assert.ok(match, `FROM ${instruction.args}`);
      result.push({ from: match[1]!, name: match[2], instructions: [] });
    } else if (result.length > 0) {
      result.at(-1)!.instructions.push(instruction);
    }
  }
  return result;
}

/** The JSON (exec) form of CMD, ENTRYPOINT or HEALTHCHECK CMD. */
function execForm(args: string): string[] {
  const json = args.slice(args.indexOf('['));
  const parsed = JSON.parse(json) as unknown;
  assert.ok(Array.isArray(parsed) && parsed.every((a) => typeof a === 'string'), args);
  return parsed;
}

const text = readFileSync(join(root, 'Dockerfile'), 'utf8');
const all = stages(parseDockerfile(text));
const runtime = all.at(-1)!;
const build = all.find((s) => s.name === 'build');
const of = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword);
/** Packages that compile: in the build stage only. */
const compilerPackages = /\b(gcc|g\+\+|cmake|make|clang|libc6-dev|[a-z0-9.+-]+-dev|build-essential)\b/;

describe('Dockerfile', () => {
  test('the parser reads continuations and stages (what the checks below rely on)', () => {
    const parsed = parseDockerfile('FROM a AS one\n# note\nRUN x \\\n  && y\nFROM b\nUSER 1000\n');
    assert.deepEqual(parsed, [{ keyword: 'FROM', args: 'a AS one' }, { keyword: 'RUN', args: 'x && y' }, { keyword: 'FROM', args: 'b' }, { keyword: 'USER', args: '1000' }]);
    assert.deepEqual(stages(parsed).map((s) => [s.from, s.name]), [['a', 'one'], ['b', undefined]]);
  });

  test('multi-stage: a build stage with the compilers, a runtime stage without them', () => {
    assert.ok(all.length >= 2, `stages: ${all.length}`);
    assert.ok(build !== undefined, 'a stage named build');
    assert.notEqual(runtime, build);
    assert.ok(of(build, 'RUN').some((i) => /\bgcc\b/.test(i.args) && /\bcmake\b/.test(i.args)), 'the build stage installs gcc and cmake');
    assert.ok(of(build, 'RUN').some((i) => /npm run build/.test(i.args)), 'the build stage compiles dist/');
    assert.ok(of(build, 'RUN').some((i) => /npm prune --omit=dev/.test(i.args)), 'the build stage drops the dev dependencies');
    for (const run of of(runtime, 'RUN')) {
      const installs = /apt-get install[^&;]*/.exec(run.args)?.[0] ?? '';
      assert.doesNotMatch(installs, compilerPackages, `runtime stage: ${run.args}`);
      assert.doesNotMatch(run.args, /\bnpm (ci|install|run build)\b/, `runtime stage: ${run.args}`);
    }
  });

  test('the runtime stage copies the build output only, never the source tree', () => {
    const copies = of(runtime, 'COPY');
    assert.ok(copies.length > 0);
    for (const copy of copies) assert.match(copy.args, /^--from=build\s/, `COPY ${copy.args}`);
    const sources = copies.map((c) => c.args.split(/\s+/)[1]!);
    for (const wanted of ['/src/dist', '/src/bin', '/src/deploy', '/src/node_modules']) assert.ok(sources.includes(wanted), `copies ${wanted}`);
    assert.equal(of(runtime, 'ADD').length, 0);
  });

  test('the native kernel library lands where kernel/native/build.ts looks for it', () => {
    const libraryRelative = relative(root, nativeArtifacts('release').libraryPath);
    const copy = of(runtime, 'COPY').find((c) => c.args.includes('libsdc_kernel.so'));
    assert.ok(copy, 'copies the native library');
    const [, from, to] = copy.args.split(/\s+/);
    assert.equal(from, `/src/${libraryRelative}`);
    assert.equal(to, `./${libraryRelative}`);
    assert.ok(build !== undefined, 'a stage named build');
    assert.ok(of(build, 'RUN').some((i) => i.args.includes('dist/kernel/native/build-cli.js')), 'the build stage builds it');
  });

  test('runs as a numeric user and group other than root, set before the entry point', () => {
    const users = of(runtime, 'USER');
    assert.ok(users.length > 0, 'USER in the runtime stage');
    const [user = '', group = ''] = users.at(-1)!.args.split(':');
    // Numeric: Kubernetes' runAsNonRoot cannot verify a user name (deploy/k8s runs as 1000).
    assert.match(user, /^[1-9]\d*$/, `USER ${user}`);
    assert.match(group, /^[1-9]\d*$/, `group ${group}`);
    const index = (i: Instruction) => runtime.instructions.indexOf(i);
    assert.ok(index(users.at(-1)!) < index(of(runtime, 'ENTRYPOINT')[0]!), 'USER before ENTRYPOINT');
    assert.deepEqual(execForm(of(runtime, 'ENTRYPOINT')[0]!.args), ['node', '/opt/sdc/bin/sdc.js']);
  });

  test('hardened runtime: no package manager left, setuid bits stripped, no secret in an ARG or ENV', () => {
    const runs = of(runtime, 'RUN').map((i) => i.args).join(' && ');
    for (const path of ['/usr/local/lib/node_modules/npm', '/usr/local/bin/npm', '/usr/local/bin/npx', '/usr/local/bin/corepack']) {
      assert.ok(runs.includes(path), `the runtime stage removes ${path}`);
    }
    assert.match(runs, /find \/ -xdev -type f -perm \/6000 -exec chmod a-s \{\} \+/, 'setuid and setgid bits stripped');
    // Build arguments and environment end up in the image's history and configuration for anyone who pulls it.
    const secretName = /PASSWORD|PASSPHRASE|SECRET|TOKEN|_KEY\b|CREDENTIAL/i;
    for (const stage of all) {
      for (const instruction of stage.instructions.filter((i) => i.keyword === 'ARG' || i.keyword === 'ENV')) {
        assert.doesNotMatch(instruction.args, secretName, `${instruction.keyword} ${instruction.args}`);
      }
      for (const instruction of stage.instructions.filter((i) => i.keyword === 'COPY')) {
        assert.doesNotMatch(instruction.args, /secrets|offline-ca|\.key\b|\.env\b/, `COPY ${instruction.args}`);
      }
    }
    assert.match('ENV SDC_ROOT_KEY_PASSPHRASE=x', secretName, 'the check can fail');
  });

  test('HEALTHCHECK runs the probe script, whose default target is the API /healthz', () => {
    const [healthcheck] = of(runtime, 'HEALTHCHECK');
    assert.ok(healthcheck, 'HEALTHCHECK in the runtime stage');
    assert.match(healthcheck.args, /--timeout=\d+s/);
    const command = execForm(healthcheck.args);
    assert.deepEqual(command, ['node', '/opt/sdc/deploy/healthcheck.mjs']);
    const script = readFileSync(join(root, 'deploy', 'healthcheck.mjs'), 'utf8');
    assert.match(script, /\?\? 'https:\/\/localhost:8080\/healthz'/);
  });

  test('EXPOSE names the API and gateway ports that sdc serve listens on by default', async () => {
    const exposed = of(runtime, 'EXPOSE').flatMap((i) => i.args.split(/\s+/)).map((p) => p.replace(/\/tcp$/, ''));
    const help: string[] = [];
    const code = await main(['serve', '--help'], { stdout: (t) => { help.push(t); }, stderr: () => undefined, readStdin: async () => '', env: {} });
    assert.equal(code, 0);
    const apiPort = /--api-port P\s+.*default (\d+)/.exec(help.join(''))?.[1];
    const gatewayPort = /--gateway-port G\s+.*default (\d+)/.exec(help.join(''))?.[1];
    assert.ok(apiPort && gatewayPort, help.join(''));
    assert.deepEqual(exposed.sort(), [apiPort, gatewayPort].sort());
  });

  test('.dockerignore keeps out the host build, keys, data, the offline CA and the secrets', () => {
    const patterns = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    for (const pattern of ['dist', 'node_modules', 'offline-ca', 'secrets', '.env', '**/*.key', 'data']) assert.ok(patterns.includes(pattern), pattern);
    for (const copied of ['deploy/healthcheck.mjs', 'deploy/pki-init.sh', 'scripts/build.mjs', 'tsconfig.build.json']) assert.ok(existsSync(join(root, copied)), copied);
  });
});
