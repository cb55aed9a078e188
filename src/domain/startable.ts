/**
 * The one lifecycle contract of a component that runs in a node (js-libp2p's Startable):
 * `start` resolves once it does its work, `stop` once it no longer does any. src/node/
 * alone calls them, in the order its header states.
 */
export interface Startable {
  start(): Promise<void>;
  stop(): Promise<void>;
}
