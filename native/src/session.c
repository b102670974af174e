#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* Torrent content never changes: names and attributes stay valid for a day (the kernel's
 * cache is only dropped by memory pressure or the unmount). */
static const double DAY_SECONDS = 86400.0;
/* Worker threads, a fixed pool: a hit holds one only for its pread, a miss not at all (it is
 * parked), so 16 serve 16+ concurrent readers; no libfuse thread creation or trimming. */
#define WORKER_THREADS 16
/* The largest read the kernel is told to send (see op_init). */
#define MAX_REQUEST_BYTES (512 * 1024)
/* Below this a hit is copied (pread + writev): splicing costs more syscalls than it saves. */
#define SPLICE_MIN_BYTES (64 * 1024)
/* Pieces one spliced reply may span; a read across more is copied. */
#define SPLICE_MAX_SEGMENTS 4
/* Hit records kept while JS is busy; beyond this, hits are counted but not reported. */
static const size_t MAX_HIT_RECORDS = 1u << 20;

struct parked {
  uint64_t id;
  fuse_req_t req;
};

struct session {
  struct fuse_session *se;
  struct tree *tree;
  struct cache_view cache;
  struct session_hooks hooks;
  uid_t uid;
  gid_t gid;
  unsigned file_mode, dir_mode;
  int64_t mtime;
  uint64_t total_blocks;
  unsigned read_delay_us;
  /* The kernel takes ENOSYS to open/opendir as "never send them again" (and then keeps the
   * page cache and the readdir cache by default): no round trip per open and close. */
  int no_open, no_opendir;
  /* Cache hits of at least SPLICE_MIN_BYTES are spliced from the slot file into the reply (the
   * kernel granted FUSE_CAP_SPLICE_WRITE and a pipe holds the largest reply). */
  int splice;
  uint64_t data_size; /* atomic: the slot file's size as last seen (it only grows while mounted) */
  /* Written once to stop every worker, whatever state the connection is in. */
  int stop_fd;
  pthread_t workers[WORKER_THREADS];
  int worker_count;

  uint64_t next_fh;     /* atomic */
  uint64_t hits;        /* atomic */
  uint64_t misses;      /* atomic */
  uint64_t retries;     /* atomic */
  uint64_t spliced;     /* atomic: hits answered by splice */

  pthread_mutex_t lock; /* guards everything below */
  struct parked *parked;
  size_t parked_count, parked_capacity;
  uint64_t next_id;
  int closed;
  double *hit_log;
  size_t hit_count, hit_capacity;
};

static struct session *session_of(fuse_req_t req) { return fuse_req_userdata(req); }

/* ------------------------------------------------------------------ metadata */

static int valid_node(const struct session *s, fuse_ino_t ino) { return ino >= 1 && ino <= s->tree->node_count; }

static void fill_stat(const struct session *s, uint32_t node, struct stat *st) {
  memset(st, 0, sizeof *st);
  const struct tree *t = s->tree;
  int dir = t->is_dir[node];
  uint64_t size = dir ? 0 : (uint64_t)t->sizes[node];
  st->st_ino = node + 1;
  st->st_mode = dir ? (S_IFDIR | s->dir_mode) : (S_IFREG | s->file_mode);
  /* nlink 1 on directories tells find(1) not to count subdirectories. */
  st->st_nlink = 1;
  st->st_uid = s->uid;
  st->st_gid = s->gid;
  st->st_size = (off_t)size;
  st->st_blocks = (blkcnt_t)((size + 511) / 512);
  st->st_blksize = 128 * 1024;
  st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec = s->mtime;
}

static void fill_entry(const struct session *s, uint32_t node, struct fuse_entry_param *e) {
  memset(e, 0, sizeof *e);
  e->ino = node + 1;
  e->generation = 1;
  e->attr_timeout = DAY_SECONDS;
  e->entry_timeout = DAY_SECONDS;
  fill_stat(s, node, &e->attr);
}

