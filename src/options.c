/*
 * options.c — the table of gomalloc's options (GOMALLOC_* environment
 * variables) and the parsing it drives (options.h).
 *
 * Invariants:
 *   - every option is one row of gm_option_table, in the documents' order;
 *     its default is written once, in the row, and parses like a value
 *     (strings excepted: their default is no value);
 *   - a value is either accepted whole or not at all: a malformed or
 *     out-of-range one changes nothing, gets one warning line naming the
 *     variable, the value and the accepted forms, and the default is used;
 *   - nothing here allocates, takes a lock or uses stdio or the locale:
 *     parsing runs inside the first malloc (api.c reads the environment
 *     once per process, so each warning appears once). Warnings are built
 *     in a stack buffer and written with one write(2).
 *
 * Words match without regard to ASCII case; an option whose words include
 * 0 and 1 takes the boolean words for them (off, no, false; on, yes,
 * true), as the booleans do, so that every value that turned an option on
 * or off before the table still does.
 *
 * Options that name files share two helpers here: %p in a name is the
 * process id, and a file that cannot be used gets one line naming the
 * option, the file and the error.
 */
#define _GNU_SOURCE /* strerrorname_np */
#include "options.h"

#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

struct gm_options gm_opt;

/* ------------------------------------------------------------------------ */
/* The table                                                                */
/* ------------------------------------------------------------------------ */

#define GM_FIELD(f) offsetof(struct gm_options, f)
#define GM_MS_MAX 3600000 /* an hour */

static const struct gm_opt_word gm_words_bool[] = {{"0", 0}, {"1", 1}, {NULL, 0}};
static const struct gm_opt_word gm_words_stats[] = {
    {"0", GM_STATS_OFF}, {"1", GM_STATS_TEXT}, {"json", GM_STATS_JSON}, {NULL, 0}};
static const struct gm_opt_word gm_words_background[] = {{"0", GM_BACKGROUND_OFF},
                                                         {"1", GM_BACKGROUND_AUTO},
                                                         {"auto", GM_BACKGROUND_AUTO},
                                                         {"thread", GM_BACKGROUND_THREAD},
                                                         {NULL, 0}};
static const struct gm_opt_word gm_words_strict[] = {{"0", 0}, {"1", 1}, {"auto", -1}, {NULL, 0}};
static const struct gm_opt_word gm_words_thp[] = {{"auto", -1}, {"0", 0}, {"1", 1}, {NULL, 0}};
static const struct gm_opt_word gm_words_limit[] = {{"soft", 0}, {"hard", 1}, {NULL, 0}};
static const struct gm_opt_word gm_words_signal[] = {
    {"0", 0}, {"usr1", SIGUSR1}, {"usr2", SIGUSR2}, {"prof", SIGPROF}, {NULL, 0}};

