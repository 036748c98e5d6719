/*
 * unit_options.c — the table of options (src/options.c) through
 * src/internal.h:
 *   parse     every accepted form of every option sets its field (words in
 *             any case, the boolean words for 0 and 1, sizes with each
 *             unit and mode, none, ranges' ends), and every malformed or
 *             out-of-range value is refused with the field untouched;
 *   defaults  every default parses, and the defaults are the documented
 *             ones (decay 500 ms, strict on, THP auto, ...);
 *   process   the library's own reading, in re-executed children with the
 *             variables set: each bad value of issue 12 (and a few more)
 *             gets exactly one line on stderr naming the variable, the
 *             value and the default, the child runs on, and the default is
 *             in gm_opt; several bad values get a line each; good values in
 *             every form get no line and are in gm_opt; allocating after
 *             the constructor's reading warns no more.
 * With --table, prints the table (name, tab, default per line) and with
 * --markdown README's rows: tests/docs.sh compares the documents with them.
 */
#define _GNU_SOURCE
#include "internal.h"
#include "test.h"

#include <fcntl.h>
#include <signal.h>

#define MiB ((uint64_t)1 << 20)

static const struct gm_option *option(const char *name)
{
    for (size_t i = 0; i < gm_option_count; i++)
        if (strcmp(gm_option_table[i].name, name) == 0) return &gm_option_table[i];
    fprintf(stderr, "no option %s\n", name);
    exit(2);
}

