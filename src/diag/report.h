/* report.h: how a layer above the allocator adds a section to the
 * statistics report (POOLMALLOC_STATS, malloc_stats, pm_stats_write).  The
 * only diag header other layers include: it names nothing of the core.
 *
 * A section is a function that writes its part of the report through
 * pmi_report_printf, in the format asked for: text lines appended to the
 * table, or JSON members appended to the report's object (each starting
 * with ", ").  It runs with no allocator lock held, from any thread that
 * writes a report (the exit handler, the interval thread, malloc_stats). */
#ifndef PM_DIAG_REPORT_H
#define PM_DIAG_REPORT_H

#pragma GCC visibility push(hidden)

typedef struct pmi_report pmi_report;                    /* a report being written */
typedef void (*pmi_report_section)(pmi_report *r, int format);   /* PM_STATS_TEXT or _JSON */

#define PMI_REPORT_SECTIONS 4
void pmi_report_add_section(pmi_report_section fn);      /* idempotent; no allocation */
void pmi_report_printf(pmi_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *pmi_report_count(pmi_report *r, unsigned long long v);   /* "1,234,567" */

#pragma GCC visibility pop

#endif /* PM_DIAG_REPORT_H */