const struct gm_option gm_option_table[] = {
    {"GOMALLOC_STATS", GM_OPT_ENUM, "off", 0, 0, gm_words_stats, GM_FIELD(stats), 0,
     "the statistics report at exit: `1` as text, `json` as one JSON line; on stderr unless "
     "`GOMALLOC_STATS_FILE` is set"},
    {"GOMALLOC_STATS_FILE", GM_OPT_STRING, "stderr", 0, 0, NULL, GM_FIELD(stats_file), 0,
     "append the report to this file instead, with one `write`, so that processes can share it"},
    {"GOMALLOC_CHECK", GM_OPT_BOOL, "off", 0, 0, gm_words_bool, GM_FIELD(check), 0,
     "checked mode, for finding bugs: a write past a block or into a freed one aborts with a line "
     "naming the block; `gm_check()` at exit"},
    {"GOMALLOC_BACKGROUND", GM_OPT_ENUM, "auto", 0, 0, gm_words_background, GM_FIELD(background), 0,
     "the background scavenger thread: `auto` runs it while the program has two threads or more "
     "(a single-threaded one returns memory in its own calls); `thread`: always, even in a "
     "single-threaded program; `0`: never"},
    {"GOMALLOC_DECAY_MS", GM_OPT_MS, "500", 0, GM_MS_MAX, NULL, GM_FIELD(decay_ms), 0,
     "free memory idle this many ms goes back to the OS"},
    {"GOMALLOC_STRICT", GM_OPT_ENUM, "1", 0, 0, gm_words_strict, GM_FIELD(strict), 0,
     "strict-commit mode: free chunks idle for the decay period are decommitted too, so the commit "
     "charge (VmData) follows the live heap; `auto`: on only under overcommit mode 2 or a finite "
     "`RLIMIT_DATA`"},
    {"GOMALLOC_THP", GM_OPT_ENUM, "auto", 0, 0, gm_words_thp, GM_FIELD(thp), 0,
     "huge pages for the heap: `0` marks every heap arena `MADV_NOHUGEPAGE`, `1` marks none (the "
     "system decides), `auto` marks them only where THP `enabled` is `always`"},
    {"GOMALLOC_MEMORY_LIMIT", GM_OPT_SIZE, "none", GM_CHUNK_BYTES, UINT64_MAX, gm_words_limit,
     GM_FIELD(memory_limit), GM_FIELD(memory_limit_hard),
     "a memory limit at start, soft unless `:hard`; with none, in a cgroup whose `memory.max` is "
     "set, a soft one from it"},
    {"GOMALLOC_TRACE", GM_OPT_STRING, "off", 0, 0, NULL, GM_FIELD(trace), 0,
     "write the memory timeline to this file"},
    {"GOMALLOC_TRACE_MS", GM_OPT_MS, "10", 1, GM_MS_MAX, NULL, GM_FIELD(trace_ms), 0,
     "the timeline's sampling period, ms"},
    {"GOMALLOC_PROFILE", GM_OPT_STRING, "off", 0, 0, NULL, GM_FIELD(profile), 0,
     "sample allocations and write the heap profile to this file at exit (pprof's legacy text "
     "format)"},
    {"GOMALLOC_PROFILE_RATE", GM_OPT_BYTES, "512K", 1, (uint64_t)1 << 30, NULL, GM_FIELD(profile_rate), 0,
     "the heap profile samples one allocation per this many bytes on average (`1`: every "
     "allocation)"},
    {"GOMALLOC_PROFILE_SIGNAL", GM_OPT_ENUM, "off", 0, 0, gm_words_signal, GM_FIELD(profile_signal), 0,
     "with `GOMALLOC_PROFILE`, a signal on which the profile is written too (`usr1`, `usr2`, "
     "`prof`); no handler is installed unless set"},
    {"GOMALLOC_PROFILE_PERIOD", GM_OPT_SECONDS, "off", 1, 86400, NULL, GM_FIELD(profile_period), 0,
     "with `GOMALLOC_PROFILE`, the profile is rewritten this often too, by the first sampled "
     "allocation after each period (no thread is started for it)"},
};
const size_t gm_option_count = sizeof gm_option_table / sizeof gm_option_table[0];

/* ------------------------------------------------------------------------ */
/* The environment                                                          */
/* ------------------------------------------------------------------------ */

const char *gm_getenv(const char *name)
{
    char **env = environ;
    if (!env) return NULL;
    size_t n = strlen(name);
    for (; *env; env++)
        if (strncmp(*env, name, n) == 0 && (*env)[n] == '=') return *env + n + 1;
    return NULL;
}

bool gm_path_expand(const char *path, char *out, size_t cap)
{
    struct gm_buf b = {out, 0, cap - 1};
    for (const char *p = path; *p; p++) {
        if (p[0] == '%' && p[1] == 'p') {
            gm_bputu(&b, (uint64_t)getpid(), 0);
            p++;
        } else {
            gm_bputc(&b, *p);
        }
    }
    if (b.n >= b.cap) return false;
    out[b.n] = 0;
    return true;
}

void gm_complain_file(int fd, const char *option, const char *what, const char *path, int err)
{
    char line[GM_PATH_MAX + 256];
    struct gm_buf b = {line, 0, sizeof line - 1}; /* room for the newline */
    gm_bputs(&b, "gomalloc: ");
    gm_bputs(&b, option);
    gm_bputs(&b, ": ");
    gm_bputs(&b, what);
    gm_bputs(&b, ": ");
    gm_bputs(&b, path);
    gm_bputs(&b, ": ");
    /* The error's name, not strerror's text: that may be translated, and
     * translation may allocate. */
    const char *name = NULL;
#if defined(__GLIBC__) && defined(__GLIBC_PREREQ)
#if __GLIBC_PREREQ(2, 32)
    name = strerrorname_np(err);
#endif
#endif
    if (name) {
        gm_bputs(&b, name);
    } else {
        gm_bputs(&b, "errno ");
        gm_bputi(&b, err);
    }
    line[b.n++] = '\n';
    gm_write_all(fd, line, b.n);
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                  */
/* ------------------------------------------------------------------------ */

static char gm_lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

/* Do a and b agree, ignoring ASCII case, over b's first n bytes and is a
 * exactly that long? */
static bool gm_word_is(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] == 0 || gm_lower(a[i]) != gm_lower(b[i])) return false;
    return a[n] == 0;
}

/* The boolean words, for the 0 and 1 of any option that has them. */
static const char *const gm_bool_words[2][3] = {{"off", "no", "false"}, {"on", "yes", "true"}};

