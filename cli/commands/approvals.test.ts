import assert from 'node:assert/strict';
import { chmod, lstat, mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SdcError } from '../../core/errors/index.js';
import { nobleSha256 } from '../../core/crypto/sha256-noble.js';
import { approvalSubjectHash, type ApprovalSubject } from '../../core/protocol/approvals.js';
import type { RolloutResumeSubject } from '../../core/ota/rollout-resume-approval.js';
import { checkedRolloutSubject, checkedSubject, describeResumeSubject, loadOrCreateSigningKey, registerSigningKey, signingKeyPath, type PendingCommandView, type PendingRolloutView } from './approvals.js';
import { shownText } from '../shown-text.js';

/**
 * The approver's side in the CLI: the approval key is created once, owner-only, and reused; the
 * CLI refuses to sign when the subject the server shows is not the command it shows, or when the
 * server's hash is not the subject's. (The routes and the flow: server/control-plane/approvals.test.ts.)
 */

test('the approval key is created 0600 in a 0700 directory beside the login, then reused', async () => {
  const home = await mkdtemp(join(tmpdir(), 'sdc-approval-key-'));
  try {
    const env = { XDG_CONFIG_HOME: home };
    const first = await loadOrCreateSigningKey(env, 'ap1');
    assert.equal(first.created, true);
    assert.equal(first.path, signingKeyPath(env, 'ap1'));
    assert.equal((await stat(first.path)).mode & 0o777, 0o600);
    assert.equal((await stat(join(home, 'sdc'))).mode & 0o777, 0o700);
    const again = await loadOrCreateSigningKey(env, 'ap1');
    assert.equal(again.created, false);
    assert.deepEqual(again.seed, first.seed);
    assert.notDeepEqual((await loadOrCreateSigningKey(env, 'ap2')).seed, first.seed, 'one key per user name');
  } finally {
    await rm(home, { recursive: true, force: true });
  }
});

