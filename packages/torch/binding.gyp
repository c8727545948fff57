{
  "targets": [
    {
      "target_name": "pretext_torch",
      "sources": ["native/shim.cc", "native/cpu_cache.cc", "native/distributed.cc", "native/sync_batch_norm.cc", "native/grad_reducer.cc", "gen/ops_gen.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native",
        "<!@(node scripts/libtorch.mjs include)"
      ],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "<!@(node scripts/libtorch.mjs cflags)"],
      # NAPI_EXPERIMENTAL: handle finalizers run during GC (basic finalizers); see FinalizeBox in native/shim.cc.
      "defines": ["USE_C10D_GLOO", "NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_EXPERIMENTAL"],
      "libraries": ["<!@(node scripts/libtorch.mjs libs)"]
    }
  ]
}
