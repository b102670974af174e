import type Wire from 'bittorrent-protocol';
import utMetadata from 'ut_metadata';
import type { WireExtension } from './peer-connection.js';

/** The fields of ut_metadata's extension that setMetadata fills in. */
interface UtMetadataFields {
  metadata: Uint8Array;
  _metadataComplete: boolean;
  _metadataSize: number;
}

const extensions = new WeakMap<Uint8Array, WireExtension>();

/**
 * ut_metadata (BEP 9) serving our info dictionary, as ut_metadata's extension does, but without
 * its per-wire setMetadata: that decodes the dictionary twice and encodes it once for every
 * connection (to pull out an `info` key and to emit a 'metadata' event nobody here listens to).
 * For the cluster bench's 561-file torrent that was about 1 s of CPU per node while the cluster
 * formed, and more at each reconnect; it grows with the file count. `info` is already the exact
 * bencoded info dictionary (what the infohash is of), so it is served as it is. One class per
 * dictionary, made once.
 */
export function metadataServingExtension(info: Uint8Array): WireExtension {
  let ext = extensions.get(info);
  if (!ext) {
    // Without metadata, its constructor does not call setMetadata (the name 'ut_metadata' is on its prototype).
    const Base = utMetadata() as unknown as new (wire: Wire) => object;
    class UtMetadataServing extends Base {
      constructor(wire: Wire) {
        super(wire);
        const self = this as unknown as UtMetadataFields;
        self.metadata = info;
        self._metadataComplete = true;
        self._metadataSize = info.length;
        (wire.extendedHandshake as Record<string, unknown>)['metadata_size'] = info.length;
      }
    }
    ext = UtMetadataServing as unknown as WireExtension;
    extensions.set(info, ext);
  }
  return ext;
}
