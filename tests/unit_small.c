/*
 * unit_small.c — layer 6 through src/internal.h: what a thread's cache keeps
 * back from the heap is visible to the scavenger, so that an idle thread
 * cannot hold it for ever.
 *
 * spares: a span that empties is kept as its class's spare for the next
 * refill. The background scavenger parks when it sees nothing to return
 * (gm_central_holds is part of that test): a spare must count, and a
 * trim (every scavenger pass) must give it back to the heap.
 */
#include "internal.h"
#include "test.h"

static int child_spares(void)
{
    enum { MAXN = 1024 };
    static void *objs[MAXN];
    gm_opt.background = false; /* no scavenger thread trimming behind our back */
    CHECK(!gm_central_holds());
    /* 64-byte objects until the second span: the first is then full and
     * not the current one. */
    size_t n = 0;
    objs[n++] = gm_malloc(64);
    /* A pass made inline by an allocator call (every 5-250 ms without a
     * background thread; under an emulator these calls can be that far
     * apart) would trim the spare before it is looked at: hold the
     * scavenger's lock, so that the inline passes skip (they only try it). */
    gm_scav_lock_all();
    struct gm_span *first = gm_span_lookup((uintptr_t)objs[0]);
    while (n < MAXN) {
        objs[n] = gm_malloc(64);
        if (gm_span_lookup((uintptr_t)objs[n++]) != first) break;
    }
    CHECK(n < MAXN);
    size_t first_bytes = (size_t)first->npages << GM_PAGE_SHIFT;
    uint64_t inuse = gm_stat_load(&gm_heap.heap_inuse);
    for (size_t i = 0; i + 1 < n; i++) gm_free(objs[i]); /* the first span empties */
    fprintf(stderr, "spares: %zu objects in the first span; heap_inuse %llu KiB, %llu KiB after its frees\n", n - 1,
            (unsigned long long)inuse >> 10, (unsigned long long)gm_stat_load(&gm_heap.heap_inuse) >> 10);
    CHECK_EQ(gm_stat_load(&gm_heap.heap_inuse), inuse); /* kept: the spare */
    CHECK(gm_central_holds());                          /* and the scavenger knows */
    gm_scav_unlock_all();
    gm_central_trim();
    CHECK(!gm_central_holds());
    CHECK_EQ(gm_stat_load(&gm_heap.heap_inuse), inuse - first_bytes);
    gm_free(objs[n - 1]);
    CHECK_EQ(gm_check(), 0);
    return test_failures;
}

int main(void)
{
    test_in_child("spares", child_spares);
    return test_done("unit_small");
}
