export { WebSeed, type WebSeedOptions, type WebSeedStatus } from './web-seed.js';
export { WebSeedError, fetchRange, type WebSeedFailureKind } from './range-fetch.js';
export { collectWebSeeds, parseWebSeedUrl, planPiece, webSeedFileUrl, type WebSeedRange, type PieceRequestPlan } from './web-seed-url.js';
export { WebSeedSet, type WebSeedSetOptions } from './web-seed-set.js';