/*
 * Whether libfuse can splice our largest reply: it moves a reply through a per-thread pipe that
 * must hold the header, the data and a page per buffer (its own estimate), and otherwise copies
 * it through a buffer it allocates per reply. An unprivileged pipe stops at pipe-max-size
 * (1 MiB by default), which is why requests are MAX_REQUEST_BYTES.
 */
static int pipe_holds_largest_reply(void) {
  const int needed = MAX_REQUEST_BYTES + (SPLICE_MAX_SEGMENTS + 2) * 4096 + 64;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return 0;
  int fits = fcntl(fds[0], F_SETPIPE_SZ, needed) >= needed;
  close(fds[0]);
  close(fds[1]);
  return fits;
}

static void op_init(void *userdata, struct fuse_conn_info *conn) {
  struct session *s = userdata;
  s->no_open = (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) != 0;
  s->no_opendir = (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0;
  /* Reads of up to 512 KiB, many in flight (a 1 MiB O_DIRECT read goes as two at once).
   * libfuse 3.14 tells the kernel its largest request (max_pages) from max_write (writes are
   * refused anyway); 512 KiB so that a spliced reply fits an unprivileged pipe. */
  conn->max_write = MAX_REQUEST_BYTES;
  conn->max_background = 64;
  conn->congestion_threshold = 48;
  if (conn->capable & FUSE_CAP_SPLICE_WRITE) {
    conn->want |= FUSE_CAP_SPLICE_WRITE;
    s->splice = pipe_holds_largest_reply();
  }
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO; /* always plus: saves a lookup per entry */
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  struct session *s = session_of(req);
  if (!valid_node(s, parent)) return (void)fuse_reply_err(req, ENOENT);
  if (!s->tree->is_dir[parent - 1]) return (void)fuse_reply_err(req, ENOTDIR);
  int64_t node = tree_lookup(s->tree, (uint32_t)(parent - 1), name, strlen(name));
  if (node < 0) {
    /* A negative entry, cached as long: the tree never gains a name. */
    struct fuse_entry_param e = {.ino = 0, .entry_timeout = DAY_SECONDS};
    return (void)fuse_reply_entry(req, &e);
  }
  struct fuse_entry_param e;
  fill_entry(s, (uint32_t)node, &e);
  fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  struct session *s = session_of(req);
  if (!valid_node(s, ino)) return (void)fuse_reply_err(req, ENOENT);
  struct stat st;
  fill_stat(s, (uint32_t)(ino - 1), &st);
  fuse_reply_attr(req, &st, DAY_SECONDS);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  struct session *s = session_of(req);
  if (!valid_node(s, ino)) return (void)fuse_reply_err(req, ENOENT);
  if (!s->tree->is_dir[ino - 1]) return (void)fuse_reply_err(req, ENOTDIR);
  if (s->no_opendir) return (void)fuse_reply_err(req, ENOSYS);
  fi->cache_readdir = 1;
  fi->keep_cache = 1;
  fuse_reply_open(req, fi);
}

static void log_record(struct session *s, uint64_t fh, uint32_t node, double offset, double length, double seconds);

/* Offsets: 0 "." , 1 "..", 2 + i the i-th child; an entry's `off` is the offset of the next. */
static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus) {
  struct session *s = session_of(req);
  const struct tree *t = s->tree;
  if (!valid_node(s, ino)) return (void)fuse_reply_err(req, ENOENT);
  uint32_t dir = (uint32_t)(ino - 1);
  if (!t->is_dir[dir]) return (void)fuse_reply_err(req, ENOTDIR);
  char *buf = malloc(size);
  if (!buf) return (void)fuse_reply_err(req, ENOMEM);
  /* A listing from its start: the Reader treats a walk in listing order as one read-ahead stream. */
  if (off == 0) log_record(s, 0, dir, 0, HIT_LISTED, 0);
  size_t used = 0;
  uint64_t end = 2 + (uint64_t)t->child_count[dir];
  for (uint64_t at = off < 0 ? 0 : (uint64_t)off; at < end; at++) {
    uint32_t node;
    const char *name;
    size_t len;
    if (at < 2) {
      node = at == 0 ? dir : t->parents[dir];
      name = at == 0 ? "." : "..";
      len = at + 1;
    } else {
      node = t->first_child[dir] + (uint32_t)(at - 2);
      name = tree_name(t, node, &len);
    }
    char entry_name[256];
    if (len > 255) len = 255; /* names are sanitized to 255 bytes in JS; never trust it here */
    memcpy(entry_name, name, len);
    entry_name[len] = '\0';
    size_t need;
    if (plus) {
      struct fuse_entry_param e;
      fill_entry(s, node, &e);
      need = fuse_add_direntry_plus(req, buf + used, size - used, entry_name, &e, (off_t)(at + 1));
    } else {
      struct stat st;
      fill_stat(s, node, &st);
      need = fuse_add_direntry(req, buf + used, size - used, entry_name, &st, (off_t)(at + 1));
    }
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf, used);
  free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  readdir_common(req, ino, size, off, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  readdir_common(req, ino, size, off, 1);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino) {
  struct session *s = session_of(req);
  struct statvfs st;
  memset(&st, 0, sizeof st);
  st.f_bsize = 4096;
  st.f_frsize = 4096;
  st.f_blocks = s->total_blocks;
  st.f_files = s->tree->node_count;
  st.f_namemax = 255;
  st.f_flag = ST_RDONLY;
  fuse_reply_statfs(req, &st);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask) {
  struct session *s = session_of(req);
  if (!valid_node(s, ino)) return (void)fuse_reply_err(req, ENOENT);
  fuse_reply_err(req, mask & W_OK ? EROFS : 0);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  struct session *s = session_of(req);
  if (!valid_node(s, ino)) return (void)fuse_reply_err(req, ENOENT);
  if (s->tree->is_dir[ino - 1]) return (void)fuse_reply_err(req, EISDIR);
  if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) return (void)fuse_reply_err(req, EROFS);
  /* Write opens never get here on a kernel with no_open (the mount is ro: the VFS says EROFS). */
  if (s->no_open) return (void)fuse_reply_err(req, ENOSYS);
  fi->keep_cache = 1;
  fi->fh = __atomic_add_fetch(&s->next_fh, 1, __ATOMIC_RELAXED);
  fuse_reply_open(req, fi);
}


