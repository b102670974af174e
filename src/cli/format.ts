/** Byte counts for people: binary units, as `--cache-size` takes them. */
export { formatSize as formatBytes } from '../store/cache-location.js';
