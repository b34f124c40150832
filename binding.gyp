{
  # Two outputs in build/Release: the BPF object, compiled from bpf/ by clang, and
  # the Node-API loader that opens it with libbpf (Debian: clang, libbpf-dev, libelf-dev).
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
        }
      ]
    },
    {
      "target_name": "tcptracer_loader",
      "dependencies": ["tcptracer_bpf"],
      "sources": ["bpf/loader/tcptracer_loader.c", "bpf/loader/drain.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter", "-Wno-missing-field-initializers", "-std=gnu11"],
      "libraries": ["-lbpf", "-lelf", "-lz"]
    }
  ]
}
