/* What the library's start-up leaves written, seen from main of a program
 * linked against it before any allocation: no page of its .bss (the part of
 * its writable segment past the file) has been written: the variables that
 * start-up writes are in .data (pmi_startup_data), whose pages the loader
 * writes anyway, and no table or heap is made before the first call.  A page
 * read but never written maps the shared zero page, which /proc/self/pagemap
 * shows present but not exclusively mapped; a written one is present and
 * exclusive (checked on a page of this program's own .bss). */
#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pmtest.h"

#define PM_PRESENT   (1ull << 63)
#define PM_EXCLUSIVE (1ull << 56)

static uintptr_t bss_start, bss_end;   /* whole pages past the file part */
static uintptr_t lib_start, lib_end;   /* the library's segments */
static long page;

static int find_library(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  (void)arg;
  if (info->dlpi_name == NULL || strstr(info->dlpi_name, "libpoolmalloc") == NULL) return 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD) continue;
    uintptr_t a = info->dlpi_addr + ph->p_vaddr;
    uintptr_t e = (a + ph->p_memsz + page - 1) & ~(uintptr_t)(page - 1);
    if (lib_start == 0 || a < lib_start) lib_start = a & ~(uintptr_t)(page - 1);
    if (e > lib_end) lib_end = e;
    if ((ph->p_flags & PF_W) && ph->p_memsz > ph->p_filesz) {
      bss_start = (a + ph->p_filesz + page - 1) & ~(uintptr_t)(page - 1);
      bss_end = e;
    }
  }
  return 1;
}

/* pages of [a, e) present and exclusively mapped: written by this process */
static long written_pages(int pm, uintptr_t a, uintptr_t e) {
  long n = 0;
  for (uintptr_t p = a; p < e; p += (uintptr_t)page) {
    uint64_t ent;
    if (pread(pm, &ent, sizeof ent, (off_t)(p / (uintptr_t)page) * 8) != (ssize_t)sizeof ent) return -1;
    if ((ent & PM_PRESENT) && (ent & PM_EXCLUSIVE)) n++;
  }
  return n;
}

/* a page of this program's own .bss, written below: the detector's check */
static char own[1 << 16];

int main(void) {
  page = sysconf(_SC_PAGESIZE);
  for (char **e = environ; *e != NULL; e++)
    if (strncmp(*e, "POOLMALLOC_", 11) == 0) PMT_SKIP("%s is set: start-up may then write", *e);
  /* before anything allocates */
  dl_iterate_phdr(find_library, NULL);
  int pm = open("/proc/self/pagemap", O_RDONLY);
  long at_start = pm >= 0 && bss_end > bss_start ? written_pages(pm, bss_start, bss_end) : -1;
  REQUIRE(lib_end > lib_start);
  if (pm < 0 || at_start < 0) PMT_SKIP("/proc/self/pagemap unreadable");
  REQUIRE(bss_end > bss_start);
  CHECKF(at_start == 0, "%ld of the %ld .bss pages written at start-up", at_start,
         (long)((bss_end - bss_start) / (uintptr_t)page));

  uintptr_t mine = ((uintptr_t)own + (uintptr_t)page - 1) & ~(uintptr_t)(page - 1);
  long before = written_pages(pm, mine, mine + (uintptr_t)page);
  *(volatile char *)mine = 1;
  CHECKF(before == 0 && written_pages(pm, mine, mine + (uintptr_t)page) == 1,
         "a page of the program's .bss: %ld written before the store, not 1 after", before);
  void *p = malloc(24);
  REQUIRE(p != NULL);
  free(p);
  fprintf(stderr, "the library's .bss: %ld pages, %ld written at start-up\n",
          (long)((bss_end - bss_start) / (uintptr_t)page), at_start);
  close(pm);
  return pmt_done("layout.test_startup_pages");
}
