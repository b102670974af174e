/*
 * N-API glue: turns JS values into a tree and a cache view, starts a session, and carries
 * parked reads and hit batches back to JS through one threadsafe function.
 */
#include <errno.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "session.h"
#include "tree.h"

#define CHECK(env, call)                                        \
  do {                                                          \
    if ((call) != napi_ok) {                                    \
      napi_throw_error((env), NULL, "btmount native: " #call);  \
      return NULL;                                              \
    }                                                           \
  } while (0)

enum { SHARED_STATE, SHARED_SLOT, SHARED_GENERATION, SHARED_PINS, SHARED_COUNT };
#define TREE_ARRAYS 9

/* What JS holds for a mount (an external). Freed when the threadsafe function finalizes. */
struct mount_handle {
  struct session *session;
  napi_threadsafe_function events;
  napi_ref on_hits;
  napi_ref shared[SHARED_COUNT]; /* keeps the SharedArrayBuffers C reads alive */
  napi_ref tree_arrays[TREE_ARRAYS]; /* keeps the tree's arrays alive: C uses them in place */
  int stopping;
};

/* ------------------------------------------------------------ value helpers */

static int get_property(napi_env env, napi_value object, const char *name, napi_value *out) {
  bool has = false;
  if (napi_has_named_property(env, object, name, &has) != napi_ok || !has) return 0;
  return napi_get_named_property(env, object, name, out) == napi_ok;
}

static int get_double(napi_env env, napi_value object, const char *name, double *out) {
  napi_value v;
  return get_property(env, object, name, &v) && napi_get_value_double(env, v, out) == napi_ok;
}

static int get_string(napi_env env, napi_value object, const char *name, char *out, size_t size) {
  napi_value v;
  size_t len;
  return get_property(env, object, name, &v) && napi_get_value_string_utf8(env, v, out, size, &len) == napi_ok &&
         len < size - 1;
}

/* A typed array of `type` at object[name]; *count is its element count. */
static int get_array(napi_env env, napi_value object, const char *name, napi_typedarray_type type, void **data,
                     size_t *count, napi_value *array_out) {
  napi_value v;
  bool is_typed = false;
  if (!get_property(env, object, name, &v) || napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) return 0;
  napi_typedarray_type actual;
  napi_value buffer;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &actual, count, data, &buffer, &offset) != napi_ok || actual != type) return 0;
  if (array_out) *array_out = v;
  return 1;
}

static napi_value throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

/* ---------------------------------------------------------- events to JS */

static void on_miss(void *ctx, struct miss *m) {
  struct mount_handle *h = ctx;
  if (napi_call_threadsafe_function(h->events, m, napi_tsfn_nonblocking) != napi_ok) free(m);
}

static void on_hits_pending(void *ctx) {
  struct mount_handle *h = ctx;
  napi_call_threadsafe_function(h->events, NULL, napi_tsfn_nonblocking);
}

/* On the JS thread: a miss (data) → onMiss(id, fh, node, offset, length); NULL → onHits(): hits are
 * waiting, for JS to take with takeHits when it chooses (a little later, so that one wake-up of the
 * JS thread carries many: with 16 readers hitting the cache, a wake-up per batch was one per read or two). */
static void deliver_event(napi_env env, napi_value on_miss_fn, void *context, void *data) {
  struct mount_handle *h = context;
  struct miss *m = data;
  if (env == NULL || h->stopping || h->session == NULL) {
    free(m);
    return;
  }
  napi_value undefined, result;
  napi_get_undefined(env, &undefined);
  if (m) {
    napi_value argv[5];
    napi_create_double(env, (double)m->id, &argv[0]);
    napi_create_double(env, (double)m->fh, &argv[1]);
    napi_create_uint32(env, m->node, &argv[2]);
    napi_create_double(env, (double)m->offset, &argv[3]);
    napi_create_uint32(env, m->length, &argv[4]);
    free(m);
    napi_call_function(env, undefined, on_miss_fn, 5, argv, &result);
    return;
  }
  napi_value on_hits_fn;
  napi_get_reference_value(env, h->on_hits, &on_hits_fn);
  napi_call_function(env, undefined, on_hits_fn, 0, NULL, &result);
}

static void finalize_events(napi_env env, void *data, void *hint) {
  struct mount_handle *h = data;
  napi_delete_reference(env, h->on_hits);
  for (int i = 0; i < SHARED_COUNT; i++) {
    if (h->shared[i]) napi_delete_reference(env, h->shared[i]);
  }
  for (int i = 0; i < TREE_ARRAYS; i++) {
    if (h->tree_arrays[i]) napi_delete_reference(env, h->tree_arrays[i]);
  }
  free(h);
}

/* ------------------------------------------------------------------ mount */

