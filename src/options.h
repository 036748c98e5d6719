/*
 * options.h — gomalloc's options: the GOMALLOC_* environment variables, the
 * one table that describes them (options.c) and the values they set. Beside
 * layer 0 (base.h, the only header it includes): every layer may read
 * gm_opt, which is written once, before the heap starts.
 *
 * The table drives everything about an option: its parsing, the warning
 * about a bad value, and the documents (tests/docs.sh compares README.md's
 * options table and gomalloc(3)'s list with it: unit_options --markdown
 * prints the table as README's rows). An option is added by adding a row
 * and a field of struct gm_options, nothing else.
 *
 * Reading is allocation-free (environ is scanned directly) and writes its
 * warnings with write(2), so it may run inside the first malloc.
 */
#ifndef GM_OPTIONS_H
#define GM_OPTIONS_H

#include "base.h"

/* GOMALLOC_STATS */
enum gm_stats_mode { GM_STATS_OFF = 0, GM_STATS_TEXT = 1, GM_STATS_JSON = 2 };
/* GOMALLOC_BACKGROUND: the background scavenger never, while the program
 * is multi-threaded (the default), or always (scavenge.c). */
enum gm_background { GM_BACKGROUND_OFF = 0, GM_BACKGROUND_AUTO = 1, GM_BACKGROUND_THREAD = 2 };

/* What the options set; gm_opt holds the process's. A field's type follows
 * its option's kind: bool, int (enum), uint32_t (milliseconds), uint64_t
 * with an int mode (size), uint64_t (bytes), const char * (string: NULL
 * when unset). */
struct gm_options {
    int stats;              /* GOMALLOC_STATS: enum gm_stats_mode */
    const char *stats_file; /* GOMALLOC_STATS_FILE: the report appended there, not to stderr */
    bool check;             /* GOMALLOC_CHECK: checked mode and gm_check() at exit */
    int background;         /* GOMALLOC_BACKGROUND: enum gm_background */
    uint32_t decay_ms;      /* GOMALLOC_DECAY_MS: free memory idle this long goes back */
    int strict;             /* GOMALLOC_STRICT: 1 on, 0 off, -1 auto (where commit is
                             * accounted strictly) */
    int thp;                /* GOMALLOC_THP: -1 auto, 0 heap arenas always MADV_NOHUGEPAGE,
                             * 1 never marked (the system's choice) */
    uint64_t memory_limit;  /* GOMALLOC_MEMORY_LIMIT: bytes, 0 none ... */
    int memory_limit_hard;  /* ... and 1 if hard */
    const char *trace;      /* GOMALLOC_TRACE: the memory timeline's file (trace.c) */
    uint32_t trace_ms;      /* GOMALLOC_TRACE_MS: its sampling period */
    const char *profile;    /* GOMALLOC_PROFILE: the heap profile's file (profile.h) */
    uint64_t profile_rate;  /* GOMALLOC_PROFILE_RATE: bytes per sample on average */
    int profile_signal;     /* GOMALLOC_PROFILE_SIGNAL: 0, or the signal that writes it */
    uint32_t profile_period; /* GOMALLOC_PROFILE_PERIOD: 0, or seconds between writes */
};
extern struct gm_options gm_opt GM_HIDDEN;

enum gm_opt_kind {
    GM_OPT_BOOL,   /* 1, on, yes, true / 0, off, no, false */
    GM_OPT_ENUM,   /* one of words (0 and 1 take the boolean words too) */
    GM_OPT_MS,     /* a number of milliseconds in [min, max] */
    GM_OPT_SIZE,   /* none, 0, or a size in [min, max] with K/M/G/T, then
                    * :word for a mode if words is set */
    GM_OPT_STRING, /* any value; %p in a file name is the process id */
    GM_OPT_BYTES,  /* a number of bytes in [min, max], with K/M/G/T */
    GM_OPT_SECONDS, /* off, 0, or a number of seconds in [min, max] */
};

struct gm_opt_word {
    const char *word;
    int value;
};

/* One option. def is the default as the documents write it; every kind
 * but strings parses it like a value, a string's default is no value
 * (NULL), and def says what that means. */
struct gm_option {
    const char *name;
    enum gm_opt_kind kind;
    const char *def;
    uint64_t min, max;               /* GM_OPT_MS, GM_OPT_SIZE, GM_OPT_BYTES, GM_OPT_SECONDS */
    const struct gm_opt_word *words; /* GM_OPT_ENUM: values; GM_OPT_SIZE: modes; NULL-terminated */
    size_t offset;                   /* of the field in struct gm_options */
    size_t mode_offset;              /* GM_OPT_SIZE with modes: the int the mode goes to */
    const char *doc;                 /* one line, for README's table (Markdown) */
};
extern const struct gm_option gm_option_table[] GM_HIDDEN;
extern const size_t gm_option_count GM_HIDDEN;

/* Set every option of *opt: from its environment variable if from_env and
 * the variable is set and not empty, else its default. A malformed or
 * out-of-range value gets one line on stderr (written with write(2)),
 * then the default. */
void gm_options_parse(struct gm_options *opt, bool from_env) GM_HIDDEN;
/* Set o's field of *opt from value; false (nothing set) if value is
 * malformed or out of range. */
bool gm_option_set(const struct gm_option *o, const char *value, struct gm_options *opt) GM_HIDDEN;
/* o's accepted forms, as the warning and README's table give them. */
struct gm_buf;
void gm_option_forms(const struct gm_option *o, struct gm_buf *b) GM_HIDDEN;

/* The value of an environment variable, scanning environ directly (no
 * allocation, no locale); NULL if unset or the environment is not set up. */
const char *gm_getenv(const char *name) GM_HIDDEN;
/* path with every %p replaced by the process id, into out (cap bytes,
 * NUL-terminated); false if it does not fit. */
#define GM_PATH_MAX 4096
bool gm_path_expand(const char *path, char *out, size_t cap) GM_HIDDEN;
/* A file an option names cannot be used: "gomalloc: OPTION: WHAT: PATH:
 * ERRNAME" on fd (stderr or a duplicate), one line, without allocating. */
void gm_complain_file(int fd, const char *option, const char *what, const char *path, int err) GM_HIDDEN;

#endif /* GM_OPTIONS_H */
