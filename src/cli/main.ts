#!/usr/bin/env -S node --max-semi-space-size=4
import '../polyfills.js';
import { quote } from '../errors.js';
import { VERSION } from '../version.js';
import { CliExit, errorLine } from './output.js';

const USAGE = `gridx ${VERSION}: a decentralized mesh for trading compute

usage: gridx <command> [options]

commands:
  node      run a node: the API and jobs in the Docker sandbox
  server    run a coordinator (Parity's role): the node with its API on 8080
  runner    pull jobs from a server and run them in the Docker sandbox
  run       submit a job, stream its output, exit with its exit code
  get       download what a job left under /outputs
  blob      upload a file to a node (put) or download one by digest (get)
  status    show a node's status
  doctor    check this machine for running a node, with the fix for what fails
  jobs      list a node's jobs
  peers     list the mesh as a node sees it
  account   create accounts and credit them (operator, on the server's store)
  balance   show an account's balance and ledger (with its key)
  withdraw  pay credits out as ERC20 tokens (settlement on)
  token     deploy the ERC20 token on a development chain
  devnet    start N nodes on loopback that form a mesh
  demo      start a small local mesh and run real jobs through it

gridx <command> --help shows a command's options.`;

type Command = (argv: string[], env: NodeJS.ProcessEnv) => Promise<number>;

/**
 * Each command's module loads when the command runs: `gridx node` does not load the chain
 * client unless settlement is on, and `gridx status` loads no libp2p.
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  node: async () => (await import('./node-command.js')).nodeCommand,
  server: async () => (await import('./node-command.js')).serverCommand,
  runner: async () => (await import('./runner-command.js')).runnerCommand,
  run: async () => (await import('./run-command.js')).runCommand,
  get: async () => (await import('./files-command.js')).getCommand,
  blob: async () => (await import('./files-command.js')).blobCommand,
  status: async () => (await import('./info-commands.js')).statusCommand,
  doctor: async () => (await import('./doctor-command.js')).doctorCommand,
  jobs: async () => (await import('./info-commands.js')).jobsCommand,
  peers: async () => (await import('./info-commands.js')).peersCommand,
  devnet: async () => (await import('./devnet-command.js')).devnetCommand,
  demo: async () => (await import('./demo-command.js')).demoCommand,
  account: async () => (await import('./account-command.js')).accountCommand,
  balance: async () => (await import('./account-command.js')).balanceCommand,
  withdraw: async () => (await import('./account-command.js')).withdrawCommand,
  token: async () => (await import('./account-command.js')).tokenCommand,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    console.log(USAGE);
    return name === undefined ? 2 : 0;
  }
  if (name === 'version' || name === '--version') {
    console.log(VERSION);
    return 0;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!load) {
    console.error(`gridx: unknown command ${quote(name)}\n\n${USAGE}`);
    return 2;
  }
  return (await load())(rest, process.env);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof CliExit) {
      if (err.message) console.error(err.message);
      process.exitCode = err.exitCode;
      return;
    }
    console.error(errorLine(err));
    if (process.env.GRIDX_DEBUG) console.error(err);
    process.exitCode = 1;
  },
);
