#include "tree.h"

#include <stdlib.h>
#include <string.h>

static uint32_t hash_entry(uint32_t parent, const uint8_t *name, size_t len) {
  uint32_t h = 2166136261u ^ (parent * 2654435761u); /* FNV-1a, seeded with the parent */
  for (size_t i = 0; i < len; i++) h = (h ^ name[i]) * 16777619u;
  return h ^ (h >> 15);
}

#define COPY(field, type, count)                                         \
  do {                                                                  \
    if (borrow) {                                                       \
      t->field = (type *)in->field;                                     \
      break;                                                            \
    }                                                                   \
    t->field = malloc(sizeof(type) * (size_t)(count) + 1);              \
    if (!t->field) goto oom;                                            \
    memcpy(t->field, in->field, sizeof(type) * (size_t)(count));        \
  } while (0)

struct tree *tree_build(const struct tree_input *in, int borrow, const char **error) {
  uint32_t n = in->node_count;
  if (n == 0 || !in->is_dir[0]) {
    *error = "the tree has no root directory";
    return NULL;
  }
  if (in->name_offsets[n] != in->names_length) {
    *error = "name offsets do not match the names";
    return NULL;
  }
  for (uint32_t i = 0; i < n; i++) {
    if (in->name_offsets[i] > in->name_offsets[i + 1] || in->parents[i] >= n ||
        (in->is_dir[i] && ((uint64_t)in->first_child[i] + in->child_count[i] > n))) {
      *error = "the tree arrays are inconsistent";
      return NULL;
    }
  }
  struct tree *t = calloc(1, sizeof *t);
  if (!t) goto oom;
  t->node_count = n;
  t->borrowed = borrow;
  COPY(names, uint8_t, in->names_length);
  COPY(name_offsets, uint32_t, n + 1);
  COPY(parents, uint32_t, n);
  COPY(first_child, uint32_t, n);
  COPY(child_count, uint32_t, n);
  COPY(is_dir, uint8_t, n);
  COPY(sizes, double, n);
  COPY(stream_offsets, double, n);
  COPY(file_index, int32_t, n);

  uint32_t buckets = 16;
  while (buckets < 2 * (uint64_t)n) buckets <<= 1;
  t->bucket_mask = buckets - 1;
  t->buckets = calloc(buckets, sizeof(uint32_t));
  if (!t->buckets) goto oom;
  for (uint32_t node = 1; node < n; node++) {
    size_t len;
    const char *name = tree_name(t, node, &len);
    uint32_t b = hash_entry(t->parents[node], (const uint8_t *)name, len) & t->bucket_mask;
    while (t->buckets[b]) b = (b + 1) & t->bucket_mask;
    t->buckets[b] = node + 1;
  }
  return t;

oom:
  tree_free(t);
  *error = "out of memory for the file tree";
  return NULL;
}

void tree_free(struct tree *t) {
  if (!t) return;
  free(t->buckets);
  if (t->borrowed) {
    free(t);
    return;
  }
  free(t->names);
  free(t->name_offsets);
  free(t->parents);
  free(t->first_child);
  free(t->child_count);
  free(t->is_dir);
  free(t->sizes);
  free(t->stream_offsets);
  free(t->file_index);
  free(t);
}

int64_t tree_lookup(const struct tree *t, uint32_t parent, const char *name, size_t len) {
  uint32_t b = hash_entry(parent, (const uint8_t *)name, len) & t->bucket_mask;
  for (;;) {
    uint32_t entry = t->buckets[b];
    if (entry == 0) return -1;
    uint32_t node = entry - 1;
    size_t node_len;
    const char *node_name = tree_name(t, node, &node_len);
    if (t->parents[node] == parent && node_len == len && memcmp(node_name, name, len) == 0) return node;
    b = (b + 1) & t->bucket_mask;
  }
}
