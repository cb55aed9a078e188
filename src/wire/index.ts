/**
 * The wire: the request and response shapes of both dialects (Grid-X: gridx.ts; Parity:
 * parity.ts), the runner API (runners.ts), the account routes (accounts.ts) and the one
 * error body (errors.ts), each defined once. The server's views (src/api/views/) are typed
 * by them and the SDK (src/sdk/) speaks them.
 *
 * No server code: these files import src/domain and nothing else of the server, and the
 * SDK imports nothing of the server but these, src/domain, src/errors.ts and src/logger.ts
 * (the mesh client alone also uses the libp2p node, src/mesh/mesh.ts, to join the DHT as a
 * client). eslint.config.js keeps it so (no-restricted-imports).
 */

export type * from './accounts.js';
export type * from './errors.js';
export type * from './gridx.js';
export type * from './parity.js';
export type * from './runners.js';
export { CLOSE_SLOW_CONSUMER } from './parity.js';
export { executionResultOf, resultBody } from './runners.js';
