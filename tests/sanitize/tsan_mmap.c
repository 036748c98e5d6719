/*
 * tsan_mmap.c — linked into ThreadSanitizer builds with -Wl,--wrap=mmap, so
 * that gomalloc's arena hints work there. TSan's mmap interceptor drops a
 * hint that lies outside its application memory (gomalloc's first hints at
 * 0x00c000000000 do) but keeps MAP_FIXED_NOREPLACE, so the kernel maps at
 * address 0 (root may) and TSan dies ("mmap at bad address"). Without the
 * flag the address is a plain hint: the mapping lands elsewhere and
 * gm_sys_reserve takes that as "address taken", as on kernels before 4.17.
 */
#include <stddef.h>
#include <sys/mman.h>
#include <sys/types.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return __real_mmap(addr, len, prot, flags & ~MAP_FIXED_NOREPLACE, fd, off);
}
