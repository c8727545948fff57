// The models and recipes of the data-parallel tests, shared by the ranks (distributed-worker.ts) and
// by the single process they are compared with (distributed.test.ts).
import * as torch from '../src/index.js';

const { nn } = torch;

export const GLOBAL_BATCH = 8;
export const STEPS = 3;

/** An MLP, or with `batchNorm` a small conv net with BatchNorm2d and BatchNorm1d; rank 0's seed. */
export function makeModel(batchNorm: boolean): torch.nn.Sequential {
  torch.manualSeed(100);
  if (!batchNorm) return new nn.Sequential(new nn.Linear(3, 4), nn.ReLU(), new nn.Linear(4, 2));
  return new nn.Sequential(
    new nn.Conv2d(3, 4, 3, { padding: 1, bias: false }),
    new nn.BatchNorm2d(4),
    nn.ReLU(),
    new nn.Conv2d(4, 5, 3),
    new nn.BatchNorm2d(5, { momentum: 0.3 }),
    nn.ReLU(),
    nn.AdaptiveAvgPool2d(1),
    nn.Flatten(),
    new nn.Linear(5, 3),
    new nn.BatchNorm1d(3),
    new nn.Linear(3, 2),
  );
}

/** The global batch, the same on every rank (seed 7), and a second one for the accumulation step. */
export function makeData(batchNorm: boolean): { x: torch.Tensor; y: torch.Tensor }[] {
  torch.manualSeed(7);
  const input = batchNorm ? [GLOBAL_BATCH, 3, 6, 6] : [GLOBAL_BATCH, 3];
  return [0, 1].map(() => ({ x: torch.randn(input).mul(2).add(0.5), y: torch.randn([GLOBAL_BATCH, 2]) }));
}

/**
 * STEPS SGD steps on the first batch, then one step that accumulates gradients over both batches.
 * `part` takes this rank's share of a batch; `backward` and `step` are where a rank synchronizes.
 */
export function train(
  model: torch.nn.Module,
  data: { x: torch.Tensor; y: torch.Tensor }[],
  part: (t: torch.Tensor) => torch.Tensor,
  sync: { noSync: <T>(fn: () => T) => T; syncGradients: () => void },
): void {
  const opt = new torch.optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
  const backward = ({ x, y }: { x: torch.Tensor; y: torch.Tensor }) =>
    torch.tidy(() => nn.functional.mseLoss(model.forward(part(x)), part(y)).backward());
  for (let step = 0; step < STEPS; step++) {
    opt.zeroGrad();
    backward(data[0]);
    sync.syncGradients();
    opt.step();
  }
  opt.zeroGrad();
  sync.noSync(() => backward(data[0]));
  backward(data[1]);
  sync.syncGradients();
  opt.step();
}

/** Every tensor of the state dict, by name, as nested arrays. */
export const stateOf = (model: torch.nn.Module): Record<string, unknown> =>
  Object.fromEntries([...model.stateDict()].map(([k, t]) => [k, t.toArray()]));