/* -------------------------------------------------------------- the hit log */

/* Appends one record; tells JS when the log was empty (one wake-up per batch). */
static void log_record(struct session *s, uint64_t fh, uint32_t node, double offset, double length, double seconds) {
  int wake = 0;
  pthread_mutex_lock(&s->lock);
  if (!s->closed && s->hit_count < MAX_HIT_RECORDS) {
    if (s->hit_count == s->hit_capacity) {
      size_t capacity = s->hit_capacity ? s->hit_capacity * 2 : 256;
      double *grown = realloc(s->hit_log, capacity * HIT_RECORD_DOUBLES * sizeof(double));
      if (grown) {
        s->hit_log = grown;
        s->hit_capacity = capacity;
      }
    }
    if (s->hit_count < s->hit_capacity) {
      double *r = s->hit_log + s->hit_count * HIT_RECORD_DOUBLES;
      r[0] = (double)fh;
      r[1] = node;
      r[2] = offset;
      r[3] = length;
      r[4] = seconds;
      wake = s->hit_count++ == 0;
    }
  }
  pthread_mutex_unlock(&s->lock);
  if (wake) s->hooks.hits_pending(s->hooks.ctx);
}

void session_take_hits(struct session *s, double **records, size_t *count) {
  pthread_mutex_lock(&s->lock);
  *records = s->hit_log;
  *count = s->hit_count;
  s->hit_log = NULL;
  s->hit_count = s->hit_capacity = 0;
  pthread_mutex_unlock(&s->lock);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  struct session *s = session_of(req);
  log_record(s, fi->fh, (uint32_t)(ino - 1), -1, HIT_RELEASED, 0);
  fuse_reply_err(req, 0);
}

