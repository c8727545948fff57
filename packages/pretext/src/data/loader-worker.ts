// Worker thread of the DataLoader: turns gathered pixels into augmented, normalized float32 batches
// with its own libtorch instance (one intra-op thread, so that it does not fight the trainer).
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as torch from '@pretext/torch';
import { prepareImages, type ImageRecipe } from './augment.js';

export interface WorkerSetup {
  role: typeof ROLE;
  recipe: ImageRecipe;
  /** Set to 1 by the loader's close(): skip queued jobs. */
  stopFlag: Int32Array;
}

/** A batch to build: stored pixels of `n` samples (transferred) and the batch's generator seed. */
export interface WorkerJob {
  id: number;
  pixels: ArrayBuffer;
  n: number;
  seed: number;
}

/** Marks the workerData of loader workers (this module may also be imported by other threads). */
export const ROLE = 'pretext-data-loader';

/** The message that makes the worker close its port and exit once idle. */
export const STOP = 'stop';

/** The built float32 images (transferred), or why building failed. */
export type WorkerReply = { id: number; images: ArrayBuffer } | { id: number; error: string };

function serve(port: NonNullable<typeof parentPort>, { recipe, stopFlag }: WorkerSetup): void {
  torch.setNumThreads(1);
  const generator = new torch.Generator();
  port.on('message', (message: WorkerJob | typeof STOP) => {
    if (message === STOP) return port.close();
    if (Atomics.load(stopFlag, 0)) return;
    let reply: WorkerReply;
    try {
      generator.manualSeed(message.seed);
      const images = prepareImages(new Uint8Array(message.pixels), message.n, recipe, generator);
      const bytes = images.toTypedArray().buffer as ArrayBuffer;
      images.dispose();
      reply = { id: message.id, images: bytes };
    } catch (error) {
      reply = { id: message.id, error: error instanceof Error ? (error.stack ?? error.message) : String(error) };
    }
    port.postMessage(reply, 'images' in reply ? [reply.images] : []);
  });
}

if (!isMainThread && parentPort && (workerData as WorkerSetup | undefined)?.role === ROLE) serve(parentPort, workerData as WorkerSetup);
