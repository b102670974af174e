import { createHash } from 'node:crypto';
import { ByteString, readBencode, type BencodeDict } from './bencode-reader.js';
import { InvalidTorrentError } from './errors.js';
import { asInfoHash, type InfoHash } from './piece-layout.js';

/**
 * The fields of a .torrent file, checked for shape and sense but not yet
 * turned into a tree. Names are still raw bytes; sanitizing is file-tree.ts's job.
 */
export interface DecodedTorrent {
  infoHash: InfoHash;
  /** The exact bencoded info dictionary: what ut_metadata serves and what the infohash is of. */
  infoBuffer: Buffer;
  name: ByteString;
  pieceLength: number;
  pieceHashes: Buffer;
  /** Files in torrent order (single-file torrents have one, with an empty path). */
  files: DecodedFiles;
  totalLength: number;
  private: boolean;
  announce: string[];
  urlList: string[];
  created?: Date;
  createdBy?: string;
  comment?: string;
}

export interface DecodedFile {
  path: ByteString[];
  length: number;
  /** BEP 47 pad file: bytes that exist only to align the next file to a piece. */
  pad: boolean;
}

/**
 * The file list as flat arrays of numbers: a path component is a [start, end) of the
 * torrent's bytes, made into a ByteString only when asked for. At a million files an
 * object per file and per component, alive from the parse to the end of the tree, was
 * most of what the garbage collector copied at mount (146 scavenges, 3 s of a 7 s parse).
 */
export class DecodedFiles {
  readonly #lengths = new GrowingArray(Float64Array);
  readonly #pad = new GrowingArray(Uint8Array);
  /** File i's components are #begins/#ends[#firstComponent[i] .. #firstComponent[i + 1]). */
  readonly #firstComponent = new GrowingArray(Uint32Array);
  /** Byte offsets into `source` (under 4 GiB: decodeTorrent refuses bigger files). */
  readonly #begins = new GrowingArray(Uint32Array);
  readonly #ends = new GrowingArray(Uint32Array);

  constructor(readonly source: Buffer) {
    this.#firstComponent.push(0);
  }

  add(file: DecodedFile): void {
    this.#lengths.push(file.length);
    this.#pad.push(file.pad ? 1 : 0);
    for (const part of file.path) {
      this.#begins.push(part.start);
      this.#ends.push(part.end);
    }
    this.#firstComponent.push(this.#begins.length);
  }

  get length(): number {
    return this.#lengths.length;
  }

  lengthOf(i: number): number {
    return this.#lengths.data[i]!;
  }

  isPad(i: number): boolean {
    return this.#pad.data[i] === 1;
  }

  componentCount(i: number): number {
    return this.#firstComponent.data[i + 1]! - this.#firstComponent.data[i]!;
  }

