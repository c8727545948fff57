// pretext: self-supervised pretext tasks, trainer and evaluation over @pretext/torch.
export * from './models/index.js';
export * from './eval/index.js';
export * from './orchestration/bench.js';
