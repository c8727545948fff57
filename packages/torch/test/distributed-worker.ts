// One rank of the distributed tests (test/distributed.test.ts starts several): runs the collective
// or training scenario named by argv[2] and prints its results as one JSON line.
import * as torch from '../src/index.js';
import { GLOBAL_BATCH, makeData, makeModel, stateOf, train } from './distributed-models.js';

const { distributed: dist, nn } = torch;
const scenario = process.argv[2];
torch.setNumThreads(1);
const group = await dist.initProcessGroup({ timeoutMs: 20_000 });
const rank = dist.getRank();
const world = dist.getWorldSize();
const out: Record<string, unknown> = { rank, world };

if (scenario === 'collectives') {
  const x = torch.tensor([rank + 1, 10 * (rank + 1)]);
  await dist.allReduce(x, 'sum');
  out.sum = x.toArray();
  const m = torch.tensor([rank]);
  await dist.allReduce(m, 'max');
  out.max = m.toArray();
  const b = torch.tensor([rank === 1 ? 42 : -1, rank]);
  await dist.broadcast(b, 1);
  out.broadcast = b.toArray();
  const parts = Array.from({ length: world }, () => torch.zeros([2]));
  await dist.allGather(parts, torch.tensor([rank, rank * rank]).float());
  out.gathered = parts.map((p) => p.toArray());
  await dist.barrier();
  await dist.allReduce(torch.zeros([1]), 'median' as never).catch((e: Error) => (out.badOp = e.message));
} else if (scenario === 'ddp' || scenario === 'syncbn') {
  // The ranks start from rank 0's weights (broadcastState) and train on their halves of the batch.
  const batchNorm = scenario === 'syncbn';
  torch.manualSeed(rank);
  const model = batchNorm ? nn.SyncBatchNorm.convertSyncBatchnorm(makeModel(true), group) : makeModel(false);
  if (rank !== 0) for (const p of model.parameters()) torch.noGrad(() => p.normal_());
  const overlap = process.argv[3] !== 'after';
  const ddp = new dist.DistributedDataParallel([model], group, { bucketMb: 1e-6, firstBucketMb: 1e-6, overlap });
  ddp.broadcastState();
  const share = GLOBAL_BATCH / world;
  train(model, makeData(batchNorm), (t) => t.narrow(0, rank * share, share), ddp);
  out.state = stateOf(model);
  out.lastSync = ddp.lastSync;
  ddp.dispose();
}
dist.destroyProcessGroup(group);
console.log(JSON.stringify(out));
