import fs from 'node:fs';
import path from 'node:path';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PeerId, PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { writePrivateFile } from '../config/private-file.js';
import { GridxError, messageOf } from '../errors.js';

export interface Identity {
  privateKey: PrivateKey;
  peerId: PeerId;
}

const KEY_FILE = 'peer-key';

/**
 * The node's Ed25519 key, created once and kept (mode 0600) in the data dir: the same
 * peer id after every restart, which also names the node's containers and its offers.
 */
export async function loadIdentity(dataDir: string): Promise<Identity> {
  const file = path.join(dataDir, KEY_FILE);
  let privateKey: PrivateKey;
  try {
    privateKey = privateKeyFromProtobuf(fs.readFileSync(file));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new GridxError(
        'CONFIG_INVALID',
        `cannot read the node key ${file} (${messageOf(err)}); restore it, or move it away to create a new identity`,
        { cause: err },
      );
    }
    privateKey = await generateKeyPair('Ed25519');
    writePrivateFile(file, privateKeyToProtobuf(privateKey));
  }
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey) };
}
