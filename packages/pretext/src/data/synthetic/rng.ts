// Moved to util/random.ts; this re-export remains until tasks/frame-order.ts imports from there.
export { Rng } from '../../util/random.js';