/* ------------------------------------------------------------------- reads */

/* The part of a read that falls in one piece: from `at` in the stream, at most `left` bytes. */
struct segment {
  uint64_t piece, in_piece;
  size_t length;
};

static struct segment segment_at(const struct cache_view *c, uint64_t at, size_t left) {
  struct segment g = {.piece = at / c->piece_length, .in_piece = at % c->piece_length, .length = left};
  if (g.length > c->piece_length - g.in_piece) g.length = (size_t)(c->piece_length - g.in_piece);
  return g;
}

/* A read from the start of a piece: ask the kernel for the whole slot now. Sequential reads
 * arrive as several requests on several workers, out of order, and neighbouring pieces sit in
 * unrelated slots, so the kernel's own readahead of the slot file rarely kicks in. */
static void prefetch_slot(const struct cache_view *c, int32_t slot, uint64_t in_piece, size_t length) {
  if (in_piece == 0 && length < c->slot_size) readahead(c->data_fd, (off_t)((uint64_t)slot * c->slot_size), c->slot_size);
}

static double seconds_since(const struct timespec *started) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - started->tv_sec) + (double)(now.tv_nsec - started->tv_nsec) / 1e9;
}

/* Reads bytes [offset, offset + length) of `piece` from its slot if it is verified in this
 * run and its slot does not change hands meanwhile. 1: served; 0: JS must answer. */
