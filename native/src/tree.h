/*
 * The file tree of a mount, as JS hands it over at mount time: flat arrays, one
 * entry per node, node 0 the root (inode = node + 1, so the root is FUSE_ROOT_ID).
 * The children of a directory are contiguous (first_child .. first_child + child_count),
 * which makes readdir an index walk; lookup goes through a hash of (parent, name).
 * Immutable after tree_build: worker threads read it without locks.
 */
#ifndef BTMOUNT_TREE_H
#define BTMOUNT_TREE_H

#include <stddef.h>
#include <stdint.h>

struct tree {
  uint32_t node_count;
  uint8_t *names;          /* UTF-8 names back to back (not NUL-terminated) */
  uint32_t *name_offsets;  /* node_count + 1 entries */
  uint32_t *parents;
  uint32_t *first_child;
  uint32_t *child_count;
  uint8_t *is_dir;
  double *sizes;           /* bytes; 0 for directories */
  double *stream_offsets;  /* first byte of a file in the torrent's byte stream */
  int32_t *file_index;     /* the TorrentFile's index in JS; -1 for directories */
  uint32_t *buckets;       /* open addressing, node + 1 per bucket, 0 = empty */
  uint32_t bucket_mask;
  /* The arrays above (not the buckets) are the caller's, kept alive and unchanged by it. */
  int borrowed;
};

struct tree_input {
  uint32_t node_count;
  const uint8_t *names;
  size_t names_length;
  const uint32_t *name_offsets;
  const uint32_t *parents;
  const uint32_t *first_child;
  const uint32_t *child_count;
  const uint8_t *is_dir;
  const double *sizes;
  const double *stream_offsets;
  const int32_t *file_index;
};

/* Checks the input and builds the lookup hash; copies the arrays, or with `borrow` uses them in
 * place (the caller keeps them alive and unchanged until tree_free). NULL with *error on bad input. */
struct tree *tree_build(const struct tree_input *in, int borrow, const char **error);
void tree_free(struct tree *t);

/* The child of `parent` named `name` (length `len`), or -1. */
int64_t tree_lookup(const struct tree *t, uint32_t parent, const char *name, size_t len);

static inline const char *tree_name(const struct tree *t, uint32_t node, size_t *len) {
  *len = t->name_offsets[node + 1] - t->name_offsets[node];
  return (const char *)t->names + t->name_offsets[node];
}

#endif
