/*
 * api_thp.c — the huge-page policy (GOMALLOC_THP, scavenge.c): heap arenas
 * carry MADV_NOHUGEPAGE ("nh" in /proc/self/smaps) exactly when the policy
 * says so, the flag survives decommit and recommit (strict mode remaps
 * whole chunks), and keeping it costs no extra mappings.
 *
 * Each policy runs in a re-executed child with only its own GOMALLOC_*
 * settings, because options are read once at start-up.
 */
#include "gomalloc.h"
#include "test.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MiB ((size_t)1 << 20)

/* Does the mapping holding p have the VmFlags entry flag? -1 if p is not
 * found. Reads smaps with stdio: the allocator is not under test here. */
static int vma_has_flag(const void *p, const char *flag)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[1024];
    bool in = false;
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char c;
        if (sscanf(line, "%lx-%lx %c", &lo, &hi, &c) == 3 && strchr(line, '-') < strchr(line, ' ')) {
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
            continue;
        }
        if (in && strncmp(line, "VmFlags:", 8) == 0) {
            char want[8];
            snprintf(want, sizeof want, " %s", flag);
            found = strstr(line, want) != NULL;
            break;
        }
    }
    fclose(f);
    return found;
}

static bool system_thp_always(void)
{
    char buf[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f) return false;
    if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
    fclose(f);
    return strstr(buf, "[always]") != NULL;
}

/* The policy's answer: is the heap marked nh? Checked on a fresh heap, then
 * after chunks were decommitted and committed again. */
static int case_policy(const char *name, bool want_nh)
{
    char *p = malloc(MiB);
    CHECK(p != NULL);
    memset(p, 1, MiB);
    CHECK_EQ(vma_has_flag(p, "nh"), want_nh);
    free(p);

    /* Strict mode: 64 MiB freed goes back as whole decommitted chunks. An
     * anchor keeps the heap's first chunk committed (else everything is
     * decommitted, and the heap's one mapping becomes two once used). */
    char *anchor = malloc(64 << 10);
    CHECK(anchor != NULL);
    memset(anchor, 4, 64 << 10);
    enum { N = 64 };
    char *big[N];
    for (int i = 0; i < N; i++) {
        big[i] = malloc(MiB);
        CHECK(big[i] != NULL);
        memset(big[i], 2, MiB);
    }
    for (int i = 0; i < N; i++) free(big[i]);
    CHECK(gm_scavenge() > 0);
    struct gm_stats st;
    gm_stats_get(&st);
    CHECK(st.heap_decommitted >= 32 * MiB);
    long maps0 = test_maps_count();
    for (int i = 0; i < N; i++) { /* recommitted */
        big[i] = malloc(MiB);
        CHECK(big[i] != NULL);
        memset(big[i], 3, MiB);
    }
    gm_stats_get(&st);
    CHECK(st.recommitted_total > 0);
    for (int i = 0; i < N; i++) CHECK_EQ(vma_has_flag(big[i], "nh"), want_nh);
    /* The recommitted chunks merged back into the heap's mapping. */
    CHECK(test_maps_count() <= maps0);
    for (int i = 0; i < N; i++) free(big[i]);
    free(anchor);
    CHECK_EQ(gm_check(), 0);
    return test_done(name);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        if (!strcmp(argv[1], "never")) return case_policy("never", true);
        if (!strcmp(argv[1], "system")) return case_policy("system", false);
        if (!strcmp(argv[1], "auto")) return case_policy("auto", system_thp_always());
        return 2;
    }
    const char *never[] = {"GOMALLOC_THP=0", "GOMALLOC_STRICT=1", NULL};
    const char *sys[] = {"GOMALLOC_THP=1", "GOMALLOC_STRICT=1", NULL};
    const char *deflt[] = {"GOMALLOC_STRICT=1", NULL};
    test_subcase("never", never, NULL);
    test_subcase("system", sys, NULL);
    test_subcase("auto", deflt, NULL);
    return test_done("api_thp");
}
