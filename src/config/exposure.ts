/**
 * Who a node's settings expose it to. An open API (anonymous jobs) is for this machine
 * only, and so is an open node's mesh door while it takes jobs from any peer.
 */

import { GridxError } from '../errors.js';
import type { Config } from './schema.js';

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** CONFIG_INVALID when the settings would let the network in without keys. */
export function checkExposure(config: Pick<Config, 'auth' | 'host' | 'mesh'>): void {
  if (config.auth === 'open' && !isLoopback(config.host)) {
    throw new GridxError(
      'CONFIG_INVALID',
      `an open API (api.auth: open) on ${config.host} would let anyone on the network submit and cancel jobs; listen on 127.0.0.1, or set api.auth: required (GRIDX_AUTH=required) and give users keys from gridx account create`,
    );
  }
  const p2pHost = config.mesh.p2pHost ?? config.host;
  if (config.mesh.enabled && config.auth === 'open' && config.mesh.accept === 'any' && !isLoopback(p2pHost)) {
    throw new GridxError(
      'CONFIG_INVALID',
      `an open node taking jobs from any peer on ${p2pHost} would let anyone on the network run jobs; keep --p2p-host on 127.0.0.1, or list the peers you trust in mesh.accept (GRIDX_MESH_ACCEPT)`,
    );
  }
}
