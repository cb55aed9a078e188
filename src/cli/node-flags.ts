/**
 * Flags for the Node.js runtime of a long-running gridx process (node, server, runner).
 * V8 sizes the young generation for the machine, 16 MiB per semi-space here, and an idle
 * node keeps all of it resident while using a third; 4 MiB keeps an idle node near 105 MiB
 * resident instead of 133 (bench:mesh --only idle), at no cost measured in job latency
 * (BENCHMARKS.md). The same flag is in main.ts's first line and the Dockerfile: a shebang
 * and an entrypoint cannot import it.
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];
