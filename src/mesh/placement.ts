import type { Job } from '../domain/job.js';
import { type JobLimits, type Offer, imageRef, misfit } from '../domain/offer.js';
import type { SpecPolicy } from '../domain/spec.js';
import type { Placement, RemoteTarget } from '../scheduler/scheduler.js';
import type { Mesh } from './mesh.js';
import type { OfferBook } from './offer-book.js';
import { type OriginFiles, RemoteExecutor } from './remote-executor.js';
import { admitsPeer } from './job-service.js';
import type { MeshAccept } from '../config/schema.js';

/** The scheduler's view of the mesh: which peer takes a job this node should not run itself. */
export class MeshPlacement implements Placement {
  private readonly executors = new Map<string, RemoteExecutor>();

  constructor(
    private readonly mesh: Mesh,
    private readonly localLimits: () => JobLimits,
    private readonly localImages: () => ReadonlySet<string>,
    private readonly outputLimitBytes: number,
    /** Where forwarded jobs' inputs come from and their outputs go. */
    private readonly files: OriginFiles,
    /** Peers this node may hand its jobs to (mesh.forward_to). */
    private readonly forwardTo: MeshAccept = 'any',
  ) {}

  fitsLocally(job: Job): boolean {
    return misfit(job.spec, this.localLimits()) === undefined;
  }

  prefersRemote(job: Job): boolean {
    const image = imageRef(job.spec.image);
    if (this.localImages().has(image)) return false;
    return this.candidates(job).some((o) => o.images.includes(image));
  }

  choosePeer(job: Job, exclude: ReadonlySet<string>): RemoteTarget | undefined {
    const best = this.candidates(job, exclude)[0];
    if (!best) return undefined;
    this.mesh.book.reserve(best.peerId);
    return { peerId: best.peerId, executor: this.executorFor(best.peerId) };
  }

  release(peerId: string): void {
    this.mesh.book.release(peerId);
  }

  suspend(peerId: string, ms: number): void {
    this.mesh.book.suspend(peerId, ms);
  }

  private candidates(job: Job, exclude?: ReadonlySet<string>) {
    const all = this.mesh.book.candidates(job.spec, exclude);
    return this.forwardTo === 'any' ? all : all.filter((o) => admitsPeer(this.forwardTo, o.peerId));
  }

  private executorFor(peerId: string): RemoteExecutor {
    let executor = this.executors.get(peerId);
    if (!executor) {
      executor = new RemoteExecutor(peerId, (id, signal) => this.mesh.openJobChannel(id, signal), this.outputLimitBytes, this.files);
      this.executors.set(peerId, executor);
    }
    return executor;
  }
}

/**
 * The limits each peer whose offer this node holds takes jobs under: its offer's limits on
 * top of this node's other rules (images, registries). Host paths name this machine's
 * files, so a job bound for a peer mounts none.
 */
export function peerPolicies(book: Pick<OfferBook, 'offers'>, local: SpecPolicy): SpecPolicy[] {
  return book.offers().map((offer) => peerPolicy(offer, local));
}

function peerPolicy(offer: Offer, local: SpecPolicy): SpecPolicy {
  const l = offer.limits;
  return {
    ...local,
    cpus: l.cpus,
    memoryBytes: l.memoryBytes,
    timeoutMs: l.timeoutMs,
    maxGpus: l.gpus,
    allowedNetworks: l.networks,
    allowedVolumes: [],
  };
}
