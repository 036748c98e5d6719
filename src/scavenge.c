/*
 * scavenge.c — layer 5: returning memory to the OS (Go's scavenger), strict
 * commit mode and the memory limit. Being built (issue 4).
 */
#include "internal.h"

#include <errno.h>

struct gm_scav_stats gm_scav;

size_t gm_scavenge(void) { return gm_central_trim(); }

int gm_set_memory_limit(size_t bytes, int hard)
{
    atomic_store(&gm_scav.limit, (uint64_t)bytes);
    atomic_store(&gm_scav.limit_hard, bytes != 0 && hard != 0);
    return 0;
}

size_t gm_get_memory_limit(int *hard)
{
    if (hard) *hard = atomic_load(&gm_scav.limit_hard);
    return (size_t)atomic_load(&gm_scav.limit);
}
