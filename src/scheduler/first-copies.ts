import { isBtmountPeerId } from '../peer-id.js';

/**
 * Who takes the first copy of a piece from the origin (issues 11 and 12): rendezvous hashing
 * over the downloading members of the swarm. A member is this node and every connected btmount
 * peer that does not have every piece; each knows the others' peer ids (a cluster found by a
 * tracker is a full mesh), so each computes the same owner for a piece without a message: the
 * member with the highest hash(peer id, piece). A node asks the origin for the pieces it owns
 * before the others' (Scheduler, web-seed-picker), so the origin sees distinct requests in the
 * first place: a seed that hands out distinct pieces rejects less, and a web seed (which cannot
 * reject) is asked for each piece about once.
 *
 * Ownership orders, it never forbids: a member may not want the piece at all (each node reads its
 * own shard), or may see another member set (joins, leaves). The callers fall back to pieces
 * others own when they have none of their own to ask for, or when a piece waited long enough.
 *
 * Pure: peer ids in, answers out; O(members) per piece, cached until the member set changes.
 */

/** A peer that follows the first-copy rule: another btmount (other clients pick their own way). */
export function followsFirstCopyRule(peerId: string | undefined): boolean {
  return isBtmountPeerId(peerId);
}

/** FNV-1a over the id's characters: a member's 32-bit seed. */
function idSeed(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** murmur3's finalizer: a well-mixed 32-bit score. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The rendezvous score of a member (by its seed) for a piece. */
export function firstCopyScore(seed: number, piece: number): number {
  return mix(seed ^ Math.imul(piece + 1, 0x9e3779b1));
}

export class FirstCopyOwners {
  readonly #self: number;
  /** Other members: key → seed. */
  readonly #members = new Map<string, number>();
  /** Per piece: the member-set version its cached answer was computed for (0: never). */
  readonly #version: Uint32Array;
  /** Per piece: its owner's key, or undefined for this node. */
  readonly #owner: Array<string | undefined>;
  #current = 1;

  constructor(selfId: string, pieceCount: number) {
    this.#self = idSeed(selfId);
    this.#version = new Uint32Array(pieceCount);
    this.#owner = new Array<string | undefined>(pieceCount);
  }

  /** Other members, besides this node. */
  get size(): number {
    return this.#members.size;
  }

  /** The peer `key` (peer id `peerId`) is a downloading member, or (false) is not one (a seed, gone). */
  setMember(key: string, peerId: string, member: boolean): void {
    if (member === this.#members.has(key)) return;
    if (member) this.#members.set(key, idSeed(peerId));
    else this.#members.delete(key);
    this.#current++;
  }

  remove(key: string): void {
    if (this.#members.delete(key)) this.#current++;
  }

  /** This node owns the piece's first copy (alone, it owns every piece). */
  isMine(piece: number): boolean {
    return this.ownerOf(piece) === undefined;
  }

  /** The key of the member that owns the piece's first copy; undefined: this node. */
  ownerOf(piece: number): string | undefined {
    if (this.#members.size === 0) return undefined;
    if (this.#version[piece] === this.#current) return this.#owner[piece];
    let best = firstCopyScore(this.#self, piece);
    let owner: string | undefined;
    for (const [key, seed] of this.#members) {
      const score = firstCopyScore(seed, piece);
      if (score > best) {
        best = score;
        owner = key;
      }
    }
    this.#version[piece] = this.#current;
    this.#owner[piece] = owner;
    return owner;
  }
}
