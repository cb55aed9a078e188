import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { describe, expect, it } from 'vitest';
import { MAX_OFFER_ADDRS, type Offer, canonicalJson, misfit, rankOffers } from '../../src/domain/offer.js';
import { multiaddr } from '@multiformats/multiaddr';
import { advertised } from '../../src/mesh/mesh.js';
import { MAX_OFFER_BYTES, OfferBook, fitted, signOffer, verifyOffer } from '../../src/mesh/offer-book.js';
import { SPEC } from '../helpers/fixtures.js';

async function peer() {
  const key = await generateKeyPair('Ed25519');
  return { key, id: peerIdFromPrivateKey(key).toString() };
}

function offer(peerId: string, overrides: Partial<Offer> = {}): Offer {
  const now = Date.now();
  return {
    v: 1,
    peerId,
    apiUrl: 'http://127.0.0.1:8000',
    multiaddrs: ['/ip4/127.0.0.1/tcp/8468'],
    status: 'idle',
    slots: { total: 2, free: 2 },
    cpus: 2,
    memoryBytes: 8 * 2 ** 30,
    gpus: 0,
    limits: { cpus: 1, memoryBytes: 512 * 2 ** 20, timeoutMs: 300_000, gpus: 0, networks: ['none'] },
    images: [],
    price: 0,
    version: '0.1.0',
    seq: now,
    issuedAt: now,
    expiresAt: now + 30_000,
    ...overrides,
  };
}

