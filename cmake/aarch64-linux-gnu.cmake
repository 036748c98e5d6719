# A cross build for aarch64 Linux with glibc, from Debian's cross toolchain
# (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross), as tests/cross_aarch64.sh
# makes it:
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
# Its tests run under qemu-user (qemu-aarch64, or qemu-aarch64-static):
# ctest starts each test program through CMAKE_CROSSCOMPILING_EMULATOR, and
# -L points the emulator at the target's libraries.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(GM_CROSS_SYSROOT /usr/aarch64-linux-gnu)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)

# Headers and libraries from the target's tree only; programs from the host.
set(CMAKE_FIND_ROOT_PATH ${GM_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

find_program(GM_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(GM_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${GM_QEMU_AARCH64} -L ${GM_CROSS_SYSROOT})
endif()