/* The tree from JS's snapshot arrays, used in place (`arrays` gets them, for the caller to keep
 * alive): at a million files a copy was 65 MiB more of RSS and a pass over it on the JS thread. */
static napi_value read_tree(napi_env env, napi_value object, struct tree **out, napi_value arrays[TREE_ARRAYS]) {
  struct tree_input in = {0};
  size_t count[TREE_ARRAYS];
  void *p[TREE_ARRAYS];
  if (!get_array(env, object, "names", napi_uint8_array, &p[0], &count[0], &arrays[0]) ||
      !get_array(env, object, "nameOffsets", napi_uint32_array, &p[1], &count[1], &arrays[1]) ||
      !get_array(env, object, "parents", napi_uint32_array, &p[2], &count[2], &arrays[2]) ||
      !get_array(env, object, "firstChild", napi_uint32_array, &p[3], &count[3], &arrays[3]) ||
      !get_array(env, object, "childCount", napi_uint32_array, &p[4], &count[4], &arrays[4]) ||
      !get_array(env, object, "isDir", napi_uint8_array, &p[5], &count[5], &arrays[5]) ||
      !get_array(env, object, "sizes", napi_float64_array, &p[6], &count[6], &arrays[6]) ||
      !get_array(env, object, "streamOffsets", napi_float64_array, &p[7], &count[7], &arrays[7]) ||
      !get_array(env, object, "fileIndex", napi_int32_array, &p[8], &count[8], &arrays[8])) {
    return throw_type(env, "btmount native: tree arrays missing or of the wrong type");
  }
  size_t n = count[2];
  if (n == 0 || n > UINT32_MAX - 1 || count[1] != n + 1 || count[3] != n || count[4] != n || count[5] != n ||
      count[6] != n || count[7] != n || count[8] != n) {
    return throw_type(env, "btmount native: tree arrays of different lengths");
  }
  in.node_count = (uint32_t)n;
  in.names = p[0];
  in.names_length = count[0];
  in.name_offsets = p[1];
  in.parents = p[2];
  in.first_child = p[3];
  in.child_count = p[4];
  in.is_dir = p[5];
  in.sizes = p[6];
  in.stream_offsets = p[7];
  in.file_index = p[8];
  const char *error = NULL;
  *out = tree_build(&in, 1, &error);
  if (!*out) {
    char message[200];
    snprintf(message, sizeof message, "btmount native: %s", error);
    return throw_type(env, message);
  }
  napi_value ok;
  napi_get_boolean(env, true, &ok);
  return ok;
}

static napi_value read_cache(napi_env env, napi_value object, struct cache_view *c, napi_value shared[SHARED_COUNT]) {
  double fd, slot_size, piece_length, verified;
  size_t pieces, slots, pieces2, slots2;
  void *state, *slot, *generation, *pins;
  if (!get_double(env, object, "dataFd", &fd) || !get_double(env, object, "slotSize", &slot_size) ||
      !get_double(env, object, "pieceLength", &piece_length) || !get_double(env, object, "verifiedValue", &verified) ||
      !get_array(env, object, "pieceState", napi_uint8_array, &state, &pieces, &shared[SHARED_STATE]) ||
      !get_array(env, object, "pieceSlot", napi_int32_array, &slot, &pieces2, &shared[SHARED_SLOT]) ||
      !get_array(env, object, "slotGeneration", napi_uint32_array, &generation, &slots, &shared[SHARED_GENERATION]) ||
      !get_array(env, object, "slotPins", napi_int32_array, &pins, &slots2, &shared[SHARED_PINS])) {
    return throw_type(env, "btmount native: cache view incomplete");
  }
  if (pieces != pieces2 || slots != slots2 || slot_size < 1 || piece_length < 1 || pieces > UINT32_MAX || slots > UINT32_MAX) {
    return throw_type(env, "btmount native: cache view inconsistent");
  }
  int dup_fd = dup((int)fd);
  if (dup_fd < 0) return throw_type(env, "btmount native: cannot duplicate the data file descriptor");
  *c = (struct cache_view){
      .data_fd = dup_fd,
      .slot_size = (uint64_t)slot_size,
      .piece_length = (uint64_t)piece_length,
      .piece_count = (uint32_t)pieces,
      .slot_count = (uint32_t)slots,
      .piece_state = state,
      .piece_slot = slot,
      .slot_generation = generation,
      .slot_pins = pins,
      .verified_value = (uint8_t)verified,
  };
  napi_value ok;
  napi_get_boolean(env, true, &ok);
  return ok;
}

