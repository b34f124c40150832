{
  # build/Release gets the BPF object (clang, from bpf/), its libbpf skeleton
  # (bpftool gen skeleton: the object embedded, with typed maps, programs and
  # .rodata; generated here, never committed), and the Node-API loader compiled
  # against that skeleton (Debian: clang, bpftool, libbpf-dev, libelf-dev).
  "targets": [
    {
      "target_name": "tcptracer_bpf",
      "type": "none",
      "actions": [
        {
          "action_name": "compile_bpf",
          "inputs": ["bpf/tcptracer.bpf.c", "bpf/tcptracer.h", "bpf/kernel_types.h"],
          "outputs": ["<(PRODUCT_DIR)/tcptracer.bpf.o"],
          "action": [
            "clang", "-g", "-O2", "-target", "bpf", "-mcpu=v3", "-Wall", "-Werror",
            "-I<!(gcc -print-multiarch | sed 's|^|/usr/include/|')",
            "-c", "bpf/tcptracer.bpf.c", "-o", "<(PRODUCT_DIR)/tcptracer.bpf.o"
          ]
        },
        {
          "action_name": "generate_skeleton",
          "inputs": ["<(PRODUCT_DIR)/tcptracer.bpf.o"],
          "outputs": ["<(SHARED_INTERMEDIATE_DIR)/tcptracer.skel.h"],
          "action": [
            "sh", "-c",
            "bpftool gen skeleton <(PRODUCT_DIR)/tcptracer.bpf.o name tcptracer_bpf > <(SHARED_INTERMEDIATE_DIR)/tcptracer.skel.tmp && mv <(SHARED_INTERMEDIATE_DIR)/tcptracer.skel.tmp <(SHARED_INTERMEDIATE_DIR)/tcptracer.skel.h"
          ]
        }
      ]
    },
    {
      "target_name": "tcptracer_loader",
      "dependencies": ["tcptracer_bpf"],
      "sources": [
        "bpf/loader/addon.c",
        "bpf/loader/tracer.c",
        "bpf/loader/drain.c",
        "bpf/loader/ring.c",
        "bpf/loader/host.c",
        "bpf/loader/layout.c"
      ],
      "include_dirs": ["<(SHARED_INTERMEDIATE_DIR)"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter", "-Wno-missing-field-initializers", "-std=gnu11"],
      "libraries": ["-lbpf", "-lelf", "-lz"]
    }
  ]
}
