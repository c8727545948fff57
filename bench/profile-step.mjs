// Splits one training step of a benchmark model into forward, backward and optimizer time.
import * as torch from '@pretext/torch';
import { createBackbone } from 'pretext';
const { nn, optim, tidy } = torch;
const model = process.argv[2] ?? 'resnet18-small';
torch.manualSeed(0);
const trunk = createBackbone(model);
const head = new nn.Linear(trunk.outChannels, 10);
const params = [...trunk.parameters(), ...head.parameters()];
const opt = new optim.SGD(params, { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
const x = torch.keep(torch.randn([128, 3, 32, 32]));
const y = torch.keep(torch.randint(0, 10, [128]));
const t = { forward: 0, backward: 0, step: 0 };
for (let i = 0; i < 25; i++) {
  tidy(() => {
    const t0 = performance.now();
    opt.zeroGrad();
    const loss = nn.functional.crossEntropy(head.forward(trunk.forward(x).mean([2, 3])), y);
    const t1 = performance.now();
    loss.backward();
    const t2 = performance.now();
    opt.step();
    const t3 = performance.now();
    if (i >= 5) Object.assign(t, { forward: t.forward + t1 - t0, backward: t.backward + t2 - t1, step: t.step + t3 - t2 });
  });
}
console.log(JSON.stringify(Object.fromEntries(Object.entries(t).map(([k, v]) => [k, +(v / 20).toFixed(2)]))));
