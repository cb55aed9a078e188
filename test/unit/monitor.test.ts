import { describe, expect, it } from 'vitest';
import { ResourceMonitor, parseNvidiaSmi } from '../../src/monitor/monitor.js';

describe('ResourceMonitor', () => {
  it('reports CPUs, load and memory of this machine', async () => {
    const monitor = new ResourceMonitor({ intervalMs: 50, detectGpus: false });
    await monitor.start();
    await new Promise((r) => setTimeout(r, 120));
    const s = monitor.snapshot();
    monitor.stop();
    expect(s.cpus).toBeGreaterThan(0);
    expect(s.cpuLoadPercent).toBeGreaterThanOrEqual(0);
    expect(s.cpuLoadPercent).toBeLessThanOrEqual(100);
    expect(s.memoryFreeBytes).toBeLessThan(s.memoryTotalBytes);
    expect(s.gpus).toEqual([]);
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
