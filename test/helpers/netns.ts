/**
 * A simulated internet out of network namespaces (root only): an "internet" router, a
 * public host on it, and home networks each behind its own NAT router (iptables
 * MASQUERADE, inbound connections dropped). Every address lives inside the namespaces made
 * here: the internet uses 100.64.0.0/10, each home 10.0.0.0/24 (the same range in every
 * home, as in real ones). `remove()` deletes the namespaces and with them every link and
 * rule; it also runs for namespaces a crashed earlier run left.
 */

import { execFileSync } from 'node:child_process';

const PREFIX = 'gxnat';

export interface SimulatedInternet {
  /** Namespace of the public host, reachable at `publicIp`. */
  publicNs: string;
  publicIp: string;
  /** Namespaces of the home hosts; home i is at 10.0.0.(i + 2) behind its router. */
  homeNs: string[];
  homeIp: (i: number) => string;
  /**
   * Cuts home i off the internet (its router drops every packet it would forward, as a dead
   * line does: no error comes back), or joins it again.
   */
  cutHome: (i: number, cut: boolean) => void;
  remove: () => void;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function inNs(ns: string, command: string, ...args: string[]): void {
  execFileSync('ip', ['netns', 'exec', ns, command, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Whether this process can build namespaces: root, with `ip` and `iptables`. */
export function canBuildNamespaces(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    execFileSync('iptables', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Deletes namespaces named with this helper's prefix (`only`: those of one run). */
function removeNamespaces(only?: string): void {
  const names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.split(' ')[0]!)
    .filter((name) => name.startsWith(only ?? PREFIX));
  for (const name of names) {
    // Processes left inside (a node the test could not stop) go with it.
    const pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).split('\n').filter(Boolean);
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    try {
      ip('netns', 'del', name);
    } catch {
      // Gone meanwhile.
    }
  }
}

/** Builds the internet with `homes` home networks. */
export function buildInternet(homes: number): SimulatedInternet {
  removeNamespaces();
  const run = `${PREFIX}${process.pid % 100_000}`;
  const ns = (name: string) => `${run}-${name}`;
  const net = ns('net');
  const publicNs = ns('pub');
  const homeNs = Array.from({ length: homes }, (_, i) => ns(`h${i + 1}`));
  const remove = () => removeNamespaces(run);
  try {
    for (const name of [net, publicNs, ...homeNs, ...homeNs.map((_, i) => ns(`r${i + 1}`))]) {
      ip('netns', 'add', name);
      inNs(name, 'ip', 'link', 'set', 'lo', 'up');
    }
    inNs(net, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    // A point-to-point link between two namespaces, `a` side at addrA, `b` side at addrB.
    const link = (a: string, ifA: string, addrA: string, b: string, ifB: string, addrB: string) => {
      ip('link', 'add', ifA, 'netns', a, 'type', 'veth', 'peer', 'name', ifB, 'netns', b);
      inNs(a, 'ip', 'addr', 'add', addrA, 'dev', ifA);
      inNs(b, 'ip', 'addr', 'add', addrB, 'dev', ifB);
      inNs(a, 'ip', 'link', 'set', ifA, 'up');
      inNs(b, 'ip', 'link', 'set', ifB, 'up');
    };
    const tag = run.slice(PREFIX.length);
    link(net, `n0${tag}`, '100.64.0.1/24', publicNs, `p0${tag}`, '100.64.0.2/24');
    inNs(publicNs, 'ip', 'route', 'add', 'default', 'via', '100.64.0.1');
    homeNs.forEach((home, i) => {
      const router = ns(`r${i + 1}`);
      const wan = `w${i + 1}${tag}`;
      const lan = `l${i + 1}${tag}`;
      link(net, `n${i + 1}${tag}`, `100.64.${i + 1}.1/24`, router, wan, `100.64.${i + 1}.2/24`);
      link(router, lan, '10.0.0.1/24', home, `h${i + 1}${tag}`, `10.0.0.${i + 2}/24`);
      inNs(router, 'ip', 'route', 'add', 'default', 'via', `100.64.${i + 1}.1`);
      inNs(home, 'ip', 'route', 'add', 'default', 'via', '10.0.0.1');
      inNs(router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
      // A home router: outgoing connections leave under its address, and nothing from
      // the internet gets in that the home did not start.
      inNs(router, 'iptables', '-t', 'nat', '-A', 'POSTROUTING', '-o', wan, '-j', 'MASQUERADE');
      inNs(router, 'iptables', '-A', 'FORWARD', '-i', wan, '-o', lan, '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT');
      inNs(router, 'iptables', '-A', 'FORWARD', '-i', wan, '-o', lan, '-j', 'DROP');
    });
  } catch (err) {
    remove();
    throw new Error(`building the simulated internet failed: ${(err as { stderr?: Buffer }).stderr?.toString() ?? (err as Error).message}`);
  }
  const cutHome = (i: number, cut: boolean) => inNs(ns(`r${i + 1}`), 'iptables', cut ? '-I' : '-D', 'FORWARD', ...(cut ? ['1'] : []), '-j', 'DROP');
  return { publicNs, publicIp: '100.64.0.2', homeNs, homeIp: (i) => `10.0.0.${i + 2}`, cutHome, remove };
}
