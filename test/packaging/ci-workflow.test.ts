// .github/workflows/ci.yml (issue 15, 12.3): documentation only, since no GitHub runner executes it
// here. Checked: it parses as YAML, its test job runs .ci/run (our CI's one entry point) with the
// stores .ci/run expects, the native job builds the kernel library with the hardening flags and
// checks them in the binary, the image job builds the Dockerfile and scans it with Trivy, and
// every action is pinned to a version.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const root = fileURLToPath(new URL('../../', import.meta.url));
const text = readFileSync(join(root, '.github', 'workflows', 'ci.yml'), 'utf8');

interface Step { uses?: string; run?: string; with?: Record<string, string>; env?: Record<string, string> }
interface Job { 'runs-on': string; 'timeout-minutes'?: number; steps: Step[]; services?: Record<string, { image: string; ports?: string[] }> }
const workflow = parse(text) as { name: string; on: Record<string, unknown>; permissions: Record<string, string>; jobs: Record<string, Job> };
const steps = (job: string) => workflow.jobs[job]?.steps ?? [];
const runs = (job: string) => steps(job).map((s) => s.run ?? '').join('\n');

describe('.github/workflows/ci.yml', () => {
  test('parses, runs on push and pull requests, reads the repository only', () => {
    assert.equal(workflow.name, 'ci');
    assert.ok('push' in workflow.on && 'pull_request' in workflow.on, JSON.stringify(workflow.on));
    assert.deepEqual(workflow.permissions, { contents: 'read' });
    assert.deepEqual(Object.keys(workflow.jobs).sort(), ['image', 'native', 'test']);
    for (const job of Object.values(workflow.jobs)) assert.ok((job['timeout-minutes'] ?? 0) > 0 && job['timeout-minutes']! <= 90);
  });

  test('the test job runs .ci/run, with Redis and MariaDB where .ci/run looks for them', () => {
    assert.match(runs('test'), /bash \.ci\/run$/m);
    assert.ok(existsSync(join(root, '.ci', 'run')));
    const ciRun = readFileSync(join(root, '.ci', 'run'), 'utf8');
    const services = workflow.jobs.test!.services!;
    assert.deepEqual(services.redis?.ports, ['6379:6379']);
    assert.deepEqual(services.mariadb?.ports, ['3306:3306']);
    assert.match(ciRun, /redis-cli -h 127\.0\.0\.1 -p 6379 ping/);
    assert.match(ciRun, /mariadb -uroot -h 127\.0\.0\.1/);
    assert.match(runs('test'), /redis-tools mariadb-client/, 'the clients .ci/run probes with');
    const node = steps('test').find((s) => s.uses?.startsWith('actions/setup-node@'));
    assert.equal(String(node?.with?.['node-version']), '20');
  });

  test('the native job builds libsdc_kernel.so with hardening flags and checks them in the binary', () => {
    const build = steps('native').find((s) => s.env?.CFLAGS !== undefined)!;
    for (const flag of ['-D_FORTIFY_SOURCE=3', '-fstack-protector-strong', '-fstack-clash-protection', '-fcf-protection=full']) assert.ok(build.env!.CFLAGS!.includes(flag), flag);
    assert.match(build.env!.LDFLAGS!, /-z,relro,-z,now/);
    assert.match(build.run!, /cmake -S kernel\/native -B build\/native/);
    assert.ok(existsSync(join(root, 'kernel', 'native', 'CMakeLists.txt')));
    for (const check of ['BIND_NOW', 'GNU_RELRO', '__stack_chk_fail', '_chk@']) assert.ok(runs('native').includes(check), check);
  });

  test('the image job builds the Dockerfile and fails on fixable HIGH or CRITICAL findings', () => {
    assert.match(runs('image'), /docker build -t secure-device-control:ci \./);
    const trivy = steps('image').find((s) => s.uses?.startsWith('aquasecurity/trivy-action@'));
    assert.equal(trivy?.with?.['image-ref'], 'secure-device-control:ci');
    assert.equal(trivy?.with?.['exit-code'], '1');
    assert.equal(trivy?.with?.severity, 'HIGH,CRITICAL');
  });

  test('every action is pinned to a version', () => {
    const uses = Object.values(workflow.jobs).flatMap((job) => job.steps.map((s) => s.uses).filter((u): u is string => u !== undefined));
    assert.ok(uses.length >= 4);
    for (const action of uses) assert.match(action, /^[\w.-]+\/[\w.-]+@(v\d+|\d+\.\d+\.\d+|[0-9a-f]{40})$/, action);
  });
});
