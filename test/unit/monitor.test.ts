import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { ResourceMonitor, parseNvidiaSmi } from '../../src/monitor/monitor.js';

describe('ResourceMonitor', () => {
  it('reports CPUs and memory of this machine', async () => {
    const monitor = new ResourceMonitor({ intervalMs: 50, detectGpus: false });
    await monitor.start();
    const s = monitor.snapshot();
    monitor.stop();
    expect(s.cpus).toBe(os.availableParallelism());
    expect(s.memoryTotalBytes).toBe(os.totalmem());
    expect(s.memoryFreeBytes).toBeGreaterThan(0);
    expect(s.memoryFreeBytes).toBeLessThan(s.memoryTotalBytes);
    expect(s.gpus).toEqual([]);
  });

  it('measures CPU load: one core kept busy for most of a sample shows, and never past 100%', async () => {
    // The load starts at 0 and a sample that never ran or measured idle time would keep
    // it there; one core spun for ~80% of the interval must move it by at least a share of it.
    const monitor = new ResourceMonitor({ intervalMs: 300, detectGpus: false });
    await monitor.start();
    expect(monitor.snapshot().cpuLoadPercent).toBe(0);
    const spinUntil = Date.now() + 250;
    while (Date.now() < spinUntil) Math.sqrt(Math.random());
    // Read at the first sample: a later one would measure an idle interval.
    const deadline = Date.now() + 1000;
    while (monitor.snapshot().cpuLoadPercent === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const { cpuLoadPercent } = monitor.snapshot();
    monitor.stop();
    expect(cpuLoadPercent).toBeGreaterThan(50 / os.cpus().length);
    expect(cpuLoadPercent).toBeLessThanOrEqual(100);
  });

  it('parses nvidia-smi CSV', () => {
    const csv = '0, NVIDIA H100 80GB HBM3, 81559, 1024, 37\n1, NVIDIA H100 80GB HBM3, 81559, 0, [N/A]\n';
    expect(parseNvidiaSmi(csv)).toEqual([
      { index: 0, name: 'NVIDIA H100 80GB HBM3', memoryTotalBytes: 81559 * 2 ** 20, memoryUsedBytes: 1024 * 2 ** 20, utilizationPercent: 37 },
      { index: 1, name: 'NVIDIA H100 80GB HBM3', memoryTotalBytes: 81559 * 2 ** 20, memoryUsedBytes: 0, utilizationPercent: 0 },
    ]);
    expect(parseNvidiaSmi('')).toEqual([]);
  });
});
