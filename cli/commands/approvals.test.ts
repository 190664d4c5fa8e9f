import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SdcError } from '../../core/errors/index.js';
import { nobleSha256 } from '../../core/crypto/sha256-noble.js';
import { approvalSubjectHash, type ApprovalSubject } from '../../core/protocol/approvals.js';
import { checkedSubject, loadOrCreateSigningKey, registerSigningKey, signingKeyPath, type PendingCommandView } from './approvals.js';

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
});

// Security review 2026-12-05, finding 4: the server refuses to register a key (first or replacement) without the password.
test('registering the key file\'s key: one PUT when it is accepted; on APPROVAL_KEY_PROOF_REQUIRED again with the password given, or a refusal saying how to give it', async () => {
  const proofRequired = new SdcError('HTTP_REFUSED', 'PUT /v1/users/me/signing-key refused with APPROVAL_KEY_PROOF_REQUIRED: ...', { status: 403, serverCode: 'APPROVAL_KEY_PROOF_REQUIRED' });
  const fakeApi = (answers: Array<SdcError | { kid: string }>) => {
    const bodies: unknown[] = [];
    return {
      bodies,
      async put<T>(_path: string, body: unknown): Promise<T> {
        bodies.push(body);
        const answer = answers.shift();
        if (answer === undefined || answer instanceof SdcError) throw answer ?? new Error('no answer left');
        return answer as T;
      },
    };
  };
  let asked = 0;
  const password = (value: string | undefined) => async () => { asked += 1; return value; };

  const accepted = fakeApi([{ kid: 'uk-a' }]);
  assert.equal(await registerSigningKey(accepted, 'PUB', { keyPath: '/k.json', password: password('pw') }), 'uk-a');
  assert.deepEqual(accepted.bodies, [{ public_key: 'PUB' }]);
  assert.equal(asked, 0, 'the password is not read when no proof is needed');

  const replaced = fakeApi([proofRequired, { kid: 'uk-b' }]);
  assert.equal(await registerSigningKey(replaced, 'PUB', { keyPath: '/k.json', password: password('pw') }), 'uk-b');
  assert.deepEqual(replaced.bodies, [{ public_key: 'PUB' }, { public_key: 'PUB', current_password: 'pw' }]);

  const noPassword = fakeApi([proofRequired]);
  await assert.rejects(registerSigningKey(noPassword, 'PUB', { keyPath: '/k.json', password: password(undefined) }),
    (error: unknown) => SdcError.is(error, 'APPROVAL_KEY_PROOF_REQUIRED') && /--password-stdin/.test(error.message) && error.message.includes('/k.json'));

  const other = new SdcError('HTTP_REFUSED', 'refused with API_VALIDATION', { status: 400, serverCode: 'API_VALIDATION' });
  await assert.rejects(registerSigningKey(fakeApi([other]), 'PUB', { keyPath: '/k.json', password: password('pw') }), (error: unknown) => error === other);
});
