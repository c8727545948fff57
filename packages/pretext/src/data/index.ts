// Public API of the data layer: sample stores, image/video ingestion and built-in datasets.
export * from './store.js';
export * from './progress.js';
export * from './locations.js';
export * from './source.js';
export * from './ingest.js';
export * from './video.js';
export * from './idx.js';
export * from './pickle.js';
export * from './cifar.js';
export * from './synthetic/index.js';
export * from './datasets.js';
export * from './loader.js';
