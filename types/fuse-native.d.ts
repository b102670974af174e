declare module 'fuse-native' {
  export interface Stat {
    mode: number;
    uid: number;
    gid: number;
    size: number;
    nlink?: number;
    blocks?: number;
    blksize?: number;
    atime: Date;
    mtime: Date;
    ctime: Date;
  }
  export interface StatFs {
    bsize: number;
    frsize: number;
    blocks: number;
    bfree: number;
    bavail: number;
    files: number;
    ffree: number;
    favail: number;
    fsid: number;
    flag: number;
    namemax: number;
  }
  type Cb = (err: number) => void;
  export interface Operations {
    init?(cb: Cb): void;
    getattr?(path: string, cb: (err: number, stat?: Stat) => void): void;
    fgetattr?(path: string, fd: number, cb: (err: number, stat?: Stat) => void): void;
    readdir?(path: string, cb: (err: number, names?: string[], stats?: Stat[]) => void): void;
    open?(path: string, flags: number, cb: (err: number, fd?: number) => void): void;
    opendir?(path: string, flags: number, cb: (err: number, fd?: number) => void): void;
    release?(path: string, fd: number, cb: Cb): void;
    releasedir?(path: string, fd: number, cb: Cb): void;
    read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErr: number) => void): void;
    statfs?(path: string, cb: (err: number, stat?: StatFs) => void): void;
    access?(path: string, mode: number, cb: Cb): void;
    getxattr?(path: string, name: string, position: number, cb: (err: number, value?: Buffer) => void): void;
    listxattr?(path: string, cb: (err: number, list?: string[]) => void): void;
    [writeLikeOp: string]: unknown;
  }
  export interface FuseOptions {
    debug?: boolean;
    force?: boolean;
    mkdir?: boolean;
    allowOther?: boolean;
    kernelCache?: boolean;
    autoCache?: boolean;
    maxRead?: number;
    fsname?: string;
    subtype?: string;
    entryTimeout?: number;
    attrTimeout?: number;
    /** ms per operation, false for none, or per-operation values with a default. */
    timeout?: number | false | Record<string, number | false>;
  }
  export default class Fuse {
    constructor(mnt: string, ops: Operations, opts?: FuseOptions);
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    static unmount(mnt: string, cb: (err: Error | null) => void): void;
    static isConfigured(cb: (err: Error | null, configured: boolean) => void): void;
    static ENOENT: number;
    static EIO: number;
    static EACCES: number;
    static ENOTDIR: number;
    static EISDIR: number;
    static EROFS: number;
    static EINVAL: number;
    static EBADF: number;
    static ENODATA: number;
  }
}