// Review h12: any read error was taken for "no key" and a new key replaced the approver's registered one.
test('an existing approval key file that cannot be read is refused, never replaced; two processes creating it at once share one key', async () => {
  const home = await mkdtemp(join(tmpdir(), 'sdc-approval-key-'));
  try {
    const env = { XDG_CONFIG_HOME: home };
    const path = signingKeyPath(env, 'ap1');
    await mkdir(join(home, 'sdc'), { recursive: true, mode: 0o700 });
    // A link to itself: reading fails with ELOOP (root reads a 0000 file, so this is the case every user can make).
    await symlink(path, path);
    await assert.rejects(loadOrCreateSigningKey(env, 'ap1'), (e) => SdcError.is(e, 'CLI_INPUT') && e.details['errno'] === 'ELOOP');
    assert.ok((await lstat(path)).isSymbolicLink(), 'left as it was');
    await rm(path);
    if (process.getuid?.() !== 0) {
      await writeFile(path, '{"name":"ap1","seed":"x"}\n', { mode: 0o600 });
      await chmod(path, 0o000);
      await assert.rejects(loadOrCreateSigningKey(env, 'ap1'), (e) => SdcError.is(e, 'CLI_INPUT') && e.details['errno'] === 'EACCES');
      await chmod(path, 0o600);
      await rm(path);
    }
    const [a, b] = await Promise.all([loadOrCreateSigningKey(env, 'ap1'), loadOrCreateSigningKey(env, 'ap1')]);
    assert.deepEqual(a.seed, b.seed);
    assert.deepEqual([a.created, b.created].sort(), [false, true]);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
});

test('nothing is signed when the shown subject or its hash does not match the command', () => {
  const subject: ApprovalSubject = { id: 'c_1', device_id: 'dev-1', opcode: 'EXEC_LOCK_SCREEN', args: {}, expires_at: 5_000, issuer: 'cp', requested_by: 'req' };
  const command: PendingCommandView = {
    id: 'c_1', device_id: 'dev-1', opcode: 'EXEC_LOCK_SCREEN', args: {}, state: 'pending_approval', expires_at_ms: 5_000, created_by: 'req',
    approval: { rule_id: 'r', count: 2, roles: ['approver'], subject, command_sha256: approvalSubjectHash(subject, nobleSha256) },
  };
  assert.equal(checkedSubject(command).sha256, command.approval!.command_sha256);
  const refused = (view: PendingCommandView, code: string) => assert.throws(() => checkedSubject(view), (e) => SdcError.is(e) && e.code === code);
  refused({ ...command, args: { x: 1 } }, 'APPROVAL_STATEMENT_MISMATCH');
  refused({ ...command, created_by: 'ap1' }, 'APPROVAL_STATEMENT_MISMATCH');
  refused({ ...command, approval: { ...command.approval!, command_sha256: '0'.repeat(64) } }, 'APPROVAL_STATEMENT_MISMATCH');
  refused({ ...command, state: 'queued' }, 'APPROVAL_NOT_PENDING');
  // The server's state in the refusal is shown escaped: no ESC or right-to-left override reaches the terminal.
  assert.throws(() => checkedSubject({ ...command, state: 'queued\u001b[2K\u202eevorppa' }), (e) => SdcError.is(e) && e.code === 'APPROVAL_NOT_PENDING'
    && e.message === 'command c_1 is "queued\\u001b[2K\\u202eevorppa", not waiting for approvals');
  const rollout = { id: 'ro-1', status: 'running\r\u2066', approval: null } as unknown as PendingRolloutView;
  assert.throws(() => checkedRolloutSubject(rollout), (e) => SdcError.is(e) && e.code === 'APPROVAL_NOT_PENDING'
    && e.message === 'rollout ro-1 is "running\\r\\u2066", not waiting for approvals');
});

// Security review 2026-12-05, finding 4: the server refuses to register a key (first or replacement) without the password.
// Review h11, finding 4: a PUT without it that the server refuses is audited as a stolen token's try, so the CLI never sends one.
test('registering the key file\'s key: nothing sent when it is the current one; otherwise one PUT with the password, or a refusal before sending, saying how to give it', async () => {
  const unknown = new SdcError('HTTP_REFUSED', 'GET /v1/users/me/signing-key refused with APPROVAL_KEY_UNKNOWN: ...', { status: 404, serverCode: 'APPROVAL_KEY_UNKNOWN' });
  const fakeApi = (current: SdcError | { kid: string; public_key: string }, answers: Array<SdcError | { kid: string }> = []) => {
    const calls: unknown[] = [];
    return {
      calls,
      async get<T>(path: string): Promise<T> {
        calls.push(['GET', path]);
        if (current instanceof SdcError) throw current;
        return current as T;
      },
      async put<T>(path: string, body: unknown): Promise<T> {
        calls.push(['PUT', path, body]);
        const answer = answers.shift();
        if (answer === undefined || answer instanceof SdcError) throw answer ?? new Error('no answer left');
        return answer as T;
      },
    };
  };
  let asked = 0;
  const password = (value: string | undefined) => async () => { asked += 1; return value; };
  const get = ['GET', '/v1/users/me/signing-key'];

  const registered = fakeApi({ kid: 'uk-a', public_key: 'PUB' });
  assert.equal(await registerSigningKey(registered, 'PUB', { keyPath: '/k.json', password: password('pw') }), 'uk-a');
  assert.deepEqual(registered.calls, [get], 'the current key: no PUT');
  assert.equal(asked, 0, 'the password is not read when no proof is needed');

  const first = fakeApi(unknown, [{ kid: 'uk-b' }]);
  assert.equal(await registerSigningKey(first, 'PUB', { keyPath: '/k.json', password: password('pw') }), 'uk-b');
  assert.deepEqual(first.calls, [get, ['PUT', '/v1/users/me/signing-key', { public_key: 'PUB', current_password: 'pw' }]], 'a first key: the password goes with the first PUT');

  const replaced = fakeApi({ kid: 'uk-old', public_key: 'OLD' }, [{ kid: 'uk-c' }]);
  assert.equal(await registerSigningKey(replaced, 'PUB', { keyPath: '/k.json', password: password('pw') }), 'uk-c');
  assert.deepEqual(replaced.calls, [get, ['PUT', '/v1/users/me/signing-key', { public_key: 'PUB', current_password: 'pw' }]]);

  const noPassword = fakeApi(unknown);
  await assert.rejects(registerSigningKey(noPassword, 'PUB', { keyPath: '/k.json', password: password(undefined) }),
    (error: unknown) => SdcError.is(error, 'APPROVAL_KEY_PROOF_REQUIRED') && /--password-stdin/.test(error.message) && error.message.includes('/k.json'));
  assert.deepEqual(noPassword.calls, [get], 'nothing sent without the password');

  const other = new SdcError('HTTP_REFUSED', 'refused with API_VALIDATION', { status: 400, serverCode: 'API_VALIDATION' });
  await assert.rejects(registerSigningKey(fakeApi(unknown, [other]), 'PUB', { keyPath: '/k.json', password: password('pw') }), (error: unknown) => error === other);
  const down = new SdcError('HTTP_REFUSED', 'refused with API_UNAUTHENTICATED', { status: 401, serverCode: 'API_UNAUTHENTICATED' });
  await assert.rejects(registerSigningKey(fakeApi(down), 'PUB', { keyPath: '/k.json', password: password('pw') }), (error: unknown) => error === down);
});

// Review h13: the resume prompt printed the requester's reason and name as they came, so a CR,
// ESC[2K (erase the line) or a right-to-left override could hide the stop figures being waived.
test('the approval prompts show peer-supplied text escaped: no CR, ESC, C1 or bidi control reaches the terminal', () => {
  const reason = 'cable\r\u001b[2Kall fine \u202eeno\u2066 \u0085';
  const subject: RolloutResumeSubject = {
    kind: 'ota_rollout_resume', v: 1, request_id: 'rr-1', rollout_id: 'ro-1', release_id: 'rel-1', rollout_subject_sha256: null, wave: 0,
    pause_reason: 'error_threshold', safety_stop: 'error_threshold', error_threshold: { executed_min: 1, failed_percent_max: 10 },
    success_threshold: { succeeded_min: 1, succeeded_percent_min: 90, soak_ms: 0 }, wave_stats: { size: 4, executed: 4, failed: 3, succeeded: 1 },
    accepted_before: { executed: 0, failed: 0, success_waived: false }, stop_sha256: 'a'.repeat(64),
    requested_by: 'rhea\u001b[8m', reason, requested_at: 1_764_000_000_000, expires_at: 1_764_000_600_000,
  };
  const shown = describeResumeSubject(subject);
  // One line ending in its own newline, and no control or bidi character anywhere in it.
  assert.doesNotMatch(shown.slice(0, -1), /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u);
  assert.ok(shown.includes('"cable\\r\\u001b[2Kall fine \\u202eeno\\u2066 \\u0085"'), shown);
  assert.ok(shown.includes('asked by "rhea\\u001b[8m"'), shown);
  assert.ok(shown.includes('(3 of 4 executed failed, 1 of 4 succeeded; paused: error_threshold)'), shown);
  // Plain tokens stay as they are.
  assert.equal(shownText('ro-1'), 'ro-1');
  assert.equal(shownText('a b'), '"a b"');
  assert.equal(shownText('\u009b2K'), '"\\u009b2K"');
});
