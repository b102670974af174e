declare module 'create-torrent' {
  export interface CreateTorrentOptions {
    name?: string;
    comment?: string;
    createdBy?: string;
    creationDate?: Date | number;
    private?: boolean;
    pieceLength?: number;
    maxPieceLength?: number;
    announceList?: string[][];
    urlList?: string[];
    filterJunkFiles?: boolean;
    info?: Record<string, unknown>;
    onProgress?: (hashedBytes: number, totalBytes: number) => void;
  }
  function createTorrent(
    input: string | string[],
    opts: CreateTorrentOptions,
    cb: (err: Error | null, torrent: Uint8Array) => void,
  ): void;
  export default createTorrent;
}
