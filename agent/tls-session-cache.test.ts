import assert from 'node:assert/strict';
import { it } from 'node:test';
import { TlsSessionCache } from './tls-session-cache.js';

it('offers the latest ticket to the host it came from, with the certificate it was made with, and nothing else', () => {
  const cache = new TlsSessionCache();
  assert.equal(cache.offerFor('wss://gw.example:8443/v1/agent', 'cert-1'), undefined, 'nothing before a ticket');
  cache.remember('wss://gw.example:8443/v1/agent', 'cert-1', Buffer.from('t1'));
  cache.remember('wss://gw.example:8443/v1/agent', 'cert-1', Buffer.from('t2'));
  assert.deepEqual(cache.offerFor('wss://gw.example:9443/v1/agent', 'cert-1'), Buffer.from('t2'), 'the latest, to another gateway behind the same name');
  assert.equal(cache.offerFor('wss://other.example:8443/v1/agent', 'cert-1'), undefined, 'another host name would not be checked again on resumption');
  assert.equal(cache.offerFor('wss://gw.example:8443/v1/agent', 'cert-2'), undefined, 'a renewed certificate starts afresh');
  cache.forget();
  assert.equal(cache.offerFor('wss://gw.example:8443/v1/agent', 'cert-1'), undefined);
});