/* mount(options) → handle. Throws Error('btmount native: …') when libfuse cannot mount. */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value opts;
  CHECK(env, napi_get_cb_info(env, info, &argc, &opts, NULL, NULL));
  if (argc < 1) return throw_type(env, "btmount native: mount(options)");
  char mountpoint[4096], mount_options[2048];
  double uid, gid, file_mode, dir_mode, mtime, total_bytes, debug = 0, read_delay_us = 0;
  napi_value tree_value, cache_value, on_miss_fn, on_hits_fn;
  if (!get_string(env, opts, "mountpoint", mountpoint, sizeof mountpoint) ||
      !get_string(env, opts, "mountOptions", mount_options, sizeof mount_options) ||
      !get_double(env, opts, "uid", &uid) || !get_double(env, opts, "gid", &gid) ||
      !get_double(env, opts, "fileMode", &file_mode) || !get_double(env, opts, "dirMode", &dir_mode) ||
      !get_double(env, opts, "mtime", &mtime) || !get_double(env, opts, "totalBytes", &total_bytes) ||
      !get_property(env, opts, "tree", &tree_value) || !get_property(env, opts, "cache", &cache_value) ||
      !get_property(env, opts, "onMiss", &on_miss_fn) || !get_property(env, opts, "onHits", &on_hits_fn)) {
    return throw_type(env, "btmount native: mount options incomplete");
  }
  get_double(env, opts, "debug", &debug);
  get_double(env, opts, "readDelayMicros", &read_delay_us);

  struct tree *tree = NULL;
  napi_value tree_arrays[TREE_ARRAYS];
  if (!read_tree(env, tree_value, &tree, tree_arrays)) return NULL;
  struct cache_view cache;
  napi_value shared[SHARED_COUNT];
  if (!read_cache(env, cache_value, &cache, shared)) {
    tree_free(tree);
    return NULL;
  }

  struct mount_handle *h = calloc(1, sizeof *h);
  if (!h) {
    tree_free(tree);
    close(cache.data_fd);
    napi_throw_error(env, NULL, "btmount native: out of memory");
    return NULL;
  }
  napi_value name;
  napi_create_string_utf8(env, "btmount-fuse-events", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, on_miss_fn, NULL, name, 0, 1, h, finalize_events, h, deliver_event,
                                      &h->events) != napi_ok) {
    free(h);
    tree_free(tree);
    close(cache.data_fd);
    napi_throw_error(env, NULL, "btmount native: cannot create the event channel");
    return NULL;
  }
  /* The mount does not keep Node alive by itself; the daemon's sockets do. */
  napi_unref_threadsafe_function(env, h->events);
  napi_create_reference(env, on_hits_fn, 1, &h->on_hits);
  for (int i = 0; i < SHARED_COUNT; i++) napi_create_reference(env, shared[i], 1, &h->shared[i]);
  for (int i = 0; i < TREE_ARRAYS; i++) napi_create_reference(env, tree_arrays[i], 1, &h->tree_arrays[i]);

  struct session_options so = {
      .mountpoint = mountpoint,
      .mount_options = mount_options,
      .file_mode = (unsigned)file_mode,
      .dir_mode = (unsigned)dir_mode,
      .uid = (uid_t)uid,
      .gid = (gid_t)gid,
      .mtime = (int64_t)mtime,
      .total_bytes = (uint64_t)total_bytes,
      .debug = debug != 0,
      .read_delay_us = read_delay_us > 0 && read_delay_us < 1e6 ? (unsigned)read_delay_us : 0,
  };
  char error[512] = "";
  struct session_hooks hooks = {.miss = on_miss, .hits_pending = on_hits_pending, .ctx = h};
  h->session = session_start(&so, tree, cache, hooks, error, sizeof error);
  if (!h->session) {
    h->stopping = 1;
    napi_release_threadsafe_function(h->events, napi_tsfn_release);
    char message[600];
    snprintf(message, sizeof message, "btmount native: %s", error);
    napi_throw_error(env, NULL, message);
    return NULL;
  }
  napi_value external;
  CHECK(env, napi_create_external(env, h, NULL, NULL, &external));
  return external;
}

static struct mount_handle *handle_arg(napi_env env, napi_value v) {
  void *data = NULL;
  if (napi_get_value_external(env, v, &data) != napi_ok || !data) {
    napi_throw_type_error(env, NULL, "btmount native: not a mount handle");
    return NULL;
  }
  return data;
}

/* takeHits(handle) → Float64Array of the hit records logged since the last call, or undefined. */
static napi_value js_take_hits(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg, undefined;
  CHECK(env, napi_get_cb_info(env, info, &argc, &arg, NULL, NULL));
  struct mount_handle *h = argc == 1 ? handle_arg(env, arg) : NULL;
  if (!h) return NULL;
  napi_get_undefined(env, &undefined);
  if (h->stopping || !h->session) return undefined;
  double *records;
  size_t count;
  session_take_hits(h->session, &records, &count);
  if (count == 0) {
    free(records);
    return undefined;
  }
  void *copy;
  napi_value buffer, array;
  size_t bytes = count * HIT_RECORD_DOUBLES * sizeof(double);
  if (napi_create_arraybuffer(env, bytes, &copy, &buffer) != napi_ok) {
    free(records);
    return undefined;
  }
  memcpy(copy, records, bytes);
  free(records);
  CHECK(env, napi_create_typedarray(env, napi_float64_array, count * HIT_RECORD_DOUBLES, buffer, 0, &array));
  return array;
}

