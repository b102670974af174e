declare module 'bencode' {
  interface Decode {
    (data: Uint8Array, start?: number, end?: number): unknown;
    (data: Uint8Array, encoding: string): unknown;
    /** Where the last decode stopped: equals the input length when all of it was one value. */
    position: number;
  }
  const bencode: {
    decode: Decode;
    encode(value: unknown): Uint8Array;
    byteLength(value: unknown): number;
  };
  export default bencode;
}
