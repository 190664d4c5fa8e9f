import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SdcError } from '../core/errors/index.js';
import {
  childrenMax, childrenOf, derTag, integerValue, readBoolean, readElement, readNamedBits, readOid, readSmallNonNegativeInteger, readText, readTime,
  readWhole,
} from './der-reader.js';

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);

function refusedAs(run: () => unknown, pattern: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof SdcError, String(error));
    assert.equal(error.code, 'TRUST_CERT_INVALID');
    assert.match(error.message, pattern);
    return true;
  });
}

describe('DER reader', () => {
  it('reads short and long definite lengths, and the element bounds', () => {
    assert.deepEqual(readElement(bytes(0x04, 0x02, 0xaa, 0xbb)), { tag: 0x04, headerStart: 0, valueStart: 2, end: 4 });
    const long = new Uint8Array(3 + 200);
    long.set([0x04, 0x81, 200]);
    assert.deepEqual(readElement(long), { tag: 0x04, headerStart: 0, valueStart: 3, end: 203 });
    const longer = new Uint8Array(4 + 300);
    longer.set([0x04, 0x82, 0x01, 0x2c]);
    assert.deepEqual(readElement(longer), { tag: 0x04, headerStart: 0, valueStart: 4, end: 304 });
  });

  it('refuses what DER forbids or what runs past its container', () => {
    refusedAs(() => readElement(bytes(0x04, 0x80, 0x00, 0x00)), /indefinite length/);
    refusedAs(() => readElement(bytes(0x04, 0x81, 0x05, 1, 2, 3, 4, 5)), /non-minimal length/);
    refusedAs(() => readElement(bytes(0x04, 0x82, 0x00, 0x81, ...new Array<number>(0x81).fill(0))), /non-minimal length/);
    refusedAs(() => readElement(bytes(0x04, 0x85, 1, 0, 0, 0, 0)), /5 length bytes/);
    refusedAs(() => readElement(bytes(0x1f, 0x01, 0x00)), /multi-byte tag/);
    refusedAs(() => readElement(bytes(0x04, 0x03, 0xaa)), /runs past/);
    refusedAs(() => readElement(bytes(0x04)), /runs past/);
    refusedAs(() => readElement(bytes(0x04, 0x82, 0x01)), /runs past/);
    // The limit is the container's end, not the buffer's.
    refusedAs(() => readElement(bytes(0x04, 0x02, 0xaa, 0xbb), 0, 3), /runs past 3/);
    refusedAs(() => readWhole(bytes(0x04, 0x01, 0xaa, 0x00), derTag.octetString, 'x'), /1 trailing bytes/);
    refusedAs(() => readWhole(bytes(0x04, 0x01, 0xaa), derTag.sequence, 'x'), /tag 0x4, expected 0x30/);
  });

  it('reads children in order, filling the parent exactly, and at most childrenMax of them', () => {
    const sequence = bytes(0x30, 0x06, 0x01, 0x01, 0xff, 0x02, 0x01, 0x05);
    const children = childrenOf(sequence, readWhole(sequence, derTag.sequence, 'seq'));
    assert.deepEqual(children.map((c) => c.tag), [derTag.boolean, derTag.integer]);
    assert.equal(readBoolean(sequence, children[0]!), true);
    assert.equal(readSmallNonNegativeInteger(sequence, children[1]!), 5);
    refusedAs(() => childrenOf(bytes(0x04, 0x00), readElement(bytes(0x04, 0x00))), /primitive/);
    const crammed = bytes(0x30, 0x03, 0x01, 0x02, 0xff);
    refusedAs(() => childrenOf(crammed, readElement(crammed)), /runs past/);
    // A SEQUENCE of n NULLs (2 bytes each), with the long length form the size needs.
    const nulls = (n: number) => { const der = new Uint8Array(3 + 2 * n); der.set([0x30, 0x81, 2 * n]); for (let i = 0; i < n; i++) der.set([0x05, 0x00], 3 + 2 * i); return der; };
    const many = nulls(childrenMax + 1);
    refusedAs(() => childrenOf(many, readElement(many)), new RegExp(`more than ${childrenMax}`));
    const justEnough = nulls(childrenMax);
    assert.equal(childrenOf(justEnough, readElement(justEnough)).length, childrenMax);
  });

  it('decodes object identifiers, and refuses malformed ones', () => {
    const oid = (...value: number[]) => { const der = bytes(0x06, value.length, ...value); return readOid(der, readElement(der)); };
    assert.equal(oid(0x55, 0x1d, 0x0f), '2.5.29.15');
    assert.equal(oid(0x2b, 0x65, 0x70), '1.3.101.112');
    assert.equal(oid(0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02), '1.3.6.1.5.5.7.3.2');
    assert.equal(oid(0x2b, 0x06, 0x01, 0x04, 0x01, 0x86, 0x8d, 0x1f, 0x01), '1.3.6.1.4.1.99999.1');
    assert.equal(oid(0x88, 0x37), '2.999');
    refusedAs(() => oid(0x2b, 0x86), /ends inside an arc/);
    refusedAs(() => oid(0x2b, 0x80, 0x01), /leading zero/);
    refusedAs(() => oid(), /empty OID/);
    refusedAs(() => oid(0x2b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), /too large/);
    refusedAs(() => oid(...new Array<number>(40).fill(0x01)), /more than 32 arcs/);
    const notOid = bytes(0x04, 0x01, 0x2b);
    refusedAs(() => readOid(notOid, readElement(notOid)), /OID: tag 0x4/);
  });

  it('reads booleans and integers only in DER form', () => {
    const element = (...der: number[]) => { const b = bytes(...der); return () => [b, readElement(b)] as const; };
    const read = <T>(f: (b: Uint8Array, e: ReturnType<typeof readElement>) => T, get: () => readonly [Uint8Array, ReturnType<typeof readElement>]) => f(...get());
    assert.equal(read(readBoolean, element(0x01, 0x01, 0x00)), false);
    refusedAs(() => read(readBoolean, element(0x01, 0x01, 0x01)), /BOOLEAN/);
    refusedAs(() => read(readBoolean, element(0x01, 0x02, 0xff, 0xff)), /BOOLEAN/);
    assert.deepEqual([...read(integerValue, element(0x02, 0x02, 0x00, 0x80))], [0x00, 0x80]);
    refusedAs(() => read(integerValue, element(0x02, 0x02, 0x00, 0x7f)), /non-minimal INTEGER/);
    refusedAs(() => read(integerValue, element(0x02, 0x02, 0xff, 0x80)), /non-minimal INTEGER/);
    refusedAs(() => read(integerValue, element(0x02, 0x00)), /INTEGER expected/);
    refusedAs(() => read(readSmallNonNegativeInteger, element(0x02, 0x01, 0x80)), /negative/);
    refusedAs(() => read(readSmallNonNegativeInteger, element(0x02, 0x05, 0x01, 0, 0, 0, 0)), /too large/);
  });

  it('reads named bits in RFC 5280 order (bit 0 first) and refuses set unused bits', () => {
    const bits = (...der: number[]) => { const b = bytes(...der); return readNamedBits(b, readElement(b)); };
    assert.equal(bits(0x03, 0x02, 0x07, 0x80), 1 << 0); // digitalSignature
    assert.equal(bits(0x03, 0x02, 0x01, 0x06), (1 << 5) | (1 << 6)); // keyCertSign | cRLSign
    assert.equal(bits(0x03, 0x03, 0x07, 0x80, 0x80), (1 << 0) | (1 << 8)); // digitalSignature | decipherOnly
    assert.equal(bits(0x03, 0x01, 0x00), 0);
    refusedAs(() => bits(0x03, 0x02, 0x07, 0x81), /unused bits set/);
    refusedAs(() => bits(0x03, 0x02, 0x08, 0x00), /unused-bits count/);
    refusedAs(() => bits(0x03, 0x01, 0x01), /unused-bits count/);
    refusedAs(() => bits(0x03, 0x00), /BIT STRING expected/);
  });

  it('reads RFC 5280 times and refuses other forms and impossible dates', () => {
    const time = (tag: number, text: string) => { const b = bytes(tag, text.length, ...Buffer.from(text, 'latin1')); return readTime(b, readElement(b)); };
    assert.equal(time(derTag.utcTime, '300101000000Z'), Date.UTC(2030, 0, 1));
    assert.equal(time(derTag.utcTime, '991231235959Z'), Date.UTC(1999, 11, 31, 23, 59, 59));
    assert.equal(time(derTag.utcTime, '500101000000Z'), Date.UTC(1950, 0, 1));
    assert.equal(time(derTag.generalizedTime, '20500101000000Z'), Date.UTC(2050, 0, 1));
    assert.equal(time(derTag.generalizedTime, '99991231235959Z'), Date.UTC(9999, 11, 31, 23, 59, 59));
    refusedAs(() => time(derTag.utcTime, '3001010000Z'), /RFC 5280 form/);
    refusedAs(() => time(derTag.utcTime, '300101000000+0100'), /RFC 5280 form/);
    refusedAs(() => time(derTag.generalizedTime, '20300101000000.5Z'), /RFC 5280 form/);
    refusedAs(() => time(derTag.generalizedTime, '300101000000Z'), /RFC 5280 form/);
    refusedAs(() => time(derTag.utcTime, '300230000000Z'), /not a date/);
    refusedAs(() => time(derTag.utcTime, '300101240000Z'), /not a date/);
    refusedAs(() => time(derTag.generalizedTime, '00500101000000Z'), /before 1950/);
    refusedAs(() => time(derTag.octetString, '300101000000Z'), /RFC 5280 form/);
  });

  it('reads UTF8String, PrintableString, IA5String and URI text; refuses other string types and non-ASCII in ASCII ones', () => {
    const text = (tag: number, value: number[]) => { const b = bytes(tag, value.length, ...value); return readText(b, readElement(b)); };
    assert.equal(text(derTag.utf8String, [...Buffer.from('dév-1')]), 'dév-1');
    assert.equal(text(derTag.printableString, [...Buffer.from('dev-1')]), 'dev-1');
    assert.equal(text(derTag.ia5String, [...Buffer.from('dev-1')]), 'dev-1');
    assert.equal(text(0x86, [...Buffer.from('urn:sdc:device:dev-1')]), 'urn:sdc:device:dev-1');
    refusedAs(() => text(derTag.ia5String, [0x64, 0xe9]), /non-ASCII/);
    refusedAs(() => text(0x1e, [0x00, 0x64]), /string of tag 0x1e/);
  });
});
