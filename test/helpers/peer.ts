/** A bare libp2p peer on loopback that speaks the offers topic, as any stranger's can: hostile-peer tests. */
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { PrivateKey } from '@libp2p/interface';
import { type GossipSub, StrictNoSign, gossipsub } from '@libp2p/gossipsub';
import { identify } from '@libp2p/identify';
import { tcp } from '@libp2p/tcp';
import { createLibp2p, type Libp2p } from 'libp2p';
import { OFFERS_TOPIC } from '../../src/mesh/mesh.js';

/** A started peer (a new key unless `privateKey`), subscribed to the offers topic. */
export async function offersPeer(privateKey?: PrivateKey): Promise<Libp2p<{ pubsub: GossipSub }>> {
  const peer = await createLibp2p({
    ...(privateKey ? { privateKey } : {}),
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      pubsub: gossipsub({ globalSignaturePolicy: StrictNoSign, allowPublishToZeroTopicPeers: true, fallbackToFloodsub: false }),
    },
  });
  peer.services.pubsub.subscribe(OFFERS_TOPIC);
  return peer;
}
