/* text.h: the few string functions of the C library that the diagnostics,
 * libc.c and os.c need, written here so that they are no imports: an import is
 * about 60 bytes of the headers every process maps whole at start-up
 * (base/syscall.h says why that matters). */
#ifndef PM_BASE_TEXT_H
#define PM_BASE_TEXT_H

#include <stddef.h>

/* strrchr: the last c in s, or NULL. */
static inline const char *pmi_text_last(const char *s, char c) {
  const char *last = NULL;
  for (; *s != '\0'; s++)
    if (*s == c) last = s;
  return last;
}

/* strcasecmp's equality, for ASCII words (option values). */
static inline int pmi_text_same_word(const char *a, const char *b) {
  for (;; a++, b++) {
    char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
    char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
    if (x != y) return 0;
    if (x == '\0') return 1;
  }
}

/* strstr's test: does word occur in s? */
static inline int pmi_text_contains(const char *s, const char *word) {
  for (; *s != '\0'; s++) {
    size_t i = 0;
    while (word[i] != '\0' && s[i] == word[i]) i++;
    if (word[i] == '\0') return 1;
  }
  return 0;
}

#endif /* PM_BASE_TEXT_H */
