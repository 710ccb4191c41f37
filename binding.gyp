{
  "targets": [{
    "target_name": "torch_addon",
    "sources": ["<!@(ls native/*.cc)"],
    "include_dirs": [
      "<!(node -p \"require('node-addon-api').include_dir\")",
      "<!@(node scripts/find-libtorch.cjs include)"
    ],
    "defines": ["NAPI_EXPERIMENTAL", "NAPI_CPP_EXCEPTIONS", "<!@(node scripts/find-libtorch.cjs defines)"],
    "cflags!": ["-fno-exceptions", "-fno-rtti"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
    "cflags_cc": ["-std=c++20", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "-Wno-deprecated-declarations", "-Wno-interference-size"],
    "libraries": [
      "-L<!(node scripts/find-libtorch.cjs libdir)",
      "<!@(node scripts/find-libtorch.cjs rpath)",
      "-Wl,--no-as-needed",
      "<!@(node scripts/find-libtorch.cjs libs)",
      "-Wl,--as-needed"
    ]
  }]
}
