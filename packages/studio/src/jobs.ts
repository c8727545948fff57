// Heavy work off the request path: jobs run one at a time (they share the CPU and libtorch), report
// a stage and progress that the page follows over server-sent events, and are found again by key,
// so asking twice for the same work joins the job already running.
import { randomBytes } from 'node:crypto';

export type JobState = 'queued' | 'running' | 'done' | 'error';

export interface JobView {
  id: string;
  key: string;
  state: JobState;
  stage: string;
  /** 0..1 within the job. */
  progress: number;
  error?: string;
}

export type Report = (stage: string, progress: number) => void;

interface Job extends JobView {
  listeners: Set<(view: JobView) => void>;
}

/** Runs async functions one after another (libtorch work shares the process's threads). */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(work: () => Promise<T>): Promise<T> {
    const result = this.tail.then(work, work);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

export class Jobs {
  private readonly byId = new Map<string, Job>();
  private readonly byKey = new Map<string, Job>();

  constructor(private readonly queue: SerialQueue) {}

  /** Starts `work` under `key`, or returns the job already queued, running or done under it. */
  start(key: string, work: (report: Report) => Promise<void>): JobView {
    const existing = this.byKey.get(key);
    if (existing && existing.state !== 'error') return view(existing);
    const job: Job = {
      id: randomBytes(8).toString('hex'),
      key,
      state: 'queued',
      stage: 'waiting for other work',
      progress: 0,
      listeners: new Set(),
    };
    this.byId.set(job.id, job);
    this.byKey.set(key, job);
    const update = (changes: Partial<JobView>) => {
      Object.assign(job, changes);
      for (const listener of job.listeners) listener(view(job));
    };
    void this.queue
      .run(async () => {
        update({ state: 'running', stage: 'starting' });
        await work((stage, progress) => update({ stage, progress: Math.max(0, Math.min(1, progress)) }));
      })
      .then(
        () => update({ state: 'done', stage: 'done', progress: 1 }),
        (e: Error) => update({ state: 'error', stage: 'failed', error: e.message }),
      );
    return view(job);
  }

  get(id: string): JobView | undefined {
    const job = this.byId.get(id);
    return job && view(job);
  }

  /** Calls `listener` on every change of the job; returns the unsubscribe function. */
  subscribe(id: string, listener: (view: JobView) => void): () => void {
    const job = this.byId.get(id);
    if (!job) return () => undefined;
    job.listeners.add(listener);
    return () => job.listeners.delete(listener);
  }
}

const view = ({ id, key, state, stage, progress, error }: Job): JobView => ({ id, key, state, stage, progress, error });
