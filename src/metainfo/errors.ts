/** A torrent that cannot be used, with the reason in words a user can act on. */
export class InvalidTorrentError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'InvalidTorrentError';
  }
}
