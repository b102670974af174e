import type { Logger } from '../log.js';
import type { Metainfo } from '../metainfo/index.js';
import type { Reader } from '../reader/reader.js';
import type { PieceStore } from '../store/piece-store.js';
import type { Swarm } from '../swarm/index.js';
import type { DiscoveryStatus, FuseStatus } from './status-schema.js';

/** What the control server sees of a running mount (MountSession provides it). */
export interface MountView {
  mountpoint: string;
  metainfo: Metainfo;
  store: PieceStore;
  swarm: Swarm;
  reader: Reader;
  startedAt: Date;
  /** Cache bytes warm leaves free for live reads (their read-ahead window). */
  warmReserveBytes: number;
  discovery(): DiscoveryStatus;
  /** The FUSE backend serving the mount (none yet while the control socket starts before it). */
  fuse?(): FuseStatus;
  log: Logger;
}
