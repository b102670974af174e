declare module 'parse-torrent' {
  /** The fields btmount reads from a parsed magnet URI or bare infohash. */
  export interface ParsedMagnet {
    infoHash?: string;
    /** The magnet's exact topic(s), e.g. `urn:btih:<hash>`. */
    xt?: string | string[];
    name?: string | string[];
    announce: string[];
    urlList: string[];
    peerAddresses?: string[];
  }
  export default function parseTorrent(torrentId: string | Uint8Array): Promise<ParsedMagnet>;
}
