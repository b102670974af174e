{
  "targets": [
    {
      "target_name": "btmount_fuse",
      "sources": ["src/addon.c", "src/tree.c", "src/session.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11", "<!@(pkg-config --cflags fuse3)"],
      "libraries": ["<!@(pkg-config --libs fuse3)"],
      "defines": ["FUSE_USE_VERSION=314", "NAPI_VERSION=8", "_GNU_SOURCE"]
    }
  ]
}