static int read_piece(struct session *s, uint32_t piece, uint64_t offset, size_t length, char *out) {
  const struct cache_view *c = &s->cache;
  if (piece >= c->piece_count || offset + length > c->slot_size) return 0;
  int32_t slot = __atomic_load_n(&c->piece_slot[piece], __ATOMIC_ACQUIRE);
  if (slot < 0 || (uint32_t)slot >= c->slot_count) return 0;
  uint32_t generation = __atomic_load_n(&c->slot_generation[slot], __ATOMIC_ACQUIRE);
  /* After reading the generation: the slot still holds this piece, verified. */
  if (__atomic_load_n(&c->piece_state[piece], __ATOMIC_ACQUIRE) != c->verified_value ||
      __atomic_load_n(&c->piece_slot[piece], __ATOMIC_ACQUIRE) != slot) {
    return 0;
  }
  prefetch_slot(c, slot, offset, length);
  /* Fault injection for the eviction-churn test: widens the window in which JS may evict and
   * reuse the slot, which the generation check must catch. 0 outside tests. */
  if (s->read_delay_us) usleep(s->read_delay_us);
  size_t done = 0;
  while (done < length) {
    ssize_t n = pread(c->data_fd, out + done, length - done, (off_t)((uint64_t)slot * c->slot_size + offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0; /* short or failed: JS reads it and drops a damaged piece */
    done += (size_t)n;
  }
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  if (__atomic_load_n(&c->slot_generation[slot], __ATOMIC_ACQUIRE) != generation) {
    __atomic_add_fetch(&s->retries, 1, __ATOMIC_RELAXED);
    return 0; /* evicted and maybe reused while we read: these bytes may be another piece's */
  }
  return 1;
}

static int read_cached(struct session *s, uint64_t stream_offset, size_t length, char *out) {
  size_t done = 0;
  while (done < length) {
    struct segment g = segment_at(&s->cache, stream_offset + done, length - done);
    if (g.piece > UINT32_MAX || !read_piece(s, (uint32_t)g.piece, g.in_piece, g.length, out + done)) return 0;
    done += g.length;
  }
  return 1;
}

/* One read buffer per worker thread, grown to the largest request and freed when the thread ends. */
static pthread_key_t read_buffer_key;
static pthread_once_t read_buffer_once = PTHREAD_ONCE_INIT;
struct read_buffer {
  size_t size;
  char data[];
};
static void make_read_buffer_key(void) { pthread_key_create(&read_buffer_key, free); }

static char *thread_read_buffer(size_t length) {
  pthread_once(&read_buffer_once, make_read_buffer_key);
  struct read_buffer *b = pthread_getspecific(read_buffer_key);
  if (b && b->size >= length) return b->data;
  free(b);
  b = malloc(sizeof *b + length);
  pthread_setspecific(read_buffer_key, b);
  if (!b) return NULL;
  b->size = length;
  return b->data;
}

/* 1 if the slot file is at least `end` bytes long (its size is re-read only when a read goes past the last size seen). */
static int data_covers(struct session *s, uint64_t end) {
  if (end <= __atomic_load_n(&s->data_size, __ATOMIC_RELAXED)) return 1;
  struct stat st;
  if (fstat(s->cache.data_fd, &st) != 0) return 0;
  __atomic_store_n(&s->data_size, (uint64_t)st.st_size, __ATOMIC_RELAXED);
  return end <= (uint64_t)st.st_size;
}

static void unpin(struct session *s, const int32_t *slots, int count) {
  for (int i = 0; i < count; i++) __atomic_sub_fetch(&s->cache.slot_pins[slots[i]], 1, __ATOMIC_SEQ_CST);
}

/* A spliced reply: the slot file's byte ranges it is made of, and the slots pinned for it. */
struct splice_plan {
  struct fuse_bufvec v;
  struct fuse_buf more[SPLICE_MAX_SEGMENTS - 1];
  int32_t pinned[SPLICE_MAX_SEGMENTS];
  int count;
};

/*
 * Plans the reply to a cache hit as a splice of the slot file's pages: one copy (page cache →
 * the reader's pages, in the kernel) instead of two through a buffer here. Pins each slot
 * before checking it, so JS cannot reuse it until send_spliced has written the reply (see
 * cache_view). 1: planned, slots pinned; 0: not every byte is verified in a slot (or the read
 * spans too many pieces), nothing pinned: the caller copies or parks it.
 */
static int plan_splice(struct session *s, uint64_t stream_offset, size_t length, struct splice_plan *p) {
  const struct cache_view *c = &s->cache;
  p->count = 0;
  size_t done = 0;
  while (done < length) {
    struct segment g = segment_at(c, stream_offset + done, length - done);
    if (p->count == SPLICE_MAX_SEGMENTS || g.piece >= c->piece_count || g.in_piece + g.length > c->slot_size) break;
    int32_t slot = __atomic_load_n(&c->piece_slot[g.piece], __ATOMIC_ACQUIRE);
    if (slot < 0 || (uint32_t)slot >= c->slot_count) break;
    __atomic_add_fetch(&c->slot_pins[slot], 1, __ATOMIC_SEQ_CST);
    p->pinned[p->count++] = slot;
    uint64_t file_offset = (uint64_t)slot * c->slot_size + g.in_piece;
    if (__atomic_load_n(&c->piece_state[g.piece], __ATOMIC_SEQ_CST) != c->verified_value ||
        __atomic_load_n(&c->piece_slot[g.piece], __ATOMIC_SEQ_CST) != slot || !data_covers(s, file_offset + g.length)) {
      break;
    }
    prefetch_slot(c, slot, g.in_piece, g.length);
    p->v.buf[p->count - 1] = (struct fuse_buf){
        .size = g.length, .flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK, .fd = c->data_fd, .pos = (off_t)file_offset};
    done += g.length;
  }
  if (done == length) return 1;
  unpin(s, p->pinned, p->count);
  return 0;
}

/* Writes the planned reply (libfuse answers an error itself if it cannot) and unpins its slots. */
static void send_spliced(struct session *s, fuse_req_t req, struct splice_plan *p) {
  /* Fault injection for the eviction-churn test: widens the window in which JS may want the
   * slot back, which the pin must hold off. 0 outside tests. */
  if (s->read_delay_us) usleep(s->read_delay_us);
  p->v.count = (size_t)p->count;
  p->v.idx = 0;
  p->v.off = 0;
  fuse_reply_data(req, &p->v, 0);
  unpin(s, p->pinned, p->count);
  __atomic_add_fetch(&s->spliced, 1, __ATOMIC_RELAXED);
}

static void park(struct session *s, fuse_req_t req, uint64_t fh, uint32_t node, uint64_t offset, size_t length) {
  struct miss *m = malloc(sizeof *m);
  if (!m) return (void)fuse_reply_err(req, ENOMEM);
  pthread_mutex_lock(&s->lock);
  if (s->parked_count == s->parked_capacity) {
    size_t capacity = s->parked_capacity ? s->parked_capacity * 2 : 64;
    struct parked *grown = realloc(s->parked, capacity * sizeof *grown);
    if (!grown) {
      pthread_mutex_unlock(&s->lock);
      free(m);
      return (void)fuse_reply_err(req, ENOMEM);
    }
    s->parked = grown;
    s->parked_capacity = capacity;
  }
  uint64_t id = ++s->next_id;
  s->parked[s->parked_count++] = (struct parked){.id = id, .req = req};
  pthread_mutex_unlock(&s->lock);
  *m = (struct miss){.id = id, .fh = fh, .node = node, .offset = offset, .length = (uint32_t)length};
  s->hooks.miss(s->hooks.ctx, m);
}

static void note_hit(struct session *s, uint64_t fh, uint32_t node, off_t off, size_t length, double seconds) {
  __atomic_add_fetch(&s->hits, 1, __ATOMIC_RELAXED);
  log_record(s, fh, node, (double)off, (double)length, seconds);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  struct session *s = session_of(req);
  const struct tree *t = s->tree;
  if (!valid_node(s, ino)) return (void)fuse_reply_err(req, ENOENT);
  uint32_t node = (uint32_t)(ino - 1);
  if (t->is_dir[node]) return (void)fuse_reply_err(req, EISDIR);
  uint64_t file_size = (uint64_t)t->sizes[node];
  if (off < 0 || (uint64_t)off >= file_size || size == 0) return (void)fuse_reply_buf(req, NULL, 0);
  size_t length = size;
  if ((uint64_t)off + length > file_size) length = (size_t)(file_size - (uint64_t)off);
  uint64_t stream_offset = (uint64_t)t->stream_offsets[node] + (uint64_t)off;
  struct timespec started;
  clock_gettime(CLOCK_MONOTONIC, &started);
  /* Each hit is counted and logged before its reply: once replied, the file may be closed and
   * its release logged first. */
  struct splice_plan plan;
  if (s->splice && length >= SPLICE_MIN_BYTES && plan_splice(s, stream_offset, length, &plan)) {
    note_hit(s, fi->fh, node, off, length, seconds_since(&started));
    send_spliced(s, req, &plan);
    return;
  }
  char *read_buffer = thread_read_buffer(length);
  if (!read_buffer) return (void)fuse_reply_err(req, ENOMEM);
  if (read_cached(s, stream_offset, length, read_buffer)) {
    note_hit(s, fi->fh, node, off, length, seconds_since(&started));
    fuse_reply_buf(req, read_buffer, length);
    return;
  }
  __atomic_add_fetch(&s->misses, 1, __ATOMIC_RELAXED);
  park(s, req, fi->fh, node, (uint64_t)off, length);
}

/* Takes the parked request `id` out of the table; NULL if it is not there. Caller holds the lock. */
static fuse_req_t unpark_locked(struct session *s, uint64_t id) {
  for (size_t i = 0; i < s->parked_count; i++) {
    if (s->parked[i].id != id) continue;
    fuse_req_t req = s->parked[i].req;
    s->parked[i] = s->parked[--s->parked_count];
    return req;
  }
  return NULL;
}

/* Replies happen under the lock, so session_stop cannot close the device fd in between. */
void session_reply_data(struct session *s, uint64_t id, const void *data, size_t length) {
  pthread_mutex_lock(&s->lock);
  fuse_req_t req = s->closed ? NULL : unpark_locked(s, id);
  if (req) fuse_reply_buf(req, data, length);
  pthread_mutex_unlock(&s->lock);
}

void session_reply_error(struct session *s, uint64_t id, int error) {
  pthread_mutex_lock(&s->lock);
  fuse_req_t req = s->closed ? NULL : unpark_locked(s, id);
  if (req) fuse_reply_err(req, error);
  pthread_mutex_unlock(&s->lock);
}

/* ------------------------------------------------------------- write-likes */

static void erofs(fuse_req_t req) { fuse_reply_err(req, EROFS); }
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) { erofs(req); }
static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) { erofs(req); }
static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) { erofs(req); }
static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) { erofs(req); }
static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) { erofs(req); }
static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname,
                      unsigned int flags) { erofs(req); }