describe('offers', () => {
  it('canonical JSON sorts keys at every level', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: 'x' } })).toBe('{"a":{"c":"x","d":[2,{"e":0,"f":1}]},"b":1}');
  });

  it('a signed offer verifies; any change to it does not', async () => {
    const p = await peer();
    const signed = await signOffer(offer(p.id), p.key);
    expect(await verifyOffer(signed)).toBe(true);
    expect(await verifyOffer({ ...signed, offer: { ...signed.offer, status: 'busy' } })).toBe(false);
    expect(await verifyOffer({ ...signed, offer: { ...signed.offer, slots: { total: 2, free: 99 } } })).toBe(false);
  });

  it('the book admits signed offers and drops forged, replayed, expired and malformed ones', async () => {
    const me = await peer();
    const honest = await peer();
    const mallory = await peer();
    const book = new OfferBook(me.id);

    const first = await signOffer(offer(honest.id, { seq: 10 }), honest.key);
    expect(await book.consider(first)).toBe('accepted');
    // Replaying the same (or an older) offer changes nothing.
    expect(await book.consider(first)).toBe('replayed');
    expect(await book.consider(await signOffer(offer(honest.id, { seq: 9 }), honest.key))).toBe('replayed');
    // Mallory signs an offer in the honest peer's name with her own key.
    const forged = await signOffer(offer(honest.id, { seq: 11, apiUrl: 'http://127.0.0.2:1' }), mallory.key);
    expect(await book.consider(forged)).toBe('forged');
    expect(book.get(honest.id)?.apiUrl).toBe('http://127.0.0.1:8000');
    expect(await book.consider(await signOffer(offer(honest.id, { seq: 12, expiresAt: Date.now() - 1 }), honest.key))).toBe('expired');
    expect(await book.consider({ offer: { v: 2 }, signature: 'x' })).toBe('malformed');
    expect(await book.consider('garbage')).toBe('malformed');
    expect(await book.consider(await signOffer(offer(me.id), me.key))).toBe('self');
    expect(book.size).toBe(1);
  });

  it('drops bloated offers and offers dated ahead or claiming a long life; keeps only what the signature covers', async () => {
    const { key, id } = await peer();
    const book = new OfferBook('self');
    const now = Date.now();
    const big = await signOffer(offer(id, { images: Array.from({ length: 256 }, (_, i) => `${'x'.repeat(200)}:${i}`) }), key);
    expect(await book.consider(big)).toBe('malformed');
    expect(await book.consider(await signOffer(offer(id, { issuedAt: now + 3_600_000, expiresAt: now + 3_630_000 }), key))).toBe('malformed');
    expect(await book.consider(await signOffer(offer(id, { expiresAt: now + 7 * 86_400_000 }), key))).toBe('malformed');
    const padded = { ...(await signOffer(offer(id), key)), junk: 'y'.repeat(1000) };
    expect(await book.consider(padded)).toBe('accepted');
    expect(book.signedOffers()[0]).toEqual({ offer: padded.offer, signature: padded.signature });
  });

  it("a node's own offer sheds cached images until peers take it, the first ones kept", async () => {
    const { key, id } = await peer();
    // Docker allows names of 255 characters and tags of 128, and a ref may add a digest.
    const images = Array.from({ length: 64 }, (_, i) => `${'n'.repeat(250)}-${String(i).padStart(4, '0')}:${'t'.repeat(128)}@sha256:${'0'.repeat(64)}`);
    const multiaddrs = Array.from({ length: MAX_OFFER_ADDRS }, (_, i) => `/ip4/10.0.${i}.2/tcp/8468/p2p/${id}/p2p-circuit/p2p/${id}`);
    const whole = offer(id, { images, multiaddrs });
    expect(await new OfferBook('self').consider(await signOffer(whole, key))).toBe('malformed');
    const fit = fitted(whole)!;
    expect(fit.images.length).toBeGreaterThan(0);
    expect(fit.images.length).toBeLessThan(images.length);
    expect(fit.images).toEqual(images.slice(0, fit.images.length));
    expect(await new OfferBook('self').consider(await signOffer(fit, key))).toBe('accepted');
    expect(fitted(offer(id))).toEqual(offer(id, { seq: expect.any(Number) as number, issuedAt: expect.any(Number) as number, expiresAt: expect.any(Number) as number }));
    expect(fitted(offer(id, { apiUrl: `http://${'a'.repeat(MAX_OFFER_BYTES)}` }))).toBeUndefined();
  });

  it('drops offers once they expire', async () => {
    const p = await peer();
    const book = new OfferBook('me');
    await book.consider(await signOffer(offer(p.id, { expiresAt: Date.now() + 50 }), p.key));
    expect(book.size).toBe(1);
    expect(book.offers(Date.now() + 100)).toEqual([]);
  });

  it('holds at most its capacity: expired offers go first, then the dearest and oldest; a worse newcomer is refused', async () => {
    const [a, b, c, d, e] = await Promise.all([peer(), peer(), peer(), peer(), peer()]);
    const book = new OfferBook('me', 3);
    const now = Date.now();
    await book.consider(await signOffer(offer(a.id, { price: 1, issuedAt: now - 2000 }), a.key));
    await book.consider(await signOffer(offer(b.id, { price: 1, issuedAt: now - 1000 }), b.key));
    await book.consider(await signOffer(offer(c.id, { price: 0, expiresAt: now + 50 }), c.key));
    // Full: a dearer newcomer than everything held is refused; a cheaper one takes an expired offer's place.
    expect(await book.consider(await signOffer(offer(d.id, { price: 5 }), d.key))).toBe('full');
    await new Promise((r) => setTimeout(r, 60));
    expect(await book.consider(await signOffer(offer(e.id, { price: 0 }), e.key))).toBe('accepted');
    expect(book.offers().map((o) => o.peerId).sort()).toEqual([a.id, b.id, e.id].sort());
    // Then the dearest, and of equal prices the oldest (a) goes.
    expect(await book.consider(await signOffer(offer(c.id, { price: 0, seq: now + 10_000 }), c.key))).toBe('accepted');
    expect(book.offers().map((o) => o.peerId).sort()).toEqual([b.id, c.id, e.id].sort());
    // A peer already held updates its offer whatever the book's size.
    expect(await book.consider(await signOffer(offer(b.id, { price: 9, seq: now + 10_000 }), b.key))).toBe('accepted');
    expect(book.size).toBe(3);
  });

  it('ranks idle fitting peers: cached image first, then free slots, then price; reservations count', async () => {
    const [a, b, c, d] = await Promise.all([peer(), peer(), peer(), peer()]);
    const book = new OfferBook('me');
    await book.consider(await signOffer(offer(a.id, { slots: { total: 4, free: 4 }, price: 1 }), a.key));
    await book.consider(await signOffer(offer(b.id, { images: [SPEC.image], slots: { total: 1, free: 1 } }), b.key));
    await book.consider(await signOffer(offer(c.id, { status: 'busy', slots: { total: 1, free: 0 } }), c.key));
    await book.consider(
      await signOffer(offer(d.id, { limits: { cpus: 1, memoryBytes: 2 ** 20, timeoutMs: 1, gpus: 0, networks: ['none'] } }), d.key),
    );
    expect(book.candidates(SPEC).map((o) => o.peerId)).toEqual([b.id, a.id]);
    book.reserve(b.id);
    expect(book.candidates(SPEC).map((o) => o.peerId)).toEqual([a.id]);
    book.release(b.id);
    book.suspend(b.id, 60_000);
    expect(book.candidates(SPEC).map((o) => o.peerId)).toEqual([a.id]);
    expect(book.candidates(SPEC, new Set([a.id]))).toEqual([]);
  });

  it('a slot handed out stays counted while the peer re-signs the same terms, and until its terms change', async () => {
    const a = await peer();
    const book = new OfferBook('me');
    const now = Date.now();
    await book.consider(await signOffer(offer(a.id, { slots: { total: 1, free: 1 }, seq: now }), a.key));
    book.reserve(a.id);
    expect(book.candidates(SPEC)).toEqual([]);
    // The periodic re-signing, before the peer started the job: still taken.
    expect(await book.consider(await signOffer(offer(a.id, { slots: { total: 1, free: 1 }, seq: now + 1 }), a.key))).toBe('accepted');
    expect(book.candidates(SPEC)).toEqual([]);
    // The peer says it is busy, then idle again: its own word counts.
    await book.consider(await signOffer(offer(a.id, { status: 'busy', slots: { total: 1, free: 0 }, seq: now + 2 }), a.key));
    await book.consider(await signOffer(offer(a.id, { slots: { total: 1, free: 1 }, seq: now + 3 }), a.key));
    expect(book.candidates(SPEC).map((o) => o.peerId)).toEqual([a.id]);
  });

  it("an older offer that outlives a newer one (a node's short-lived withdrawal) is still a replay once the newer one has expired", async () => {
    const a = await peer();
    const book = new OfferBook('me');
    const now = Date.now();
    const last = await signOffer(offer(a.id, { seq: now, issuedAt: now, expiresAt: now + 60_000 }), a.key);
    expect(await book.consider(last, now)).toBe('accepted');
    const withdrawal = await signOffer(offer(a.id, { seq: now + 1, issuedAt: now, expiresAt: now + 2_000, status: 'busy', slots: { total: 1, free: 0 } }), a.key);
    expect(await book.consider(withdrawal, now)).toBe('accepted');
    expect(book.offers(now + 3_000)).toEqual([]);
    expect(await book.consider(last, now + 3_000)).toBe('replayed');
  });

  it('misfit names what does not fit', () => {
    const limits = { cpus: 1, memoryBytes: 100, timeoutMs: 1000, gpus: 0, networks: ['none'] };
    expect(misfit({ ...SPEC, resources: { cpus: 2, memoryBytes: 1, gpus: 0 }, timeoutMs: 1 }, limits)).toContain('cpus');
    expect(misfit({ ...SPEC, resources: { cpus: 1, memoryBytes: 1, gpus: 1 }, timeoutMs: 1 }, limits)).toContain('gpus');
    expect(misfit({ ...SPEC, resources: { cpus: 1, memoryBytes: 1, gpus: 0 }, timeoutMs: 1 }, limits)).toBeUndefined();
    expect(rankOffers([], SPEC)).toEqual([]);
  });
});