/* The word of words that s[0, n) names, directly or as a boolean word. */
static const struct gm_opt_word *gm_word_find(const struct gm_opt_word *words, const char *s, size_t n)
{
    for (const struct gm_opt_word *w = words; w->word; w++)
        if (gm_word_is(w->word, s, n)) return w;
    for (int v = 0; v < 2; v++)
        for (int i = 0; i < 3; i++)
            if (gm_word_is(gm_bool_words[v][i], s, n)) return gm_word_find(words, v ? "1" : "0", 1);
    return NULL;
}

/* A decimal number at *p (base.c's parser), advancing *p past it; false if
 * there is no digit or it overflows. */
static bool gm_number(const char **p, uint64_t *out)
{
    const char *end;
    uint64_t n = gm_parse_u64(*p, &end);
    if (!end || end == *p) return false;
    *p = end;
    *out = n;
    return true;
}

/* A number of bytes with an optional binary unit (K, M, G, T, then i and B
 * as in KiB or MB), up to the end of s or a ':'. */
static bool gm_parse_size(const char **p, uint64_t *out)
{
    uint64_t n;
    if (!gm_number(p, &n)) return false;
    const char *s = *p;
    unsigned shift = 0;
    switch (gm_lower(*s)) {
    case 'k': shift = 10; break;
    case 'm': shift = 20; break;
    case 'g': shift = 30; break;
    case 't': shift = 40; break;
    }
    if (shift) {
        s++;
        if (gm_lower(*s) == 'i') s++;
    }
    if (gm_lower(*s) == 'b') s++;
    if (shift && n > (UINT64_MAX >> shift)) return false;
    *p = s;
    *out = n << shift;
    return true;
}

static bool gm_in_range(const struct gm_option *o, uint64_t v) { return v >= o->min && v <= o->max; }

/* none, 0, or a size in range, then :mode if the option has modes. */
static bool gm_set_size(const struct gm_option *o, const char *v, char *base)
{
    uint64_t bytes = 0;
    int mode = 0;
    if (!gm_word_is("none", v, strlen(v))) {
        const char *p = v;
        if (!gm_parse_size(&p, &bytes) || (bytes != 0 && !gm_in_range(o, bytes))) return false;
        if (*p == ':' && o->words) {
            const struct gm_opt_word *w = gm_word_find(o->words, p + 1, strlen(p + 1));
            if (!w) return false;
            mode = w->value;
        } else if (*p != 0) {
            return false;
        }
    }
    memcpy(base + o->offset, &bytes, sizeof bytes);
    if (o->words) memcpy(base + o->mode_offset, &mode, sizeof mode);
    return true;
}

/* off, 0, or a number of seconds in range. */
static bool gm_set_seconds(const struct gm_option *o, const char *v, char *base)
{
    uint64_t sec = 0;
    const char *p = v;
    if (!gm_word_is("off", v, strlen(v)) && (!gm_number(&p, &sec) || *p != 0 || (sec != 0 && !gm_in_range(o, sec))))
        return false;
    uint32_t s = (uint32_t)sec;
    memcpy(base + o->offset, &s, sizeof s);
    return true;
}

bool gm_option_set(const struct gm_option *o, const char *v, struct gm_options *opt)
{
    char *base = (char *)opt;
    switch (o->kind) {
    case GM_OPT_BOOL:
    case GM_OPT_ENUM: {
        const struct gm_opt_word *w = gm_word_find(o->words, v, strlen(v));
        if (!w) return false;
        if (o->kind == GM_OPT_BOOL) {
            bool b = w->value != 0;
            memcpy(base + o->offset, &b, sizeof b);
        } else {
            memcpy(base + o->offset, &w->value, sizeof w->value);
        }
        return true;
    }
    case GM_OPT_MS: {
        uint64_t ms;
        const char *p = v;
        if (!gm_number(&p, &ms) || *p != 0 || !gm_in_range(o, ms)) return false;
        uint32_t m = (uint32_t)ms;
        memcpy(base + o->offset, &m, sizeof m);
        return true;
    }
    case GM_OPT_SIZE:
        return gm_set_size(o, v, base);
    case GM_OPT_SECONDS:
        return gm_set_seconds(o, v, base);
    case GM_OPT_BYTES: {
        uint64_t bytes;
        const char *p = v;
        if (!gm_parse_size(&p, &bytes) || *p != 0 || !gm_in_range(o, bytes)) return false;
        memcpy(base + o->offset, &bytes, sizeof bytes);
        return true;
    }
    case GM_OPT_STRING:
        memcpy(base + o->offset, &v, sizeof v);
        return true;
    }
    return false;
}

static void gm_option_default(const struct gm_option *o, struct gm_options *opt)
{
    if (o->kind == GM_OPT_STRING) {
        const char *none = NULL;
        memcpy((char *)opt + o->offset, &none, sizeof none);
    } else {
        gm_option_set(o, o->def, opt); /* unit_options checks that every default parses */
    }
}

