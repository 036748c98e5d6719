/*
 * unit_stats.c — the list of statistics (src/stats_fields.h) against the
 * struct, the reports and the documents:
 *   list     the list's fields cover struct gm_stats end to end, each
 *            where the one before it ends, with versions that never
 *            decrease; versions 1 and 2 are as they were released (their
 *            fields' names in order, 1728 and 2312 bytes) and
 *            gm_stats_read names the version that fits by those sizes;
 *            the per-class arrays are named class_*, every entry has a doc;
 *   reports  the text report has a row for every figure the list shows in
 *            rows, in the list's order, each with its doc; the JSON object
 *            opens with the version and has every other field but size
 *            and the per-class arrays as a member, in the list's order,
 *            and no text-only figure; each object of its "classes" has the
 *            per-class arrays' names without "class_".
 * (stats.c checks at compile time that the public struct has the list's
 * fields, with their types, at the offsets the list's order gives.)
 * With --markdown, prints README.md's table of the statistics, and with
 * --man gomalloc(3)'s list: tests/docs.sh compares the documents with them.
 */
#include "internal.h"
#include "stats_fields.h"
#include "test.h"

/* Versions 1 and 2 as released: programs built against them read these
 * fields at these offsets for good. */
static const struct {
    const char *names; /* the fields the version added, in order */
    size_t size;       /* sizeof(struct gm_stats) in that version */
} released[] = {
    {"", 0},
    {"version size sys heap_sys heap_inuse heap_idle heap_released heap_alloc meta_arena_index meta_arenas "
     "meta_pagealloc meta_spans meta_tcaches meta_other committed reserved mappings mallocs frees class_size "
     "class_mallocs class_frees",
     1728},
    {"heap_decommitted scavenged_total decommitted_total recommitted_total background_runs memory_limit "
     "memory_limit_hard strict_commit class_live_bytes",
     2312},
};

static bool shown_in_rows(enum gm_stat_show show)
{
    return show == GM_SHOW_BYTES || show == GM_SHOW_COUNT || show == GM_SHOW_LIMIT || show == GM_SHOW_ONOFF;
}

/* ------------------------------------------------------------------------ */
/* list                                                                     */
/* ------------------------------------------------------------------------ */

static void test_list(void)
{
    size_t end = 0;
    unsigned since = 1;
    char names[GM_STATS_VERSION + 1][1024] = {{0}};
    for (size_t i = 0; i < gm_stat_row_count; i++) {
        const struct gm_stat_row *r = &gm_stat_rows[i];
        test_checks++;
        if (r->doc[0] == 0 || (r->show == GM_SHOW_CLASS && strncmp(r->name, "class_", 6) != 0)) {
            test_failures++;
            fprintf(stderr, "%s: no doc, or a per-class array not named class_*\n", r->name);
        }
        if (r->since == 0) continue; /* the text report's own */
        test_checks++;
        if (r->offset != end || r->since < since || r->since > GM_STATS_VERSION) {
            test_failures++;
            fprintf(stderr, "%s: at offset %zu, version %u; want offset %zu, version %u to %u\n", r->name, r->offset,
                    r->since, end, since, GM_STATS_VERSION);
        }
        end = r->offset + r->size;
        since = r->since;
        if (since <= GM_STATS_VERSION) {
            char *s = names[since];
            size_t n = strlen(s);
            snprintf(s + n, sizeof names[since] - n, "%s%s", n ? " " : "", r->name);
        }
    }
    CHECK_EQ(end, sizeof(struct gm_stats));
    CHECK_EQ(since, GM_STATS_VERSION);
    for (unsigned v = 1; v <= 2 && v <= GM_STATS_VERSION; v++) {
        test_checks++;
        if (strcmp(names[v], released[v].names) != 0) {
            test_failures++;
            fprintf(stderr, "version %u's fields are now\n  %s\nnot as released:\n  %s\n", v, names[v],
                    released[v].names);
        }
        CHECK_EQ(gm_stats_version_size(v), released[v].size);
    }
    CHECK_EQ(gm_stats_version_size(0), 0);
    CHECK_EQ(gm_stats_version_size(GM_STATS_VERSION), sizeof(struct gm_stats));

    /* gm_stats_read names the newest version whose size fits. */
    static struct gm_stats st;
    for (unsigned v = 1; v <= GM_STATS_VERSION; v++) {
        size_t size = gm_stats_version_size(v);
        gm_stats_read(&st, size);
        CHECK_EQ(st.version, v);
        CHECK_EQ(st.size, size);
        gm_stats_read(&st, size - 1);
        CHECK_EQ(st.version, v - 1);
        CHECK_EQ(st.size, gm_stats_version_size(v - 1));
    }
}

/* ------------------------------------------------------------------------ */
/* reports                                                                  */
/* ------------------------------------------------------------------------ */

static char report[1 << 16];

