export { Metainfo } from './metainfo.js';
export { loadSource, loadSourceInfoHash, loadMetainfo, type TorrentSource } from './source.js';
export { InvalidTorrentError } from './errors.js';
export { FileTree, TorrentDir, TorrentFile, type TreeNode } from './file-tree.js';
export { ByteMap, type PieceSpan, type FileSpan } from './byte-map.js';
export { PieceLayout, BLOCK_SIZE, asInfoHash, pieceIndex, type PieceIndex, type InfoHash } from './piece-layout.js';
