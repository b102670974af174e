export { Swarm, type SwarmOptions, type SwarmStats, type SwarmPeerStats, type SwarmWebSeedStats, type TransferSource } from './swarm.js';
export { type PieceStorage, MemoryPieceStorage } from './piece-storage.js';
export { MessageFramer, FramingError } from './message-framer.js';
export { type PeerSource } from './peer-connection.js';
export { TokenBucket } from './rate-limiter.js';
export { chooseUnchoked } from './choker.js';
export { type WebPieceSource } from './web-piece-source.js';
export { pickWebSeedFetches, type WantedPieceSupply, type WebSeedCapacity, type WebSeedPick } from './web-seed-picker.js';
