// Weighted kNN as in InstDisc (Wu et al. 2018) and lightly: cosine similarity to every train
// feature, the k most similar vote for their class with weight exp(similarity / T).
import { nn, noGrad, tidy, zeros, type Tensor } from '@pretext/torch';
import { checkTrainTest, ComputeMeter, probeResult, tensorIndex, type EvalResult, type LabeledFeatures } from './metrics.js';

export interface KnnOptions {
  /** Neighbors (default 200; capped at the train size). */
  k?: number;
  /** Temperature of the vote weights (default 0.07). */
  temperature?: number;
  /** Test rows per similarity matmul (default 256). */
  batchSize?: number;
}

/** Class votes (M x C) of each query from its k nearest train features by cosine similarity. */
export function knnVotes(bank: Tensor, bankLabels: Int32Array, queries: Tensor, numClasses: number, options: KnnOptions = {}): Tensor {
  const k = Math.min(options.k ?? 200, bank.shape[0]);
  const temperature = options.temperature ?? 0.07;
  const batchSize = options.batchSize ?? 256;
  if (!(k >= 1)) throw new RangeError(`kNN: k must be at least 1, got ${options.k}`);
  if (!(temperature > 0)) throw new RangeError(`kNN: temperature must be positive, got ${temperature}`);
  return noGrad(() =>
    tidy(() => {
      const keys = nn.functional.normalize(bank.flatten(1)).t().contiguous();
      const labels = tensorIndex(bankLabels);
      const m = queries.shape[0];
      const votes = zeros([m, numClasses]);
      for (let start = 0; start < m; start += batchSize) {
        tidy(() => {
          const rows = Math.min(batchSize, m - start);
          const q = nn.functional.normalize(queries.narrow(0, start, rows).flatten(1));
          const [similarity, neighbors] = q.mm(keys).topk(k, 1, true, true);
          const neighborLabels = labels.indexSelect(0, neighbors.flatten()).view([rows, k]);
          votes.narrow(0, start, rows).copy_(zeros([rows, numClasses]).scatterAdd(1, neighborLabels, similarity.div(temperature).exp()));
        });
      }
      return votes;
    }),
  );
}

export function knnProbe(train: LabeledFeatures, test: LabeledFeatures, options: KnnOptions = {}): EvalResult {
  checkTrainTest(train, test);
  const meter = new ComputeMeter();
  const votes = knnVotes(train.features, train.labels, test.features, train.classNames.length, options);
  const predicted = Int32Array.from(tidy(() => votes.argmax(1).toArray()));
  votes.dispose();
  return probeResult('knn', predicted, train, test, meter.read(0), {
    k: Math.min(options.k ?? 200, train.labels.length),
    temperature: options.temperature ?? 0.07,
    similarity: 'cosine',
  });
}