/* replyData(handle, id, buffer, length) */
static napi_value js_reply_data(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct mount_handle *h = argc == 4 ? handle_arg(env, argv[0]) : NULL;
  if (!h) return NULL;
  double id, length;
  void *data;
  size_t size;
  CHECK(env, napi_get_value_double(env, argv[1], &id));
  CHECK(env, napi_get_buffer_info(env, argv[2], &data, &size));
  CHECK(env, napi_get_value_double(env, argv[3], &length));
  if (length < 0 || length > (double)size) return throw_type(env, "btmount native: reply longer than its buffer");
  if (!h->stopping && h->session) session_reply_data(h->session, (uint64_t)id, data, (size_t)length);
  return NULL;
}

/* replyError(handle, id, errno) */
static napi_value js_reply_error(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct mount_handle *h = argc == 3 ? handle_arg(env, argv[0]) : NULL;
  if (!h) return NULL;
  double id;
  int32_t error;
  CHECK(env, napi_get_value_double(env, argv[1], &id));
  CHECK(env, napi_get_value_int32(env, argv[2], &error));
  if (!h->stopping && h->session) session_reply_error(h->session, (uint64_t)id, error > 0 ? error : EIO);
  return NULL;
}

struct stop_work {
  struct mount_handle *h;
  struct session *session;
  napi_deferred deferred;
  napi_async_work work;
};

static void stop_execute(napi_env env, void *data) {
  struct stop_work *w = data;
  session_stop(w->session);
}

static void stop_complete(napi_env env, napi_status status, void *data) {
  struct stop_work *w = data;
  w->h->session = NULL;
  napi_release_threadsafe_function(w->h->events, napi_tsfn_release);
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  napi_resolve_deferred(env, w->deferred, undefined);
  napi_delete_async_work(env, w->work);
  free(w);
}

/* stop(handle) → Promise, resolved when no FUSE thread is left. */
static napi_value js_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  CHECK(env, napi_get_cb_info(env, info, &argc, &arg, NULL, NULL));
  struct mount_handle *h = argc == 1 ? handle_arg(env, arg) : NULL;
  if (!h) return NULL;
  napi_value promise;
  napi_deferred deferred;
  CHECK(env, napi_create_promise(env, &deferred, &promise));
  if (h->stopping) {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, deferred, undefined);
    return promise;
  }
  h->stopping = 1;
  struct stop_work *w = calloc(1, sizeof *w);
  if (!w) {
    napi_throw_error(env, NULL, "btmount native: out of memory");
    return NULL;
  }
  w->h = h;
  w->session = h->session;
  w->deferred = deferred;
  napi_value name;
  napi_create_string_utf8(env, "btmount-fuse-stop", NAPI_AUTO_LENGTH, &name);
  CHECK(env, napi_create_async_work(env, NULL, name, stop_execute, stop_complete, w, &w->work));
  CHECK(env, napi_queue_async_work(env, w->work));
  return promise;
}

/* stats(handle) → { hits, misses, generationRetries, spliced, parked } (reads served in C, sent to JS, …) */
static napi_value js_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  CHECK(env, napi_get_cb_info(env, info, &argc, &arg, NULL, NULL));
  struct mount_handle *h = argc == 1 ? handle_arg(env, arg) : NULL;
  if (!h) return NULL;
  struct session_stats st = {0};
  if (h->session && !h->stopping) session_stats(h->session, &st);
  napi_value out, v;
  napi_create_object(env, &out);
  napi_create_double(env, (double)st.hits, &v);
  napi_set_named_property(env, out, "hits", v);
  napi_create_double(env, (double)st.misses, &v);
  napi_set_named_property(env, out, "misses", v);
  napi_create_double(env, (double)st.generation_retries, &v);
  napi_set_named_property(env, out, "generationRetries", v);
  napi_create_double(env, (double)st.spliced, &v);
  napi_set_named_property(env, out, "spliced", v);
  napi_create_double(env, (double)st.parked, &v);
  napi_set_named_property(env, out, "parked", v);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"mount", NULL, js_mount, NULL, NULL, NULL, napi_default, NULL},
      {"replyData", NULL, js_reply_data, NULL, NULL, NULL, napi_default, NULL},
      {"replyError", NULL, js_reply_error, NULL, NULL, NULL, napi_default, NULL},
      {"stop", NULL, js_stop, NULL, NULL, NULL, napi_default, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_default, NULL},
      {"takeHits", NULL, js_take_hits, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
