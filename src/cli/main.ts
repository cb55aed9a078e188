#!/usr/bin/env node
import '../polyfills.js';
import { quote } from '../errors.js';
import { VERSION } from '../version.js';
import { accountCommand, balanceCommand, tokenCommand, withdrawCommand } from './account-command.js';
import { demoCommand } from './demo-command.js';
import { devnetCommand } from './devnet-command.js';
import { doctorCommand } from './doctor-command.js';
import { blobCommand, getCommand } from './files-command.js';
import { jobsCommand, peersCommand, statusCommand } from './info-commands.js';
import { nodeCommand, serverCommand } from './node-command.js';
import { CliExit, errorLine } from './output.js';
import { runCommand } from './run-command.js';
import { runnerCommand } from './runner-command.js';

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

const COMMANDS: Record<string, (argv: string[], env: NodeJS.ProcessEnv) => Promise<number>> = {
  node: nodeCommand,
  server: serverCommand,
  runner: runnerCommand,
  run: runCommand,
  get: getCommand,
  blob: blobCommand,
  status: statusCommand,
  doctor: doctorCommand,
  jobs: jobsCommand,
  peers: peersCommand,
  devnet: devnetCommand,
  demo: demoCommand,
  account: accountCommand,
  balance: balanceCommand,
  withdraw: withdrawCommand,
  token: tokenCommand,
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
  const command = COMMANDS[name];
  if (!command) {
    console.error(`gridx: unknown command ${quote(name)}\n\n${USAGE}`);
    return 2;
  }
  return command(rest, process.env);
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
