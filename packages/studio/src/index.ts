// Pretext Studio: the server and its API types (the client imports the types only).
export { startStudio, type Studio, type StudioOptions } from './server.js';
export type { EmbeddingMap, EmbeddingPoint, Neighbour, Panel, PictureView, TaskInfo } from './engine.js';
export type { JobView } from './jobs.js';
export type { MetricRecord, RunDetail, RunStatus, RunSummary } from './runs.js';
export type { BenchResults, ResultsFile } from './results.js';
