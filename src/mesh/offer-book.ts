/**
 * The offers this node knows, one per peer: only signed, unexpired, newer-than-seen
 * offers get in. Forged, replayed and expired offers are dropped with a reason. The book
 * holds at most `capacity` peers: when full, expired offers go first, then the dearest
 * and, among equal prices, the oldest; a newcomer that would be the one to go is refused.
 */

import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import type { JobSpec } from '../domain/job.js';
import { MAX_OFFER_TTL_MS, type Offer, type SignedOffer, malformedOffer, offerBytes, offerTerms, rankOffers } from '../domain/offer.js';

export type OfferVerdict = 'accepted' | 'replayed' | 'expired' | 'forged' | 'malformed' | 'self' | 'full' | 'limited';

/** Peers a book holds by default: far past a mesh that one gossip topic serves well. */
export const OFFER_BOOK_CAPACITY = 10_000;
/** Largest signed offer, as JSON: an honest one is about a kilobyte; one naming many long image names sheds some to stay under it (fitted). */
export const MAX_OFFER_BYTES = 32 * 1024;
/** How far ahead of this node's clock an offer may say it was issued. */
const CLOCK_SKEW_MS = 60_000;

/** An Ed25519 signature in base64, as a signed offer carries it: a stand-in to size an offer before it is signed. */
const SIGNATURE_STAND_IN = 'x'.repeat(88);

/**
 * `offer` cut to fit MAX_OFFER_BYTES once signed, which every peer drops past: its cached
 * images, the one list that grows with the host, go from the end until it fits. Undefined
 * when it cannot fit even with none.
 */
export function fitted(offer: Offer): Offer | undefined {
  const fits = (o: Offer) => Buffer.byteLength(JSON.stringify({ offer: o, signature: SIGNATURE_STAND_IN })) <= MAX_OFFER_BYTES;
  for (let n = offer.images.length; n >= 0; n--) {
    const cut = n === offer.images.length ? offer : { ...offer, images: offer.images.slice(0, n) };
    if (fits(cut)) return cut;
  }
  return undefined;
}

export async function signOffer(offer: Offer, key: PrivateKey): Promise<SignedOffer> {
  const signature = await key.sign(offerBytes(offer));
  return { offer, signature: Buffer.from(signature).toString('base64') };
}

/** True when `signed.signature` is the signature of the offer by the key its peer id names. */
export async function verifyOffer(signed: SignedOffer): Promise<boolean> {
  try {
    const publicKey = peerIdFromString(signed.offer.peerId).publicKey;
    if (!publicKey || typeof signed.signature !== 'string') return false;
    return await publicKey.verify(offerBytes(signed.offer), Buffer.from(signed.signature, 'base64'));
  } catch {
    return false;
  }
}

interface Entry {
  signed: SignedOffer;
  /** offerTerms of the offer: a re-signing of the same terms is told from a change without computing them again. */
  terms: string;
  /** When this book took the offer (this node's clock). */
  receivedAt: number;
  /** Peer not to be chosen again before this time (it refused or failed a job). */
  suspendedUntil: number;
  /** Slots handed out (positive) or given back (negative) since the offer arrived. */
  reserved: number;
}

export class OfferBook {
  private readonly entries = new Map<string, Entry>();
  /**
   * Highest seq seen per peer, kept after the offer left the book (evicted, or a short-lived
   * withdrawal expired) so an older one cannot be replayed, until every offer it saw of that
   * peer has expired: an older offer may outlive a newer one (a node's withdrawal lives 2 s).
   */
  private readonly seen = new Map<string, { seq: number; expiresAt: number }>();

  constructor(
    private readonly selfId: string,
    private readonly capacity = OFFER_BOOK_CAPACITY,
  ) {}

  /**
   * Takes an offer from the network; the verdict says whether it got in and why not.
   * `limit`, asked only for a checked, new offer and at once (nothing else runs between it and
   * the book taking the offer), says whether its node may have one more taken now.
   */
  async consider(signed: unknown, now = Date.now(), limit?: (peerId: string) => boolean): Promise<OfferVerdict> {
    const s = signed as SignedOffer;
    if (s === null || typeof s !== 'object' || malformedOffer(s.offer) !== undefined) return 'malformed';
    const { offer } = s;
    if (typeof s.signature !== 'string' || JSON.stringify(s).length > MAX_OFFER_BYTES) return 'malformed';
    // An offer dated ahead, or living long, would outrank and outlast honest ones in a full book.
    if (offer.issuedAt > now + CLOCK_SKEW_MS || offer.expiresAt - offer.issuedAt > MAX_OFFER_TTL_MS) return 'malformed';
    if (offer.peerId === this.selfId) return 'self';
    if (offer.expiresAt <= now) return 'expired';
    const replayed = () => offer.seq <= (this.seen.get(offer.peerId)?.seq ?? -1);
    if (replayed()) return 'replayed';
    if (!(await verifyOffer(s))) return 'forged';
    // Checked again: another copy may have been accepted while the signature was checked.
    if (replayed()) return 'replayed';
    if (limit && !limit(offer.peerId)) return 'limited';
    if (!this.entries.has(offer.peerId) && !this.makeRoom(offer, now)) return 'full';
    this.seen.set(offer.peerId, { seq: offer.seq, expiresAt: Math.max(offer.expiresAt, this.seen.get(offer.peerId)?.expiresAt ?? 0) });
    const previous = this.entries.get(offer.peerId);
    const terms = offerTerms(offer);
    // Slots handed out count until an offer with new terms shows them; a re-signing of the same terms does not.
    const reserved = previous?.terms === terms ? previous.reserved : 0;
    // Only what the signature covers is kept and passed on.
    this.entries.set(offer.peerId, { signed: { offer, signature: s.signature }, terms, receivedAt: now, suspendedUntil: previous?.suspendedUntil ?? 0, reserved });
    return 'accepted';
  }

