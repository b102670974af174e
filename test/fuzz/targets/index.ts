import type { FuzzTarget } from '../target.js';
import { magnetTarget } from './magnet.js';
import { metadataTarget } from './metadata.js';
import { pexTarget } from './pex.js';
import { torrentTarget } from './torrent.js';
import { trackerTarget } from './tracker.js';
import { trackerUdpTarget } from './tracker-udp.js';
import { webSeedTarget } from './webseed.js';
import { wireTarget } from './wire.js';

/** Every fuzz target, in the order `npm run fuzz` runs them. */
export const FUZZ_TARGETS: readonly FuzzTarget[] = [torrentTarget, magnetTarget, wireTarget, metadataTarget, pexTarget, trackerTarget, trackerUdpTarget, webSeedTarget];
