declare module 'ut_metadata' {
  import type Wire from 'bittorrent-protocol';
  /** Returns a wire extension that serves (and can fetch) the info dictionary (BEP 9). */
  function utMetadata(metadata?: Uint8Array): { new (wire: Wire): object; prototype: { name: string } };
  export default utMetadata;
}
