/* options.h: every option of the library, in one list.  The list generates
 * the enum, the table that options.c parses from the environment (variable
 * POOLMALLOC_<NAME>), and the help text.  Nothing else names an option. */
#ifndef PM_OPTIONS_H
#define PM_OPTIONS_H

enum pmi_option_kind { PMI_OPT_LONG, PMI_OPT_CHOICE, PMI_OPT_PATH };

/* X(name, ENV_SUFFIX, kind, default, min, max, choices, value syntax, doc) */
#define PMI_OPTION_LIST(X)                                                        \
  X(stats, "STATS", PMI_OPT_CHOICE, 0, 0, 2, pmi_choices_stats, "0|1|text|json",  \
    "print a statistics report when the program exits: 1 or text for a table, "   \
    "json for one JSON document")                                                 \
  X(stats_file, "STATS_FILE", PMI_OPT_PATH, 0, 0, 0, NULL, "PATH",                \
    "write the report to PATH (appending) instead of stderr; %p in PATH becomes " \
    "the process id")                                                             \
  X(stats_interval, "STATS_INTERVAL", PMI_OPT_LONG, 0, 0, 86400, NULL, "SECONDS",  \
    "also append a report every SECONDS while the program runs (one JSON "       \
    "document per line with json; a reporting thread exists only when set)")     \
  X(arena_reserve, "ARENA_RESERVE", PMI_OPT_LONG, 4, 0, 65536, NULL, "N",         \
    "empty arenas (256 KiB each) kept mapped, process-wide, for reuse instead "   \
    "of being returned to the OS")                                               \
  X(arena_decay_ms, "ARENA_DECAY_MS", PMI_OPT_LONG, 1000, 0, 3600000, NULL, "MS", \
    "empty arenas beyond ARENA_RESERVE go back to the OS after this many "        \
    "milliseconds unused (0: at once); malloc_trim() returns them all now")       \
  X(thp, "THP", PMI_OPT_LONG, 16, 0, 1048576, NULL, "MIB",                        \
    "once arenas take more than MIB MiB, new ones are carved from 2 MiB chunks "  \
    "the kernel may back with transparent huge pages (fewer page faults; up to "  \
    "2 MiB of a chunk not used yet is resident too); once huge blocks take more " \
    "than MIB MiB, their new mappings of 8 MiB or more are 2 MiB-aligned and "    \
    "advised the same way (the arenas' chunks only where no fault waits for "     \
    "compaction: see THP_ADVISE); 0: never")                                      \
  X(thp_advise, "THP_ADVISE", PMI_OPT_LONG, 0, 0, 1, NULL, "0|1",                \
    "1: carve arenas from advised chunks beyond THP even where the kernel's THP " \
    "mode is \"madvise\" and its defrag setting makes an advised fault wait for " \
    "compaction (\"madvise\", \"always\", \"defer+madvise\": a small malloc may "  \
    "then stall for milliseconds); 0: not there (arenas get huge pages where "   \
    "defrag is \"defer\" or \"never\", or the mode is \"always\")")                \
  X(purge_thread, "PURGE_THREAD", PMI_OPT_LONG, 1, 0, 1, NULL, "0|1",             \
    "1: a background thread, started only once memory has been freed and gone "   \
    "when nothing is left to return, gives idle memory back after "              \
    "ARENA_DECAY_MS (remote frees an idle owner does not collect, empty pools, "  \
    "reserve arenas); 0: only the allocator's own calls and malloc_trim() do")   \
  X(membarrier, "MEMBARRIER", PMI_OPT_LONG, 1, 0, 1, NULL, "0|1",                \
    "1: threads that look into another thread's heap (the purge thread, "         \
    "malloc_trim, the statistics) use membarrier(2) where the kernel has it, so " \
    "that the owner's slow paths need no fence; 0: never (each of those slow "    \
    "paths pays one locked instruction, as without the kernel's support)")       \
  X(debug, "DEBUG", PMI_OPT_LONG, 0, 0, 1, NULL, "0|1",                           \
    "debug mode: guard bytes around every block, 0xCD/0xDD fills, a quarantine "  \
    "of freed blocks; overflows, double frees, bad pointers and writes after "    \
    "free are reported with a hex dump and a backtrace, then abort()")          \
  X(profile, "PROFILE", PMI_OPT_LONG, 0, 0, 1, NULL, "0|1",                       \
    "heap profiler: sampled allocations record their call stack; the live set "  \
    "is written at exit, with every STATS_INTERVAL report and on "               \
    "pm_profile_dump() (see \"Who holds the memory\")")                          \
  X(profile_rate, "PROFILE_RATE", PMI_OPT_LONG, 524288, 1, 1073741824, NULL,       \
    "BYTES", "mean number of bytes allocated between two samples (exponential "   \
    "gaps, so every byte has the same chance); 1 samples every allocation")       \
  X(profile_file, "PROFILE_FILE", PMI_OPT_PATH, 0, 0, 0, NULL, "PATH",            \
    "where the profile goes (default poolmalloc.%p.heap, %p becoming the "       \
    "process id); PATH.txt gets the top sites, PATH.collapsed the stacks for "   \
    "a flame graph")

enum pmi_option_id {
#define PMI_OPTION_ENUM(name, env, kind, def, lo, hi, choices, syntax, doc) PMI_OPT_##name,
  PMI_OPTION_LIST(PMI_OPTION_ENUM)
#undef PMI_OPTION_ENUM
  PMI_OPT_COUNT
};

enum pmi_stats_format { PMI_STATS_OFF = 0, PMI_STATS_TEXT = 1, PMI_STATS_JSON = 2 };

typedef struct pmi_choice { const char *word; long value; } pmi_choice;
extern const pmi_choice pmi_choices_stats[];

extern long pmi_option_values[PMI_OPT_COUNT];
extern const char *pmi_option_strings[PMI_OPT_COUNT];
#define pmi_option(name)     (pmi_option_values[PMI_OPT_##name])
#define pmi_option_str(name) (pmi_option_strings[PMI_OPT_##name])

void pmi_options_init(void);
void pmi_options_path(char *out, size_t cap, const char *pattern);   /* %p: the pid */

#endif /* PM_OPTIONS_H */