describe("a node's own offer addresses", () => {
  it('fit the cap peers hold offers to, the ones peers elsewhere can use first, and never a relay\'s loopback', () => {
    const self = '12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq';
    const relay = '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo';
    // A host with many Docker networks, listening on all of them.
    const bridges = Array.from({ length: 40 }, (_, i) => `/ip4/172.${17 + Math.floor(i / 200)}.${i}.1/tcp/4001/p2p/${self}`);
    const all = [
      `/ip4/127.0.0.1/tcp/4001/p2p/${self}`,
      ...bridges,
      `/ip4/127.0.0.1/tcp/4001/p2p/${relay}/p2p-circuit/p2p/${self}`,
      `/ip4/203.0.113.9/tcp/4001/p2p/${relay}/p2p-circuit/p2p/${self}`,
      `/ip4/198.51.100.7/tcp/4001/p2p/${self}`,
    ].map((a) => multiaddr(a));
    const addrs = advertised(all);
    expect(addrs).toHaveLength(MAX_OFFER_ADDRS);
    // 198.51.100.0/24 is documentation space, which addresses.ts counts as public.
    expect(addrs.slice(0, 2)).toEqual([`/ip4/198.51.100.7/tcp/4001/p2p/${self}`, `/ip4/203.0.113.9/tcp/4001/p2p/${relay}/p2p-circuit/p2p/${self}`]);
    expect(addrs.some((a) => a.startsWith('/ip4/127.'))).toBe(false);
  });
});
