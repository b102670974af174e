import { ByteMap } from './byte-map.js';
import type { ByteString } from './bencode-reader.js';
import { decodeTorrent, type DecodedFiles, type DecodedTorrent } from './decode-torrent.js';
import { FileTree, type TorrentFile } from './file-tree.js';
import { sanitizeComponent } from './sanitize-path.js';
import { PieceLayout, type InfoHash } from './piece-layout.js';

/** A torrent whose info dictionary we hold: everything needed to mount it. */
export class Metainfo {
  readonly infoHash: InfoHash;
  /** Torrent name, sanitized like any path component. */
  readonly name: string;
  readonly layout: PieceLayout;
  readonly tree: FileTree;
  readonly byteMap: ByteMap;
  readonly infoBuffer: Buffer;
  readonly private: boolean;
  readonly announce: readonly string[];
  readonly urlList: readonly string[];
  readonly created: Date | undefined;
  readonly createdBy: string | undefined;
  readonly comment: string | undefined;
  /** True when the torrent has a files list (its root is a folder), false for a single file. */
  readonly multiFile: boolean;
  /**
   * The torrent name and each file's path exactly as the torrent spells them (unsanitized,
   * undeduplicated): a web seed (BEP 19) serves files under these names, not the mount's.
   */
  readonly rawName: ByteString;
  readonly #decodedFiles: DecodedFiles;
  #rawPaths: readonly (readonly ByteString[])[] | undefined;

  constructor(decoded: DecodedTorrent, multiFile: boolean) {
    this.infoHash = decoded.infoHash;
    this.name = sanitizeComponent(decoded.name);
    this.layout = new PieceLayout(decoded.pieceLength, decoded.totalLength, decoded.pieceHashes);
    this.tree = new FileTree(multiFile ? undefined : decoded.name, decoded.files);
    this.byteMap = new ByteMap(this.layout, this.tree.files);
    this.infoBuffer = decoded.infoBuffer;
    this.private = decoded.private;
    this.announce = decoded.announce;
    this.urlList = decoded.urlList;
    this.created = decoded.created;
    this.createdBy = decoded.createdBy;
    this.comment = decoded.comment;
    this.multiFile = multiFile;
    this.rawName = decoded.name;
    this.#decodedFiles = decoded.files;
  }

  /** Made on first use (web seeds only): an array per file is not kept for torrents that never need it. */
  get rawPaths(): readonly (readonly ByteString[])[] {
    if (!this.#rawPaths) {
      const files = this.#decodedFiles;
      this.#rawPaths = Array.from({ length: files.length }, (_, i) => files.path(i));
    }
    return this.#rawPaths;
  }

  /** All files in torrent order, pad files included. */
  get files(): readonly TorrentFile[] {
    return this.tree.files;
  }

  /** Parses the bytes of a .torrent file; throws InvalidTorrentError with a readable reason. */
  static fromTorrentFile(raw: Uint8Array): Metainfo {
    const decoded = decodeTorrent(raw);
    const multiFile = decoded.files.length !== 1 || decoded.files.componentCount(0) > 0;
    return new Metainfo(decoded, multiFile);
  }
}
