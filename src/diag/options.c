/* options.c: reads the options of options.h from the environment, once, at
 * process start.  It runs before malloc is usable, so it allocates nothing:
 * getenv only reads environ.  A bad value gets one warning line naming the
 * variable and the value, and the default stays in force. */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/syscall.h"
#include "base/text.h"
#include "core/internal.h"

const pmi_choice pmi_choices_stats[] = {
  {"0", PMI_STATS_OFF}, {"off", PMI_STATS_OFF}, {"no", PMI_STATS_OFF},
  {"1", PMI_STATS_TEXT}, {"text", PMI_STATS_TEXT}, {"yes", PMI_STATS_TEXT},
  {"json", PMI_STATS_JSON}, {NULL, 0},
};

typedef struct option_desc {
  const char *env;            /* the variable, POOLMALLOC_<ENV_SUFFIX> */
  enum pmi_option_kind kind;
  long def, lo, hi;
  const pmi_choice *choices;
  const char *syntax, *doc;
} option_desc;

static const option_desc options[PMI_OPT_COUNT] = {
#define PMI_OPTION_DESC(name, env, kind, def, lo, hi, choices, syntax, doc) \
  [PMI_OPT_##name] = {"POOLMALLOC_" env, kind, def, lo, hi, choices, syntax, doc},
  PMI_OPTION_LIST(PMI_OPTION_DESC)
#undef PMI_OPTION_DESC
};

long pmi_option_values[PMI_OPT_COUNT] = {
#define PMI_OPTION_DEFAULT(name, env, kind, def, lo, hi, choices, syntax, doc) [PMI_OPT_##name] = def,
  PMI_OPTION_LIST(PMI_OPTION_DEFAULT)
#undef PMI_OPTION_DEFAULT
};
const char *pmi_option_strings[PMI_OPT_COUNT];

static bool parse_long(const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) return false;
  *out = v;
  return true;
}

static bool parse_choice(const char *s, const pmi_choice *choices, long *out) {
  for (const pmi_choice *c = choices; c->word != NULL; c++) {
    if (pmi_text_same_word(s, c->word)) {
      *out = c->value;
      return true;
    }
  }
  return false;
}

extern char **environ;

/* Whether any variable of the environment starts with POOLMALLOC_: one pass
 * over environ, where a getenv per option (each a pass of its own) would be
 * a few thousand instructions of every program's start-up. */
static pmi_startup bool any_option_set(void) {
  if (environ == NULL) return false;
  static const char prefix[] = "POOLMALLOC_";
  for (char **e = environ; *e != NULL; e++) {   /* no strncmp: its first call costs a symbol lookup */
    unsigned i = 0;
    while (i < sizeof prefix - 1 && (*e)[i] == prefix[i]) i++;
    if (i == sizeof prefix - 1) return true;
  }
  return false;
}

pmi_startup void pmi_options_init(void) {
  if (!any_option_set()) return;
  int saved = errno;
  for (int i = 0; i < PMI_OPT_COUNT; i++) {
    const option_desc *o = &options[i];
    const char *s = getenv(o->env);
    if (s == NULL) continue;
    bool ok = false;
    switch (o->kind) {
    case PMI_OPT_LONG:
      ok = parse_long(s, o->lo, o->hi, &pmi_option_values[i]);
      if (!ok) pmi_warning("%s=%s is not a whole number in %ld..%ld; using %ld", o->env, s, o->lo, o->hi, o->def);
      break;
    case PMI_OPT_CHOICE:
      ok = parse_choice(s, o->choices, &pmi_option_values[i]);
      if (!ok) pmi_warning("%s=%s is not one of %s; ignored", o->env, s, o->syntax);
      break;
    case PMI_OPT_PATH:
      ok = s[0] != '\0';
      if (ok) pmi_option_strings[i] = s;
      else pmi_warning("%s is set but empty; ignored", o->env);
      break;
    }
  }
  errno = saved;
}

/* A path option's value with %p replaced by the process id. */
void pmi_options_path(char *out, size_t cap, const char *pattern) {
  size_t j = 0;
  for (const char *s = pattern; *s != '\0' && j < cap - 24; s++) {
    if (s[0] == '%' && s[1] == 'p') {
      j += (size_t)snprintf(out + j, cap - j, "%d", pmi_sys_getpid());
      s++;
    } else {
      out[j++] = *s;
    }
  }
  out[j] = '\0';
}

/* The option list as the README shows it (scripts/poolmalloc --options). */
pmi_export void pm_options_print(int fd) {
  char line[640];
  for (int i = 0; i < PMI_OPT_COUNT; i++) {
    const option_desc *o = &options[i];
    if (o->kind == PMI_OPT_LONG)
      pmi_os_fmt(line, sizeof line, "- `%s=%s` (default %ld): %s.\n", o->env, o->syntax, o->def, o->doc);
    else
      pmi_os_fmt(line, sizeof line, "- `%s=%s`: %s.\n", o->env, o->syntax, o->doc);
    pmi_os_write(fd, line, strlen(line));
  }
}