  /** Current, unexpired signed offers (what this node passes on to peers); those it took at or after `since`. */
  signedOffers(now = Date.now(), since = -Infinity): SignedOffer[] {
    this.prune(now);
    return [...this.entries.values()].filter((e) => e.receivedAt >= since).map((e) => e.signed);
  }

  offers(now = Date.now()): Offer[] {
    return this.signedOffers(now).map((s) => s.offer);
  }

  get(peerId: string, now = Date.now()): Offer | undefined {
    return this.held(peerId, now)?.offer;
  }

  /** The unexpired offer held for `peerId` and its terms (offerTerms), to tell a re-signing from a change. */
  held(peerId: string, now = Date.now()): { offer: Offer; terms: string } | undefined {
    const entry = this.entries.get(peerId);
    return entry && entry.signed.offer.expiresAt > now ? { offer: entry.signed.offer, terms: entry.terms } : undefined;
  }

  get size(): number {
    this.prune(Date.now());
    return this.entries.size;
  }

  /** Idle peers that fit `spec`, best first, less suspended ones and those in `exclude`. */
  candidates(spec: JobSpec, exclude: ReadonlySet<string> = new Set(), now = Date.now()): Offer[] {
    const usable = this.standing(now)
      .filter((s) => !s.suspended && !exclude.has(s.offer.peerId))
      .map(({ offer }) => offer);
    return rankOffers(usable, spec);
  }

  /** Every peer's offer as placement sees it now: free slots less those this node reserved, and whether it is suspended. */
  standing(now = Date.now()): Array<{ offer: Offer; suspended: boolean }> {
    this.prune(now);
    return [...this.entries.values()].map((e) => {
      const o = e.signed.offer;
      const free = Math.min(Math.max(o.slots.free - e.reserved, 0), o.slots.total);
      return { offer: { ...o, slots: { ...o.slots, free }, status: free > 0 ? ('idle' as const) : ('busy' as const) }, suspended: e.suspendedUntil > now };
    });
  }

  /** Counts a slot of `peerId` as taken until an offer with new terms says otherwise. */
  reserve(peerId: string): void {
    const entry = this.entries.get(peerId);
    if (entry) entry.reserved++;
  }

  /**
   * A slot of `peerId` came back (our job there ended, or it was never taken). It may
   * free a slot that the peer's last offer still shows as used: the next offer corrects it.
   */
  release(peerId: string): void {
    const entry = this.entries.get(peerId);
    if (!entry) return;
    const { total, free } = entry.signed.offer.slots;
    entry.reserved = Math.max(entry.reserved - 1, -(total - free));
  }

  /** Keeps `peerId` out of placement for `ms` (it refused a job or failed under one). */
  suspend(peerId: string, ms: number, now = Date.now()): void {
    const entry = this.entries.get(peerId);
    if (entry) entry.suspendedUntil = now + ms;
  }

  /** Whether a new peer's `offer` may come in, evicting the worst offer held when the book is full. */
  private makeRoom(offer: Offer, now: number): boolean {
    if (this.entries.size < this.capacity) return true;
    this.prune(now);
    if (this.entries.size < this.capacity) return true;
    // Worst: dearest, then issued longest ago.
    const worse = (a: Offer, b: Offer) => a.price > b.price || (a.price === b.price && a.issuedAt < b.issuedAt);
    let worst: Offer | undefined;
    for (const entry of this.entries.values()) if (!worst || worse(entry.signed.offer, worst)) worst = entry.signed.offer;
    if (!worst || !worse(worst, offer)) return false;
    this.entries.delete(worst.peerId);
    return true;
  }

  private prune(now: number): void {
    for (const [id, entry] of this.entries) {
      if (entry.signed.offer.expiresAt <= now) this.entries.delete(id);
    }
    for (const [id, last] of this.seen) {
      if (last.expiresAt <= now) this.seen.delete(id);
    }
  }
}