static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) { erofs(req); }
static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) { erofs(req); }
static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi) { erofs(req); }
static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags) { erofs(req); }
static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name) { erofs(req); }
static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, struct fuse_file_info *fi) { erofs(req); }

/* Inodes are the tree's nodes, fixed for the mount's life: nothing to forget. */
static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) { fuse_reply_none(req); }
static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets) { fuse_reply_none(req); }

static const struct fuse_lowlevel_ops OPERATIONS = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_unlink,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    /* No flush: its ENOSYS tells the kernel to stop sending one per close. */
    .release = op_release,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .statfs = op_statfs,
    .setxattr = op_setxattr,
    .removexattr = op_removexattr,
    .access = op_access,
    .create = op_create,
    .fallocate = op_fallocate,
};

/* --------------------------------------------------------------- lifecycle */

/*
 * A worker: waits on the device fd (non-blocking; EPOLLEXCLUSIVE, so one request wakes one
 * worker, as libfuse's blocking reads do) and on the stop eventfd (wakes all). libfuse's own
 * loop blocks in read(2), which nothing can interrupt after a lazy unmount with files still
 * open (and /sys/fs/fuse/connections is not always mounted to abort it); this one ends on
 * the stop signal, or by itself when the connection goes away (unmount from outside).
 */
