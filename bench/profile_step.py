"""Splits one training step of a benchmark model into forward, backward and optimizer time (ms)."""
import json, sys, time
import torch, torch.nn.functional as F
sys.path.insert(0, __file__.rsplit('/', 1)[0])
from engine import nin, resnet18
torch.set_num_threads(2); torch.manual_seed(0)
trunk, c = nin(4) if sys.argv[1] == 'nin4' else resnet18(16)
head = torch.nn.Linear(c, 10)
opt = torch.optim.SGD(list(trunk.parameters()) + list(head.parameters()), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
x, y = torch.randn(128, 3, 32, 32), torch.randint(0, 10, (128,))
t = {'forward': 0.0, 'backward': 0.0, 'step': 0.0}
for i in range(25):
    t0 = time.perf_counter(); opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(head(trunk(x).mean((2, 3))), y)
    t1 = time.perf_counter(); loss.backward(); t2 = time.perf_counter(); opt.step(); t3 = time.perf_counter()
    if i >= 5:
        t['forward'] += t1 - t0; t['backward'] += t2 - t1; t['step'] += t3 - t2
print(json.dumps({k: round(v / 20 * 1000, 2) for k, v in t.items()}))