/* o's field (and mode) in *opt as a number; strings as their address. */
static int64_t field(const struct gm_option *o, const struct gm_options *opt, int *mode)
{
    const char *base = (const char *)opt + o->offset;
    bool b;
    int i;
    uint32_t ms;
    uint64_t size;
    const char *s;
    switch (o->kind) {
    case GM_OPT_BOOL: memcpy(&b, base, sizeof b); return b;
    case GM_OPT_ENUM: memcpy(&i, base, sizeof i); return i;
    case GM_OPT_MS:
    case GM_OPT_SECONDS: memcpy(&ms, base, sizeof ms); return ms;
    case GM_OPT_SIZE:
        if (mode) memcpy(mode, (const char *)opt + o->mode_offset, sizeof *mode);
        memcpy(&size, base, sizeof size);
        return (int64_t)size;
    case GM_OPT_STRING: memcpy(&s, base, sizeof s); return (int64_t)(uintptr_t)s;
    case GM_OPT_BYTES: memcpy(&size, base, sizeof size); return (int64_t)size;
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* parse                                                                    */
/* ------------------------------------------------------------------------ */

struct good {
    const char *name, *value;
    int64_t want;
    int mode; /* sizes: the mode set */
};

static const struct good goods[] = {
    {"GOMALLOC_STATS", "0", GM_STATS_OFF, 0},      {"GOMALLOC_STATS", "off", GM_STATS_OFF, 0},
    {"GOMALLOC_STATS", "No", GM_STATS_OFF, 0},     {"GOMALLOC_STATS", "FALSE", GM_STATS_OFF, 0},
    {"GOMALLOC_STATS", "1", GM_STATS_TEXT, 0},     {"GOMALLOC_STATS", "on", GM_STATS_TEXT, 0},
    {"GOMALLOC_STATS", "yes", GM_STATS_TEXT, 0},   {"GOMALLOC_STATS", "True", GM_STATS_TEXT, 0},
    {"GOMALLOC_STATS", "json", GM_STATS_JSON, 0},  {"GOMALLOC_STATS", "JSON", GM_STATS_JSON, 0},
    {"GOMALLOC_CHECK", "1", 1, 0},                 {"GOMALLOC_CHECK", "yes", 1, 0},
    {"GOMALLOC_CHECK", "ON", 1, 0},                {"GOMALLOC_CHECK", "true", 1, 0},
    {"GOMALLOC_CHECK", "0", 0, 0},                 {"GOMALLOC_CHECK", "off", 0, 0},
    {"GOMALLOC_CHECK", "no", 0, 0},                {"GOMALLOC_CHECK", "false", 0, 0},
    {"GOMALLOC_BACKGROUND", "0", GM_BACKGROUND_OFF, 0},
    {"GOMALLOC_BACKGROUND", "off", GM_BACKGROUND_OFF, 0},
    {"GOMALLOC_BACKGROUND", "1", GM_BACKGROUND_AUTO, 0},
    {"GOMALLOC_BACKGROUND", "yes", GM_BACKGROUND_AUTO, 0},
    {"GOMALLOC_BACKGROUND", "auto", GM_BACKGROUND_AUTO, 0},
    {"GOMALLOC_BACKGROUND", "Thread", GM_BACKGROUND_THREAD, 0},
    {"GOMALLOC_DECAY_MS", "0", 0, 0},              {"GOMALLOC_DECAY_MS", "500", 500, 0},
    {"GOMALLOC_DECAY_MS", "0020", 20, 0},          {"GOMALLOC_DECAY_MS", "3600000", 3600000, 0},
    {"GOMALLOC_STRICT", "1", 1, 0},                {"GOMALLOC_STRICT", "on", 1, 0},
    {"GOMALLOC_STRICT", "0", 0, 0},                {"GOMALLOC_STRICT", "no", 0, 0},
    {"GOMALLOC_STRICT", "auto", -1, 0},            {"GOMALLOC_STRICT", "AUTO", -1, 0},
    {"GOMALLOC_THP", "auto", -1, 0},               {"GOMALLOC_THP", "0", 0, 0},
    {"GOMALLOC_THP", "off", 0, 0},                 {"GOMALLOC_THP", "1", 1, 0},
    {"GOMALLOC_THP", "true", 1, 0},
    {"GOMALLOC_MEMORY_LIMIT", "64M", 64 * MiB, 0}, {"GOMALLOC_MEMORY_LIMIT", "64m", 64 * MiB, 0},
    {"GOMALLOC_MEMORY_LIMIT", "64MiB", 64 * MiB, 0}, {"GOMALLOC_MEMORY_LIMIT", "64MB", 64 * MiB, 0},
    {"GOMALLOC_MEMORY_LIMIT", "65536K", 64 * MiB, 0}, {"GOMALLOC_MEMORY_LIMIT", "65536kb", 64 * MiB, 0},
    {"GOMALLOC_MEMORY_LIMIT", "1G:hard", 1024 * MiB, 1}, {"GOMALLOC_MEMORY_LIMIT", "1g:HARD", 1024 * MiB, 1},
    {"GOMALLOC_MEMORY_LIMIT", "1GiB:soft", 1024 * MiB, 0}, {"GOMALLOC_MEMORY_LIMIT", "2T", 2 * 1024 * 1024 * MiB, 0},
    {"GOMALLOC_MEMORY_LIMIT", "4194304", 4 * MiB, 0}, {"GOMALLOC_MEMORY_LIMIT", "4194304B:hard", 4 * MiB, 1},
    {"GOMALLOC_MEMORY_LIMIT", "none", 0, 0},      {"GOMALLOC_MEMORY_LIMIT", "None", 0, 0},
    {"GOMALLOC_MEMORY_LIMIT", "0", 0, 0},
    {"GOMALLOC_PROFILE_RATE", "1", 1, 0},          {"GOMALLOC_PROFILE_RATE", "512K", 512 * 1024, 0},
    {"GOMALLOC_PROFILE_RATE", "4096", 4096, 0},    {"GOMALLOC_PROFILE_RATE", "1GiB", 1024 * MiB, 0},
    {"GOMALLOC_PROFILE_SIGNAL", "usr2", SIGUSR2, 0}, {"GOMALLOC_PROFILE_SIGNAL", "off", 0, 0},
    {"GOMALLOC_TRACE_MS", "1", 1, 0},              {"GOMALLOC_TRACE_MS", "3600000", 3600000, 0},
    {"GOMALLOC_PROFILE_PERIOD", "off", 0, 0},      {"GOMALLOC_PROFILE_PERIOD", "0", 0, 0},
    {"GOMALLOC_PROFILE_PERIOD", "1", 1, 0},        {"GOMALLOC_PROFILE_PERIOD", "86400", 86400, 0},
};

struct bad {
    const char *name, *value;
};

static const struct bad bads[] = {
    {"GOMALLOC_STATS", "jsno"},         {"GOMALLOC_STATS", "2"},           {"GOMALLOC_STATS", "json "},
    {"GOMALLOC_STATS", "o"},            {"GOMALLOC_STATS", "onn"},         {"GOMALLOC_CHECK", "2"},
    {"GOMALLOC_CHECK", "maybe"},        {"GOMALLOC_CHECK", "y"},           {"GOMALLOC_BACKGROUND", "threads"},
    {"GOMALLOC_BACKGROUND", "-1"},      {"GOMALLOC_DECAY_MS", "abc"},      {"GOMALLOC_DECAY_MS", "-5"},
    {"GOMALLOC_DECAY_MS", "3600001"},   {"GOMALLOC_DECAY_MS", "5s"},       {"GOMALLOC_DECAY_MS", "1K"},
    {"GOMALLOC_DECAY_MS", "99999999999999999999999"},                      {"GOMALLOC_DECAY_MS", " 5"},
    {"GOMALLOC_STRICT", "maybe"},       {"GOMALLOC_STRICT", "2"},          {"GOMALLOC_THP", "maybe"},
    {"GOMALLOC_THP", "never"},          {"GOMALLOC_PROFILE_RATE", "0"},    {"GOMALLOC_PROFILE_RATE", "fast"},
    {"GOMALLOC_PROFILE_RATE", "2G"},    {"GOMALLOC_PROFILE_RATE", "none"}, {"GOMALLOC_PROFILE_SIGNAL", "9"},          {"GOMALLOC_MEMORY_LIMIT", "64M:hrd"}, {"GOMALLOC_MEMORY_LIMIT", "1M"},
    {"GOMALLOC_MEMORY_LIMIT", "4194303"}, {"GOMALLOC_MEMORY_LIMIT", "M"},  {"GOMALLOC_MEMORY_LIMIT", "64Q"},
    {"GOMALLOC_MEMORY_LIMIT", "64M:"},  {"GOMALLOC_MEMORY_LIMIT", ":hard"}, {"GOMALLOC_MEMORY_LIMIT", "64M:hard:soft"},
    {"GOMALLOC_MEMORY_LIMIT", "-64M"},  {"GOMALLOC_MEMORY_LIMIT", "17179869184G"},
    {"GOMALLOC_MEMORY_LIMIT", "99999999999999999999"}, {"GOMALLOC_MEMORY_LIMIT", "64 M"},
    {"GOMALLOC_TRACE_MS", "0"},         {"GOMALLOC_TRACE_MS", "3600001"},
    {"GOMALLOC_PROFILE_PERIOD", "86401"}, {"GOMALLOC_PROFILE_PERIOD", "5s"}, {"GOMALLOC_PROFILE_PERIOD", "-1"},
    {"GOMALLOC_PROFILE_PERIOD", "on"},
};

static void test_parse(void)
{
    for (size_t i = 0; i < sizeof goods / sizeof goods[0]; i++) {
        const struct good *g = &goods[i];
        const struct gm_option *o = option(g->name);
        struct gm_options opt;
        memset(&opt, 0x5a, sizeof opt);
        int mode = -7;
        bool ok = gm_option_set(o, g->value, &opt);
        int64_t v = field(o, &opt, &mode);
        test_checks++;
        if (!ok || v != g->want || (o->kind == GM_OPT_SIZE && mode != g->mode)) {
            test_failures++;
            fprintf(stderr, "%s=%s: %s, value %lld mode %d, want %lld mode %d\n", g->name, g->value,
                    ok ? "accepted" : "refused", (long long)v, mode, (long long)g->want, g->mode);
        }
    }
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        const struct bad *b = &bads[i];
        struct gm_options opt, before;
        memset(&opt, 0x5a, sizeof opt);
        before = opt;
        bool ok = gm_option_set(option(b->name), b->value, &opt);
        test_checks++;
        if (ok || memcmp(&opt, &before, sizeof opt) != 0) {
            test_failures++;
            fprintf(stderr, "%s=%s: %s\n", b->name, b->value, ok ? "accepted" : "refused but changed a field");
        }
    }
    struct gm_options opt;
    const char *path = "/tmp/r.%p";
    CHECK(gm_option_set(option("GOMALLOC_STATS_FILE"), path, &opt) && opt.stats_file == path);
    CHECK(gm_option_set(option("GOMALLOC_TRACE"), path, &opt) && opt.trace == path);
}

/* ------------------------------------------------------------------------ */
/* defaults                                                                 */
/* ------------------------------------------------------------------------ */

static void test_defaults(void)
{
    for (size_t i = 0; i < gm_option_count; i++) {
        const struct gm_option *o = &gm_option_table[i];
        struct gm_options opt;
        test_checks++;
        if (o->kind != GM_OPT_STRING && !gm_option_set(o, o->def, &opt)) {
            test_failures++;
            fprintf(stderr, "%s: its default %s does not parse\n", o->name, o->def);
        }
        CHECK(strncmp(o->name, "GOMALLOC_", 9) == 0 && o->doc && *o->doc);
    }
    struct gm_options d;
    memset(&d, 0x5a, sizeof d);
    gm_options_parse(&d, false);
    CHECK_EQ(d.stats, GM_STATS_OFF);
    CHECK(d.stats_file == NULL);
    CHECK_EQ(d.check, false);
    CHECK_EQ(d.background, GM_BACKGROUND_AUTO);
    CHECK_EQ(d.decay_ms, 500);
    CHECK_EQ(d.strict, 1);
    CHECK_EQ(d.thp, -1);
    CHECK_EQ(d.memory_limit, 0);
    CHECK_EQ(d.memory_limit_hard, 0);
    CHECK(d.trace == NULL);
    CHECK_EQ(d.trace_ms, 10);
    CHECK(d.profile == NULL);
    CHECK_EQ(d.profile_rate, 512 * 1024);
    CHECK_EQ(d.profile_signal, 0);
}

/* ------------------------------------------------------------------------ */
/* process: the library's reading in a child                                */
/* ------------------------------------------------------------------------ */

/* The child: every GOMALLOC_* option set in its environment is in gm_opt
 * as its value says, or as its default if the value is bad. */
static int child_check(void)
{
    gm_free(gm_malloc(100)); /* after the constructor's reading: no second one */
    struct gm_options defaults;
    gm_options_parse(&defaults, false);
    for (size_t i = 0; i < gm_option_count; i++) {
        const struct gm_option *o = &gm_option_table[i];
        const char *v = getenv(o->name);
        if (!v) continue;
        struct gm_options want = defaults;
        gm_option_set(o, v, &want); /* leaves the default if v is bad */
        int mode = 0, want_mode = 0;
        test_checks++;
        if (field(o, &gm_opt, &mode) != field(o, &want, &want_mode) || mode != want_mode) {
            test_failures++;
            fprintf(stdout, "%s=%s: gm_opt holds %lld, want %lld\n", o->name, v, (long long)field(o, &gm_opt, NULL),
                    (long long)field(o, &want, NULL));
        }
    }
    return test_done("child");
}

static int err_fd = -1;
static void stderr_to_file(void) { dup2(err_fd, 2); }

/* Run the child with env; CHECK that it passes and that its stderr holds
 * exactly one warning line per bad[] entry (and nothing else if any). */
static void run_child(const char *const *env, const struct bad *bad, size_t nbad)
{
    char path[] = "/tmp/gm_unit_options.XXXXXX";
    err_fd = mkstemp(path);
    unlink(path);
    int st = test_reexec("child", env, stderr_to_file);
    char out[8192];
    ssize_t n = pread(err_fd, out, sizeof out - 1, 0);
    close(err_fd);
    out[n > 0 ? n : 0] = 0;
    test_checks++;
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        test_failures++;
        fprintf(stderr, "child with %s...: status %#x\n", env[0], st);
    }
    /* Lines from gomalloc, and all lines: a good GOMALLOC_STATS adds the
     * report, which bad values (the default: off) must not. */
    size_t lines = 0, ours = 0;
    for (char *p = out; *p; p++) {
        if (p == out || p[-1] == '\n') ours += strncmp(p, "gomalloc: ", 10) == 0;
        lines += *p == '\n';
    }
    test_checks++;
    if (ours != nbad || (nbad && lines != nbad)) {
        test_failures++;
        fprintf(stderr, "child with %s...: %zu lines on stderr (%zu from gomalloc), want %zu:\n%s", env[0], lines,
                ours, nbad, out);
    }
    for (size_t i = 0; i < nbad; i++) {
        char head[256], tail[128];
        snprintf(head, sizeof head, "gomalloc: %s=%s: not ", bad[i].name, bad[i].value);
        snprintf(tail, sizeof tail, "; using the default %s\n", option(bad[i].name)->def);
        char *line = strstr(out, head);
        char *eol = line ? strchr(line, '\n') : NULL;
        size_t tn = strlen(tail);
        test_checks++;
        if (!line || (line != out && line[-1] != '\n') || !eol || (size_t)(eol + 1 - line) < tn ||
            strncmp(eol + 1 - tn, tail, tn) != 0) {
            test_failures++;
            fprintf(stderr, "no line \"%s...%s\" in:\n%s", head, tail, out);
        }
    }
}