static void *run_worker(void *arg) {
  struct session *s = arg;
  int fuse_fd = fuse_session_fd(s->se);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event on_request = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u32 = 0};
  struct epoll_event on_stop = {.events = EPOLLIN, .data.u32 = 1};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fuse_fd, &on_request) != 0 ||
      epoll_ctl(ep, EPOLL_CTL_ADD, s->stop_fd, &on_stop) != 0) {
    fprintf(stderr, "btmount: FUSE worker cannot wait on its descriptors: %s\n", strerror(errno));
    if (ep >= 0) close(ep);
    return NULL;
  }
  struct fuse_buf buf = {0};
  for (;;) {
    struct epoll_event events[2];
    int n = epoll_wait(ep, events, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    int stop = 0, request = 0;
    for (int i = 0; i < n; i++) {
      if (events[i].data.u32 == 1) stop = 1;
      else request = 1;
    }
    if (stop) break;
    if (!request) continue;
    int res = fuse_session_receive_buf(s->se, &buf);
    if (res == -EAGAIN || res == -EINTR) continue; /* another worker took it */
    if (res <= 0 || fuse_session_exited(s->se)) break; /* 0: unmounted (ENODEV) */
    fuse_session_process_buf(s->se, &buf);
  }
  free(buf.mem);
  close(ep);
  return NULL;
}

