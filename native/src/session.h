/*
 * One libfuse3 low-level session serving a tree (metadata) and the store's slot file
 * (cache hits) on libfuse's worker threads. What C cannot serve (a piece not verified
 * in this run, absent, or reused while read) is parked and handed to JS, which answers
 * it with session_reply_data / session_reply_error from its own thread.
 */
#ifndef BTMOUNT_SESSION_H
#define BTMOUNT_SESSION_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "tree.h"

/*
 * The store's state, in memory JS writes and C reads (SharedArrayBuffers). JS's rule:
 * a slot's generation changes whenever the slot changes hands, before new bytes are
 * written to it; a piece's state is `verified_value` only while its bytes in its slot
 * are checked. C reads generation, then state and slot, then the bytes, then the
 * generation again; any change means the bytes may be another piece's, so it goes to JS.
 *
 * A reply spliced from the slot file (no copy through C's memory) cannot be checked after
 * the fact: the kernel copies the page-cache pages when the reply is written. So C pins the
 * slot first (slot_pins, the only array C writes): it adds one, then checks state and slot;
 * JS, when a slot changes hands, bumps the generation, then reads the pins, and does not
 * reuse a pinned slot until they are back to zero. Both sides use full barriers (seq_cst
 * here, Atomics in JS), so either C sees the change or JS sees the pin.
 */
struct cache_view {
  int data_fd; /* a dup of the store's data file descriptor, owned by the session */
  uint64_t slot_size;
  uint64_t piece_length;
  uint32_t piece_count;
  uint32_t slot_count;
  const uint8_t *piece_state;
  const int32_t *piece_slot;
  const uint32_t *slot_generation;
  int32_t *slot_pins;
  uint8_t verified_value;
};

/* A read C could not serve from the cache, for JS to answer. */
struct miss {
  uint64_t id;
  uint64_t fh;
  uint32_t node;
  uint64_t offset;
  uint32_t length;
};

struct session_hooks {
  /* From a worker thread: a parked read for JS. Takes ownership of `m` (malloc'd). */
  void (*miss)(void *ctx, struct miss *m);
  /* From a worker thread: the hit log went from empty to non-empty; JS should drain it. */
  void (*hits_pending)(void *ctx);
  void *ctx;
};

struct session_options {
  const char *mountpoint;
  /* The -o list (ro, default_permissions, fsname, subtype, allow_other, …), built in JS. */
  const char *mount_options;
  /* Permission bits of files and directories. */
  unsigned file_mode, dir_mode;
  uid_t uid;
  gid_t gid;
  int64_t mtime;
  uint64_t total_bytes;
  int debug;
  /* Test only: sleep this long between checking a piece and reading it (BTMOUNT_NATIVE_READ_DELAY_US). */
  unsigned read_delay_us;
};

/* Hit-log record: five doubles (fh, node, offset, length, seconds the read took). Length -1: the
 * handle fh was released; -2 (HIT_LISTED): the directory `node` was listed from its start. */
#define HIT_RECORD_DOUBLES 5
#define HIT_RELEASED (-1)
#define HIT_LISTED (-2)

struct session;

/* Mounts and starts the worker loop. Takes ownership of tree and cache.data_fd (also on failure). */
struct session *session_start(const struct session_options *opts, struct tree *tree, struct cache_view cache,
                              struct session_hooks hooks, char *error, size_t error_size);

/* Ends the workers (each finishes the request in hand), answers parked reads with EIO, closes
 * the device (ending a connection a lazy unmount left alive) and frees everything.
 * Call after unmounting; it blocks for the requests in hand, so not on the JS thread. */
void session_stop(struct session *s);

/* Moves the hit log out: *records gets a malloc'd array of `*count` records (caller frees). */
void session_take_hits(struct session *s, double **records, size_t *count);

/* Answers a parked read (no-op when it was answered already or the session stopped). */
void session_reply_data(struct session *s, uint64_t id, const void *data, size_t length);
void session_reply_error(struct session *s, uint64_t id, int error);

struct session_stats {
  uint64_t hits;
  uint64_t misses;
  uint64_t generation_retries;
  uint64_t spliced; /* of the hits, those answered by splicing the slot file */
  uint64_t parked;
};
void session_stats(struct session *s, struct session_stats *out);

#endif
