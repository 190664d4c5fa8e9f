import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkListenAllowed, isLoopbackHost } from './addresses.js';

describe('listen addresses a proxy may take (review h1, F7)', () => {
  it('takes loopback in any spelling, and nothing else unless external listening is allowed', () => {
    for (const host of ['127.0.0.1', '127.0.0.2', '127.255.255.254', 'localhost', 'LocalHost', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) {
      assert.equal(isLoopbackHost(host), true, host);
    }
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', '::ffff:10.0.0.1', 'example.com', 'localhost.example.com', '127.0.0.1.nip.io']) {
      assert.equal(isLoopbackHost(host), false, host);
    }
    assert.throws(() => checkListenAllowed('0.0.0.0:16379', false), (error: { code?: string }) => error.code === 'CHAOS_LISTEN_NOT_LOOPBACK');
    assert.throws(() => checkListenAllowed('[::]:0', false), (error: { code?: string }) => error.code === 'CHAOS_LISTEN_NOT_LOOPBACK');
    assert.doesNotThrow(() => checkListenAllowed('0.0.0.0:16379', true));
    assert.doesNotThrow(() => checkListenAllowed('[::1]:0', false));
  });
});