static void free_session(struct session *s) {
  if (s->se) fuse_session_destroy(s->se);
  if (s->cache.data_fd >= 0) close(s->cache.data_fd);
  if (s->stop_fd >= 0) close(s->stop_fd);
  tree_free(s->tree);
  free(s->parked);
  free(s->hit_log);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

static void stop_workers(struct session *s) {
  uint64_t one = 1;
  ssize_t ignored = write(s->stop_fd, &one, sizeof one);
  (void)ignored;
  for (int i = 0; i < s->worker_count; i++) pthread_join(s->workers[i], NULL);
  s->worker_count = 0;
}

struct session *session_start(const struct session_options *opts, struct tree *tree, struct cache_view cache,
                              struct session_hooks hooks, char *error, size_t error_size) {
  struct session *s = calloc(1, sizeof *s);
  if (!s) {
    tree_free(tree);
    close(cache.data_fd);
    snprintf(error, error_size, "out of memory");
    return NULL;
  }
  pthread_mutex_init(&s->lock, NULL);
  s->tree = tree;
  s->cache = cache;
  s->hooks = hooks;
  s->uid = opts->uid;
  s->gid = opts->gid;
  s->file_mode = opts->file_mode & 07777;
  s->dir_mode = opts->dir_mode & 07777;
  s->mtime = opts->mtime;
  s->total_blocks = (opts->total_bytes + 4095) / 4096;
  s->read_delay_us = opts->read_delay_us;
  s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->stop_fd < 0) {
    snprintf(error, error_size, "cannot create an eventfd: %s", strerror(errno));
    free_session(s);
    return NULL;
  }

  char *argv[] = {"btmount", "-o", (char *)opts->mount_options, opts->debug ? "-d" : NULL, NULL};
  struct fuse_args args = FUSE_ARGS_INIT(opts->debug ? 4 : 3, argv);
  s->se = fuse_session_new(&args, &OPERATIONS, sizeof OPERATIONS, s);
  fuse_opt_free_args(&args);
  if (!s->se) {
    snprintf(error, error_size, "libfuse refused the session options");
    free_session(s);
    return NULL;
  }
  if (fuse_session_mount(s->se, opts->mountpoint) != 0) {
    snprintf(error, error_size, "cannot mount %s with libfuse3 (see the line above)", opts->mountpoint);
    free_session(s);
    return NULL;
  }
  int fuse_fd = fuse_session_fd(s->se);
  fcntl(fuse_fd, F_SETFL, fcntl(fuse_fd, F_GETFL) | O_NONBLOCK);
  /* Workers take no signals: Node's main thread handles them. */
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &previous);
  int failed = 0;
  for (int i = 0; i < WORKER_THREADS && !failed; i++) {
    failed = pthread_create(&s->workers[i], NULL, run_worker, s);
    if (!failed) s->worker_count++;
  }
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
  if (failed) {
    stop_workers(s);
    fuse_session_unmount(s->se);
    snprintf(error, error_size, "cannot start the FUSE threads: %s", strerror(failed));
    free_session(s);
    return NULL;
  }
  return s;
}

void session_stop(struct session *s) {
  stop_workers(s);
  pthread_mutex_lock(&s->lock);
  s->closed = 1;
  for (size_t i = 0; i < s->parked_count; i++) fuse_reply_err(s->parked[i].req, EIO);
  s->parked_count = 0;
  /* Closes the device fd, which ends the connection if a lazy unmount left it alive. Under
   * the lock, so no JS reply writes to a reused fd number. */
  fuse_session_destroy(s->se);
  s->se = NULL;
  pthread_mutex_unlock(&s->lock);
  free_session(s);
}

void session_stats(struct session *s, struct session_stats *out) {
  out->hits = __atomic_load_n(&s->hits, __ATOMIC_RELAXED);
  out->misses = __atomic_load_n(&s->misses, __ATOMIC_RELAXED);
  out->generation_retries = __atomic_load_n(&s->retries, __ATOMIC_RELAXED);
  out->spliced = __atomic_load_n(&s->spliced, __ATOMIC_RELAXED);
  pthread_mutex_lock(&s->lock);
  out->parked = s->parked_count;
  pthread_mutex_unlock(&s->lock);
}
