/** The resource watcher: CPU count and load, memory, GPUs; sampled in the background. */

import { execFile } from 'node:child_process';
import os from 'node:os';

export interface GpuInfo {
  index: number;
  name: string;
  memoryTotalBytes: number;
  memoryUsedBytes: number;
  utilizationPercent: number;
}

export interface ResourceSnapshot {
  cpus: number;
  /** Busy share of all CPUs over the last sample interval, 0-100. */
  cpuLoadPercent: number;
  loadAverage: number[];
  memoryTotalBytes: number;
  memoryFreeBytes: number;
  gpus: GpuInfo[];
}

export interface MonitorOptions {
  intervalMs?: number;
  /** Query GPUs with nvidia-smi when it exists. */
  detectGpus?: boolean;
}

export class ResourceMonitor {
  private timer?: NodeJS.Timeout;
  private previous = cpuTimes();
  private loadPercent = 0;
  private gpus: GpuInfo[] = [];

  constructor(private readonly options: MonitorOptions = {}) {}

  async start(): Promise<void> {
    if (this.options.detectGpus !== false) this.gpus = await queryGpus();
    this.timer = setInterval(() => {
      void this.sample();
    }, this.options.intervalMs ?? 1000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
  }

  snapshot(): ResourceSnapshot {
    return {
      cpus: os.availableParallelism(),
      cpuLoadPercent: this.loadPercent,
      loadAverage: os.loadavg().map((n) => Math.round(n * 100) / 100),
      memoryTotalBytes: os.totalmem(),
      memoryFreeBytes: os.freemem(),
      gpus: this.gpus,
    };
  }

  private async sample(): Promise<void> {
    const current = cpuTimes();
    const idle = current.idle - this.previous.idle;
    const total = current.total - this.previous.total;
    this.previous = current;
    if (total > 0) this.loadPercent = Math.round((1 - idle / total) * 1000) / 10;
    if (this.gpus.length > 0) this.gpus = await queryGpus();
  }
}

function cpuTimes(): { idle: number; total: number } {
  let idle = 0;
  let total = 0;
  for (const cpu of os.cpus()) {
    const t = cpu.times;
    idle += t.idle;
    total += t.user + t.nice + t.sys + t.irq + t.idle;
  }
  return { idle, total };
}

/** GPUs via nvidia-smi; none when it is absent or fails. */
export function queryGpus(): Promise<GpuInfo[]> {
  return new Promise((resolve) => {
    execFile(
      'nvidia-smi',
      ['--query-gpu=index,name,memory.total,memory.used,utilization.gpu', '--format=csv,noheader,nounits'],
      { timeout: 5000 },
      (err, stdout) => {
        if (err) return resolve([]);
        resolve(parseNvidiaSmi(stdout));
      },
    );
  });
}

export function parseNvidiaSmi(csv: string): GpuInfo[] {
  const mib = 1024 * 1024;
  return csv
    .split('\n')
    .map((line) => line.split(',').map((s) => s.trim()))
    .filter((f) => f.length >= 5 && f[0] !== '')
    .map((f) => ({
      index: Number(f[0]),
      name: f[1]!,
      memoryTotalBytes: Number(f[2]) * mib,
      memoryUsedBytes: Number(f[3]) * mib,
      utilizationPercent: Number(f[4]) || 0,
    }));
}
