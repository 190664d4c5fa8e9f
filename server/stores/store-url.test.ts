import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertRefused } from '../../core/errors/assert-refused.js';
import { parseStoreUrl, redactUrlText, scrubPassword } from './store-url.js';

describe('store URLs', () => {
  it('redacts the password of parsable and unparsable URLs alike', () => {
    assert.equal(redactUrlText('mysql://root:s3cret@db:3306/sdc'), 'mysql://root:***@db:3306/sdc');
    assert.equal(redactUrlText('redis://:s3cret@cache:6379/0'), 'redis://:***@cache:6379/0');
    assert.equal(redactUrlText('mysql://root:p@ss:w0rd@db/sdc'), 'mysql://root:***@db/sdc', 'a password holding @ and :');
    assert.equal(redactUrlText('root:s3cret@db'), 'root:***@db');
    assert.equal(redactUrlText('mysql://root@db/sdc'), 'mysql://root@db/sdc');
    assert.equal(redactUrlText('mysql://db:3306/sdc'), 'mysql://db:3306/sdc');
  });

  it('names the target without the password', () => {
    assert.deepEqual(parseStoreUrl('mysql', 'mysql://sdc:s%40cret@db.internal:3307/sdc'), { kind: 'mysql', display: 'sdc@db.internal:3307/sdc', password: 's@cret' });
    assert.deepEqual(parseStoreUrl('redis', 'redis://127.0.0.1:6379'), { kind: 'redis', display: '127.0.0.1:6379', password: undefined });
    assert.deepEqual(parseStoreUrl('redis', 'rediss://:pw@cache/2'), { kind: 'redis', display: 'cache/2', password: 'pw' });
    const target = parseStoreUrl('mysql', 'mysql://root:hunter2hunter2@db/sdc');
    assert.equal(scrubPassword("Access denied for 'root' with hunter2hunter2", target), "Access denied for 'root' with ***");
  });

  it('refuses malformed URLs with STORE_URL_INVALID, never echoing the password', () => {
    const bad: Array<['mysql' | 'redis', string]> = [
      ['mysql', ''], ['mysql', 'not a url'], ['mysql', 'mysql://root:s3cret@db:99999/sdc'], ['mysql', 'mysql://root:s3cret@db'],
      ['mysql', 'mysql://root:s3cret@db/a;drop'], ['mysql', 'redis://root:s3cret@db/sdc'], ['redis', 'localhost:6379'],
      ['redis', 'redis://:s3cret@cache/x'], ['redis', 'http://:s3cret@cache'], ['redis', `redis://:s3cret@${'a'.repeat(3000)}`],
    ];
    for (const [kind, text] of bad) {
      const error = assertRefused(() => parseStoreUrl(kind, text), 'STORE_URL_INVALID');
      assert.doesNotMatch(error.message, /s3cret/, text);
      assert.ok(error.message.startsWith(`--${kind} '`), error.message);
    }
  });
});