  /**
   * File i's folder components exactly as bencoded ("5:train9:n01440764"), as a string to
   * key a map by: two files have the same key only if they have the same raw folders
   * (a run of bencoded strings decodes one way only). Undefined for a file at the top.
   */
  folderKey(i: number): string | undefined {
    const first = this.#firstComponent.data[i]!;
    const lastFolder = this.#firstComponent.data[i + 1]! - 2;
    if (lastFolder < first) return undefined;
    const begin = this.#begins.data[first]!;
    const prefix = String(this.#ends.data[first]! - begin).length + 1; // "<length>:"
    return this.source.toString('latin1', begin - prefix, this.#ends.data[lastFolder]!);
  }

  /** File i's last path component (its name, as the torrent spells it). */
  lastComponent(i: number): ByteString {
    const c = this.#firstComponent.data[i + 1]! - 1;
    return new ByteString(this.source, this.#begins.data[c]!, this.#ends.data[c]!);
  }

  /**
   * True when files i and j have the same folder components, byte for byte (j = -1: none, the
   * top). Compared in place: no view per component, once per file at a million files.
   */
  sameFolders(i: number, j: number): boolean {
    const first = this.#firstComponent.data[i]!;
    const folders = this.#firstComponent.data[i + 1]! - 1 - first;
    if (j < 0) return folders === 0;
    const otherFirst = this.#firstComponent.data[j]!;
    if (this.#firstComponent.data[j + 1]! - 1 - otherFirst !== folders) return false;
    const source = this.source;
    for (let c = 0; c < folders; c++) {
      const begin = this.#begins.data[first + c]!;
      const otherBegin = this.#begins.data[otherFirst + c]!;
      const length = this.#ends.data[first + c]! - begin;
      if (this.#ends.data[otherFirst + c]! - otherBegin !== length) return false;
      if (begin === otherBegin) continue;
      // Byte by byte: names are short, and Buffer.compare's native call cost more than the loop.
      for (let k = 0; k < length; k++) if (source[begin + k] !== source[otherBegin + k]) return false;
    }
    return true;
  }

  /** File i's path components as the torrent spells them (new views each call). */
  path(i: number): ByteString[] {
    const parts: ByteString[] = [];
    for (let c = this.#firstComponent.data[i]!; c < this.#firstComponent.data[i + 1]!; c++) parts.push(new ByteString(this.source, this.#begins.data[c]!, this.#ends.data[c]!));
    return parts;
  }
}

/**
 * Numbers appended one by one into a typed array that doubles when full: at a million files,
 * JS arrays of the same numbers were copied on the heap at each growth and kept the
 * garbage collector busy. `data` is valid up to `length` (it is replaced when it grows).
 */
class GrowingArray<T extends Float64Array | Uint32Array | Uint8Array> {
  data: T;
  length = 0;
  constructor(readonly kind: { new (length: number): T }) {
    this.data = new kind(1024);
  }

  push(value: number): void {
    if (this.length === this.data.length) {
      const grown = new this.kind(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = value;
  }
}

export const MIN_PIECE_LENGTH = 16 * 1024;
export const MAX_PIECE_LENGTH = 64 * 1024 * 1024;
/** 2^53 - 1 bytes is already absurd; anything above cannot even be addressed exactly. */
const MAX_TOTAL_LENGTH = Number.MAX_SAFE_INTEGER;

type Dict = BencodeDict;

export function decodeTorrent(raw: Uint8Array): DecodedTorrent {
  const bytesOf = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  // The file list keeps byte offsets as 32-bit numbers; a real .torrent is a few hundred MiB at most.
  if (bytesOf.length > 0xffffffff) throw new InvalidTorrentError('the .torrent file is larger than 4 GiB');
  const streamedFiles = new DecodedFiles(bytesOf);
  const { value: top, infoSpan } = readBencode(bytesOf, {
    onInfoFile: (entry, i) => streamedFiles.add(decodeFileEntry(entry, i)),
  });
  if (!isDict(top)) throw new InvalidTorrentError('not a torrent: the file is not a bencoded dictionary');
  const info = field(top, 'info');
  if (!isDict(info)) throw new InvalidTorrentError('missing or malformed "info" dictionary');

  const name = bytes(field(info, 'name.utf-8')) ?? bytes(field(info, 'name'));
  if (!name) throw new InvalidTorrentError('missing "info.name"');

  const pieceLength = integer(field(info, 'piece length'), 'info."piece length"');
  if (pieceLength < MIN_PIECE_LENGTH || pieceLength > MAX_PIECE_LENGTH || (pieceLength & (pieceLength - 1)) !== 0) {
    throw new InvalidTorrentError(
      `piece length ${pieceLength} is not a power of two between 16 KiB and 64 MiB`,
    );
  }

  const piecesField = field(info, 'pieces');
  if (!(piecesField instanceof ByteString)) {
    if (field(info, 'file tree') !== undefined) {
      throw new InvalidTorrentError('BitTorrent v2-only torrents are not supported (no v1 "pieces")');
    }
    throw new InvalidTorrentError('missing "info.pieces"');
  }
  if (piecesField.length % 20 !== 0) {
    throw new InvalidTorrentError(`"info.pieces" is ${piecesField.length} bytes, not a multiple of 20`);
  }

  const files = decodeFiles(info, streamedFiles);
  let totalLength = 0;
  for (let i = 0; i < files.length; i++) {
    totalLength += files.lengthOf(i);
    if (totalLength > MAX_TOTAL_LENGTH) throw new InvalidTorrentError('total size is absurdly large (over 2^53 bytes)');
  }
  const pieceCount = piecesField.length / 20;
  const expectedPieces = Math.ceil(totalLength / pieceLength);
  if (pieceCount !== expectedPieces) {
    throw new InvalidTorrentError(
      `torrent has ${pieceCount} piece hashes but its ${totalLength} bytes need ${expectedPieces} pieces of ${pieceLength}`,
    );
  }

  // The infohash is of the info dictionary's bytes exactly as written, as every client computes it.
  // A view, not a copy: the file list's names are views of the same bytes, which keep them alive anyway.
  const infoBuffer = bytesOf.subarray(infoSpan![0], infoSpan![1]);
  const infoHash = asInfoHash(createHash('sha1').update(infoBuffer).digest('hex'));

  const decoded: DecodedTorrent = {
    infoHash,
    infoBuffer,
    name,
    pieceLength,
    pieceHashes: Buffer.from(piecesField.bytes()),
    files,
    totalLength,
    private: field(info, 'private') === 1,
    announce: announceUrls(top),
    urlList: textList(field(top, 'url-list')),
  };
  const created = field(top, 'creation date');
  if (typeof created === 'number' && Number.isSafeInteger(created) && created > 0) {
    decoded.created = new Date(created * 1000);
  }
  const createdBy = text(field(top, 'created by'));
  if (createdBy !== undefined) decoded.createdBy = createdBy;
  const comment = text(field(top, 'comment'));
  if (comment !== undefined) decoded.comment = comment;
  return decoded;
}

function decodeFiles(info: Dict, streamed: DecodedFiles): DecodedFiles {
  const list = field(info, 'files');
  if (list === undefined) {
    const single = new DecodedFiles(streamed.source);
    single.add({ path: [], length: integer(field(info, 'length'), 'info.length'), pad: false });
    return single;
  }
  // The reader handed every entry of the list to decodeFileEntry as it went (see readBencode).
  if (!Array.isArray(list) || streamed.length === 0) throw new InvalidTorrentError('"info.files" is not a non-empty list');
  return streamed;
}

function decodeFileEntry(entry: unknown, i: number): DecodedFile {
  if (!isDict(entry)) throw new InvalidTorrentError(`file #${i} is not a dictionary`);
  const length = integer(field(entry, 'length'), `file #${i} length`);
  const pathField = pathList(field(entry, 'path.utf-8')) ?? pathList(field(entry, 'path'));
  if (!pathField) throw new InvalidTorrentError(`file #${i} has a missing or malformed path`);
  const attr = text(field(entry, 'attr')) ?? '';
  const first = pathField[0];
  const legacyPad = first !== undefined && first.text() === '.pad';
  return { path: pathField, length, pad: attr.includes('p') || legacyPad };
}

function field(dict: Dict, key: string): unknown {
  return dict.get(key);
}

function isDict(value: unknown): value is Dict {
  return value instanceof Map;
}

function bytes(value: unknown): ByteString | undefined {
  return value instanceof ByteString && value.length > 0 ? value : undefined;
}

function text(value: unknown): string | undefined {
  return value instanceof ByteString ? value.text() : undefined;
}

function integer(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidTorrentError(`${what} is missing, negative or not an exact integer`);
  }
  return value;
}

function pathList(value: unknown): ByteString[] | undefined {
  if (!Array.isArray(value) || value.length === 0) return undefined;
  if (!value.every((part) => part instanceof ByteString)) return undefined;
  return value as ByteString[];
}

function textList(value: unknown): string[] {
  if (value instanceof ByteString) return value.length > 0 ? [value.text()] : [];
  if (!Array.isArray(value)) return [];
  return value.map(text).filter((s): s is string => s !== undefined && s.length > 0);
}

function announceUrls(top: Dict): string[] {
  const tiers = field(top, 'announce-list');
  const urls = Array.isArray(tiers) && tiers.length > 0 ? tiers.flatMap(textList) : textList(field(top, 'announce'));
  return [...new Set(urls)];
}
