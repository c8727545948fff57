# PyTorch side of the optimizer-step benchmark: the parameters of a Pretext backbone (shapes read
# from a JSON list), fixed random gradients, and the time of one optimizer step.
# Prints one JSON line: {"optimizer", "foreach", "ms_per_step"}.
import argparse, json, time
import torch

p = argparse.ArgumentParser()
p.add_argument('--shapes', required=True)
p.add_argument('--optimizer', choices=['sgd', 'adam'], required=True)
p.add_argument('--foreach', action='store_true')
p.add_argument('--steps', type=int, default=300)
a = p.parse_args()
torch.manual_seed(0)
params = [torch.randn(s, requires_grad=True) for s in json.load(open(a.shapes))]
for q in params:
    q.grad = torch.randn_like(q)
if a.optimizer == 'sgd':
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4, foreach=a.foreach)
else:
    opt = torch.optim.Adam(params, lr=1e-4, weight_decay=5e-4, foreach=a.foreach)
for _ in range(10):
    opt.step()
start = time.perf_counter()
for _ in range(a.steps):
    opt.step()
ms = (time.perf_counter() - start) * 1000 / a.steps
print(json.dumps({'optimizer': a.optimizer, 'foreach': a.foreach, 'ms_per_step': ms}))