static void test_process(void)
{
    /* Issue 12's examples and one bad value of every other option. */
    static const struct bad each[] = {
        {"GOMALLOC_MEMORY_LIMIT", "64M:hrd"}, {"GOMALLOC_DECAY_MS", "abc"}, {"GOMALLOC_DECAY_MS", "-5"},
        {"GOMALLOC_MEMORY_LIMIT", "1M"},      {"GOMALLOC_STATS", "jsno"},   {"GOMALLOC_THP", "maybe"},
        {"GOMALLOC_CHECK", "2"},              {"GOMALLOC_BACKGROUND", "x"}, {"GOMALLOC_STRICT", "maybe"},
        {"GOMALLOC_TRACE_MS", "0"},
    };
    char vars[16][128];
    for (size_t i = 0; i < sizeof each / sizeof each[0]; i++) {
        snprintf(vars[0], sizeof vars[0], "%s=%s", each[i].name, each[i].value);
        const char *env[] = {vars[0], NULL};
        run_child(env, &each[i], 1);
    }
    /* Three at once: a line each. */
    const char *three[] = {"GOMALLOC_DECAY_MS=abc", "GOMALLOC_STATS=jsno", "GOMALLOC_THP=maybe", NULL};
    const struct bad three_bad[] = {{"GOMALLOC_DECAY_MS", "abc"}, {"GOMALLOC_STATS", "jsno"}, {"GOMALLOC_THP", "maybe"}};
    run_child(three, three_bad, 3);
    /* Good values in every form, a few options at a time: no line. */
    for (size_t i = 0; i < sizeof goods / sizeof goods[0];) {
        const char *env[4] = {NULL, NULL, NULL, NULL};
        const char *seen[3];
        size_t k = 0;
        for (; k < 3 && i < sizeof goods / sizeof goods[0]; i++) {
            bool dup = false; /* one value per variable in an environment */
            for (size_t j = 0; j < k; j++) dup |= strcmp(seen[j], goods[i].name) == 0;
            if (dup) break;
            snprintf(vars[k], sizeof vars[k], "%s=%s", goods[i].name, goods[i].value);
            seen[k] = goods[i].name;
            env[k] = vars[k];
            k++;
        }
        run_child(env, NULL, 0);
    }
}

/* ------------------------------------------------------------------------ */
/* The table for the documents                                              */
/* ------------------------------------------------------------------------ */

static void print_table(bool markdown)
{
    for (size_t i = 0; i < gm_option_count; i++) {
        const struct gm_option *o = &gm_option_table[i];
        if (!markdown) {
            printf("%s\t%s\n", o->name, o->def);
            continue;
        }
        char forms[512];
        struct gm_buf b = {forms, 0, sizeof forms - 1};
        gm_option_forms(o, &b);
        forms[b.n] = 0;
        printf("| `%s` | `%s` | %s | %s |\n", o->name, o->def, forms, o->doc);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "child") == 0) return child_check();
    if (argc > 1 && strcmp(argv[1], "--table") == 0) {
        print_table(false);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--markdown") == 0) {
        print_table(true);
        return 0;
    }
    test_parse();
    test_defaults();
    test_process();
    return test_done("unit_options");
}
