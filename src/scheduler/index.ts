export { Scheduler, type SchedulerOptions, type PeerKey, type BlockRequest, type PeerRequest, type BlockOutcome, type BlockVerdict, type Assignment } from './scheduler.js';
export { type Priority, PRIORITY_RANK, PRIORITIES_HIGH_FIRST, higherPriority, isPriority } from './priority.js';
export { RateMeter } from './rate-meter.js';
