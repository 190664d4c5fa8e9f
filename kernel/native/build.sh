#!/bin/sh
# Plain-cc fallback for machines without CMake: builds the same shared library.
# Usage: kernel/native/build.sh OUT_DIR [sanitize]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUT_DIR [sanitize]}
mkdir -p "$out"
flags="-std=c11 -O2 -g -fPIC -fvisibility=hidden -Wall -Wextra -Wpedantic -Wconversion -Wno-sign-conversion -Werror"
if [ "${2:-}" = "sanitize" ]; then flags="$flags -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"; fi
cc=${CC:-cc}
# shellcheck disable=SC2086
$cc $flags -shared -I"$here/include" "$here"/src/sdc_kernel.c "$here"/src/sdc_ops.c "$here"/src/sdc_crypto.c "$here"/src/sdc_command.c \
  -o "$out/libsdc_kernel.so.tmp" -lcrypto -lpthread
mv "$out/libsdc_kernel.so.tmp" "$out/libsdc_kernel.so"
# shellcheck disable=SC2086
$cc $flags -I"$here/include" "$here/harness/harness.c" -o "$out/sdc_kernel_harness.tmp" -L"$out" -lsdc_kernel -Wl,-rpath,'$ORIGIN'
mv "$out/sdc_kernel_harness.tmp" "$out/sdc_kernel_harness"
