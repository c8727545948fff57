// One rank of the distributed tests (test/distributed.test.ts starts several): runs the collective
// or training scenario named by argv[2] and prints its results as one JSON line.
import * as torch from '../src/index.js';

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
} else if (scenario === 'ddp') {
  // Each rank starts from its own seed; broadcastState makes rank 0's weights everyone's.
  torch.manualSeed(100 + rank);
  const model = new nn.Sequential(new nn.Linear(3, 4), nn.ReLU(), new nn.Linear(4, 2));
  const ddp = new dist.DistributedDataParallel([model], group, { bucketMb: 0.0001 });
  ddp.broadcastState();
  const opt = new torch.optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
  // The global batch is the same on every rank (seed 7); each rank takes its half.
  torch.manualSeed(7);
  const x = torch.randn([8, 3]);
  const y = torch.randn([8, 2]);
  const mine = (t: torch.Tensor) => t.narrow(0, rank * (8 / world), 8 / world);
  for (let step = 0; step < 3; step++) {
    torch.tidy(() => {
      opt.zeroGrad();
      nn.functional.mseLoss(model.forward(mine(x)), mine(y)).backward();
      ddp.syncGradients();
      opt.step();
    });
  }
  out.weights = model.parameters().map((p) => p.toArray());
}
dist.destroyProcessGroup(group);
console.log(JSON.stringify(out));