/* ------------------------------------------------------------------------ */
/* Accepted forms and the warning                                           */
/* ------------------------------------------------------------------------ */

/* v in the largest binary unit that divides it: 4M, 1536K, 100. */
static void gm_bput_size(struct gm_buf *b, uint64_t v)
{
    static const char units[] = "KMGT";
    int u = -1;
    while (u < 3 && v != 0 && (v & 1023) == 0) {
        v >>= 10;
        u++;
    }
    gm_bputu(b, v, 0);
    if (u >= 0) gm_bputc(b, units[u]);
}

static void gm_bput_words(struct gm_buf *b, const struct gm_opt_word *words)
{
    for (const struct gm_opt_word *w = words; w->word; w++) {
        if (w != words) gm_bputs(b, w[1].word ? ", " : " or ");
        gm_bputs(b, w->word);
        bool zero = strcmp(w->word, "0") == 0, one = strcmp(w->word, "1") == 0;
        if (!zero && !one) continue;
        for (int i = 0; i < 3; i++) {
            gm_bputs(b, i ? ", " : " (or ");
            gm_bputs(b, gm_bool_words[one][i]);
        }
        gm_bputc(b, ')');
    }
}

/* "MIN-MAX)". */
static void gm_bput_range(struct gm_buf *b, const struct gm_option *o)
{
    gm_bputu(b, o->min, 0);
    gm_bputc(b, '-');
    gm_bputu(b, o->max, 0);
    gm_bputc(b, ')');
}

void gm_option_forms(const struct gm_option *o, struct gm_buf *b)
{
    switch (o->kind) {
    case GM_OPT_BOOL:
        gm_bputs(b, "a boolean: ");
        gm_bput_words(b, o->words);
        break;
    case GM_OPT_ENUM:
        gm_bputs(b, "one of ");
        gm_bput_words(b, o->words);
        break;
    case GM_OPT_SECONDS:
        gm_bputs(b, "off, 0, or a number of seconds (");
        gm_bput_range(b, o);
        break;
    case GM_OPT_MS:
        gm_bputs(b, "a number of milliseconds (");
        gm_bput_range(b, o);
        break;
    case GM_OPT_SIZE:
        gm_bputs(b, "none or a size of at least ");
        gm_bput_size(b, o->min);
        if (o->max != UINT64_MAX) {
            gm_bputs(b, " and at most ");
            gm_bput_size(b, o->max);
        }
        gm_bputs(b, " (K, M, G, T: binary units)");
        if (o->words) {
            gm_bputs(b, ", optionally followed by :");
            for (const struct gm_opt_word *w = o->words; w->word; w++) {
                if (w != o->words) gm_bputs(b, w[1].word ? ", :" : " or :");
                gm_bputs(b, w->word);
            }
        }
        break;
    case GM_OPT_STRING:
        gm_bputs(b, "a file name (%p: the process id)");
        break;
    case GM_OPT_BYTES:
        gm_bputs(b, "a number of bytes from ");
        gm_bput_size(b, o->min);
        gm_bputs(b, " to ");
        gm_bput_size(b, o->max);
        gm_bputs(b, " (K, M, G: binary units)");
        break;
    }
}

#define GM_WARN_LINE 512
#define GM_WARN_VALUE 80 /* bytes of the value repeated in the warning */

/* "gomalloc: NAME=VALUE: not FORMS; using the default DEF", one line. */
static void gm_option_warn(const struct gm_option *o, const char *v)
{
    char line[GM_WARN_LINE];
    struct gm_buf b = {line, 0, sizeof line - 1}; /* room for the newline */
    gm_bputs(&b, "gomalloc: ");
    gm_bputs(&b, o->name);
    gm_bputc(&b, '=');
    size_t i = 0;
    for (; v[i] && i < GM_WARN_VALUE; i++) gm_bputc(&b, (unsigned char)v[i] < 0x20 ? '?' : v[i]); /* one line */
    if (v[i]) gm_bputs(&b, "...");
    gm_bputs(&b, ": not ");
    gm_option_forms(o, &b);
    gm_bputs(&b, "; using the default ");
    gm_bputs(&b, o->def);
    line[b.n++] = '\n';
    gm_write_all(2, line, b.n);
}

void gm_options_parse(struct gm_options *opt, bool from_env)
{
    for (size_t i = 0; i < gm_option_count; i++) {
        const struct gm_option *o = &gm_option_table[i];
        const char *v = from_env ? gm_getenv(o->name) : NULL;
        if (v && *v) {
            if (gm_option_set(o, v, opt)) continue;
            gm_option_warn(o, v);
        }
        gm_option_default(o, opt);
    }
}
