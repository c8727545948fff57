// Evaluation: frozen features, the protocols (linear, kNN, MLP, conv, fine-tuning, low-shot),
// baselines, the benchmark table and pictures.
export * from './metrics.js';
export * from './features.js';
export * from './pretrained-module.js';
export * from './linear.js';
export * from './knn.js';
export * from './mlp.js';
export * from './conv.js';
export * from './fit.js';
export * from './finetune.js';
export * from './lowshot.js';
export * from './protocols.js';
export * from './pictures.js';
export { confusionHeatmapSvg, groupedBarChartSvg, type BarSeries } from '../viz/svg.js';