/* The text report: a row "  name  ...  doc" per figure shown in rows, in
 * the list's order (memory_limit's row says what the limit does instead). */
static void test_text(void)
{
    gm_stats_format(report, sizeof report);
    const char *at = report;
    for (size_t i = 0; i < gm_stat_row_count; i++) {
        const struct gm_stat_row *r = &gm_stat_rows[i];
        if (!shown_in_rows(r->show)) continue;
        char head[64];
        snprintf(head, sizeof head, "\n  %-18s", r->name);
        const char *row = strstr(at, head);
        const char *eol = row ? strchr(row + 1, '\n') : NULL;
        size_t dn = strlen(r->doc);
        bool doc_ok = r->show == GM_SHOW_LIMIT ||
                      (eol && (size_t)(eol - row) > dn + 2 && strncmp(eol - dn - 2, "  ", 2) == 0 &&
                       strncmp(eol - dn, r->doc, dn) == 0);
        test_checks++;
        if (!row || !doc_ok) {
            test_failures++;
            fprintf(stderr, "text report: no row %s with its doc after the previous row's:\n%s\n", r->name, report);
            return;
        }
        at = eol;
    }
}

/* The JSON report: the list's members in its order, then "classes". */
static void test_json(void)
{
    gm_stats_format_json(report, sizeof report);
    CHECK(strncmp(report, "{\"version\": ", 12) == 0);
    char *classes = strstr(report, ", \"classes\": [{\"class\": 0, ");
    CHECK(classes != NULL);
    if (!classes) return;
    *classes = 0; /* the members before it */
    const char *at = report;
    char key[64];
    for (size_t i = 0; i < gm_stat_row_count; i++) {
        const struct gm_stat_row *r = &gm_stat_rows[i];
        if (strcmp(r->name, "version") == 0) continue; /* it opens the object */
        snprintf(key, sizeof key, "\"%s\": ", r->name);
        const char *found = strstr(report, key);
        bool member = r->since != 0 && r->show != GM_SHOW_HEADER && r->show != GM_SHOW_CLASS;
        test_checks++;
        if (member ? found == NULL || found < at : found != NULL) {
            test_failures++;
            fprintf(stderr, "JSON report: %s %s\n", r->name,
                    member ? "missing or out of the list's order" : "should not be a member");
        }
        if (member && found) at = found;
    }
    *classes = ',';
    const char *first_end = strchr(classes, '}');
    for (size_t i = 0; i < gm_stat_row_count; i++) {
        const struct gm_stat_row *r = &gm_stat_rows[i];
        if (r->show != GM_SHOW_CLASS) continue;
        snprintf(key, sizeof key, ", \"%s\": ", r->name + 6);
        const char *found = strstr(classes, key);
        test_checks++;
        if (!found || found > first_end) {
            test_failures++;
            fprintf(stderr, "JSON report: the classes lack %s\n", r->name + 6);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* The list for the documents                                               */
/* ------------------------------------------------------------------------ */

/* README.md's rows: "| `name` | doc |", the first field of each version
 * after the first marked, per-class arrays with their length, the text
 * report's own figures said to be. */
static void print_markdown(void)
{
    unsigned version = 1;
    for (size_t i = 0; i < gm_stat_row_count; i++) {
        const struct gm_stat_row *r = &gm_stat_rows[i];
        printf("| ");
        if (r->since > version) printf("*version %u:* ", version = r->since);
        printf("`%s", r->name);
        if (r->show == GM_SHOW_CLASS) printf("[%d]", GM_NUM_CLASSES);
        printf("`%s | %s |\n", r->since ? "" : " (text report only)", r->doc);
    }
}

/* A man page's text: hyphens as \- (a plain - may render as a dash). */
static void print_roff(const char *s)
{
    for (; *s; s++) {
        if (*s == '-') putchar('\\');
        putchar(*s);
    }
}

/* gomalloc(3)'s list: a .TP entry per figure, "Version N adds:" before a
 * version's first field. */
static void print_man(void)
{
    unsigned version = 1;
    for (size_t i = 0; i < gm_stat_row_count; i++) {
        const struct gm_stat_row *r = &gm_stat_rows[i];
        if (r->since > version) printf(".PP\nVersion %u adds:\n", version = r->since);
        printf(".TP\n");
        if (r->show == GM_SHOW_CLASS) printf(".BR %s [%d]\n", r->name, GM_NUM_CLASSES);
        else if (r->since == 0) printf(".BR %s \" (text report only)\"\n", r->name);
        else printf(".B %s\n", r->name);
        print_roff(r->doc);
        putchar('\n');
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--markdown") == 0) {
        print_markdown();
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--man") == 0) {
        print_man();
        return 0;
    }
    void *p = gm_malloc(100), *q = gm_malloc(1 << 20); /* figures to show */
    test_list();
    test_text();
    test_json();
    gm_free(p);
    gm_free(q);
    return test_done("unit_stats");
}
