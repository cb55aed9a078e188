/**
 * Noise whose every message reaches the socket in one write. Noise 17 hands each encrypted
 * message on as a list of two buffers, its length and its ciphertext, and the TCP transport
 * (@libp2p/tcp 11) writes each buffer of a list with its own socket.write: two system calls,
 * and with Nagle off two TCP segments, for every yamux frame. On a 100-node mesh in one
 * process four writes in five were the 2-byte length prefixes. Here the two are joined
 * before they reach the connection underneath (the socket, or a relayed stream).
 */

import type { noise } from '@chainsafe/libp2p-noise';
import type { MessageStream } from '@libp2p/interface';

type Noise = ReturnType<typeof noise>;

export function inOneWrite(encrypter: Noise): Noise {
  return (components) => {
    const inner = encrypter(components);
    return {
      protocol: inner.protocol,
      secureInbound: async (connection, options) => inner.secureInbound(joined(connection), options),
      secureOutbound: async (connection, options) => inner.secureOutbound(joined(connection), options),
    };
  };
}

/** `connection`, whose send() joins a list of buffers into one (a copy of a few kilobytes at most: noise messages are under 64 KiB). */
function joined(connection: MessageStream): MessageStream {
  const send = connection.send.bind(connection);
  connection.send = (data) => send(data instanceof Uint8Array ? data : data.subarray());
  return connection;
}
