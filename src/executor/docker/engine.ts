import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import type { Config } from '../../config/schema.js';
import { GridxError, messageOf } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { type ContainerObserver, DockerExecutor } from './docker-executor.js';
import type { ExecutionFiles } from '../executor.js';

/** Connects to the Engine API and checks that it answers, with a message that says what to do if not. */
export async function connectDocker(socketPath: string): Promise<Docker> {
  const docker = new Docker({ socketPath, timeout: 0 });
  try {
    await docker.ping();
  } catch (err) {
    throw new GridxError(
      'DOCKER_UNAVAILABLE',
      `cannot reach the Docker engine at ${socketPath} (${messageOf(err)}). ` +
        'Start it (as root: `bash scripts/setup.sh` installs and starts one; or `systemctl start docker`), ' +
        'or point GRIDX_DOCKER_SOCKET at a running engine.',
      { cause: err },
    );
  }
  return docker;
}

/** The hardened Docker executor a node or runner runs its jobs with, labelled with its id. */
/** The Docker executor as configured; `files` places inputs and collects /outputs (none: jobs with inputs are refused). */
export async function openDockerExecutor(
  config: Readonly<Config>,
  nodeId: string,
  log: Logger,
  files?: ExecutionFiles,
  observe?: ContainerObserver,
): Promise<DockerExecutor> {
  return new DockerExecutor({
    docker: await connectDocker(config.dockerSocket),
    nodeId,
    user: config.sandbox.user,
    pidsLimit: config.sandbox.pidsLimit,
    tmpfsBytes: config.sandbox.tmpfsBytes,
    outputLimitBytes: config.sandbox.outputLimitBytes,
    pullTimeoutMs: config.sandbox.pullTimeoutMs,
    registries: config.sandbox.registries,
    volumes: { allowedVolumes: config.sandbox.allowedVolumes, writableVolumes: config.sandbox.writableVolumes },
    log: log.child('docker'),
    ...(files ? { files } : {}),
    ...(observe ? { observe } : {}),
  });
}

/** The small image the demo and tests use, built from local files: no registry needed. */
export const LOCAL_IMAGE = 'gridx/busybox:local';

const BUSYBOX_CANDIDATES = ['/bin/busybox', '/usr/bin/busybox'];

/**
 * Builds LOCAL_IMAGE (`FROM scratch` plus a static busybox and its applet links) unless
 * it exists. Needs Debian's busybox-static on the host.
 */
export async function ensureLocalImage(docker: Docker, tag = LOCAL_IMAGE): Promise<void> {
  try {
    await docker.getImage(tag).inspect();
    return;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
  }
  const busybox = BUSYBOX_CANDIDATES.find((p) => fs.existsSync(p));
  if (!busybox) {
    throw new GridxError(
      'DOCKER_UNAVAILABLE',
      `cannot build ${tag}: no busybox found at ${BUSYBOX_CANDIDATES.join(' or ')}; install Debian's busybox-static`,
    );
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gridx-image-'));
  try {
    fs.copyFileSync(busybox, path.join(dir, 'busybox'));
    fs.writeFileSync(
      path.join(dir, 'Dockerfile'),
      [
        'FROM scratch',
        'COPY busybox /bin/busybox',
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]',
        'ENV PATH=/bin',
        'CMD ["sh"]',
        '',
      ].join('\n'),
    );
    const stream = await docker.buildImage({ context: dir, src: ['Dockerfile', 'busybox'] }, { t: tag, rm: true });
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(stream, (err: Error | null, events: Array<{ error?: string }>) => {
        const failed = events?.find((e) => e.error);
        if (err || failed) reject(new Error(`building ${tag} failed: ${err?.message ?? failed?.error}`));
        else resolve();
      });
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
