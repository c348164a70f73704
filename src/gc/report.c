/* report.c: the object layer's section of the statistics report, added
 * through diag/report.h's hook when a program first uses the layer (so that
 * the report of a program that never does has no such section, and a
 * static link that leaves the layer out leaves this out too). */
#include "gc/gc_internal.h"
#include "diag/report.h"

static void report_gc(pmi_report *r, int format) {
  pmi_gc_stats_report gc;
  pmi_gc_stats_snapshot(&gc);
  if (!gc.used) return;
  if (format == PM_STATS_JSON) {
    pmi_report_printf(r, ", \"gc\": {\"tracked\": %zu, \"frozen\": %zu, \"generations\": [", gc.tracked, gc.frozen);
    for (int g = 0; g < PMI_GC_NGEN; g++)
      pmi_report_printf(r, "%s{\"collections\": %ld, \"collected\": %ld, \"uncollectable\": %ld, "
                           "\"pause_total_ns\": %llu, \"pause_max_ns\": %llu}",
                        g ? ", " : "", gc.gen[g].collections, gc.gen[g].collected, gc.gen[g].uncollectable,
                        (unsigned long long)gc.gen[g].pause_total_ns, (unsigned long long)gc.gen[g].pause_max_ns);
    pmi_report_printf(r, "]}");
    return;
  }
  pmi_report_printf(r, "\ncycle collector (poolgc.h): %s objects tracked, %s frozen\n",
                    pmi_report_count(r, gc.tracked), pmi_report_count(r, gc.frozen));
  pmi_report_printf(r, "gen  collections      collected  uncollectable  pause total (ms)  longest (ms)\n");
  for (int g = 0; g < PMI_GC_NGEN; g++)
    pmi_report_printf(r, "%3d  %11s  %13s  %13s  %16.3f  %12.3f\n", g,
                      pmi_report_count(r, (unsigned long long)gc.gen[g].collections),
                      pmi_report_count(r, (unsigned long long)gc.gen[g].collected),
                      pmi_report_count(r, (unsigned long long)gc.gen[g].uncollectable),
                      (double)gc.gen[g].pause_total_ns / 1e6, (double)gc.gen[g].pause_max_ns / 1e6);
}

pmi_noinline void pmi_gc_first_use(void) {
  pmi_gc.used = 1;
  pmi_report_add_section(report_gc);
}
