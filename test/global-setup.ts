import { connectDocker, ensureLocalImage } from '../src/executor/docker/engine.js';

/** Every run needs the engine and the local test image; fail at once, clearly, if not. */
export default async function setup(): Promise<void> {
  const docker = await connectDocker(process.env.GRIDX_DOCKER_SOCKET ?? '/var/run/docker.sock');
  await ensureLocalImage(docker);
}
