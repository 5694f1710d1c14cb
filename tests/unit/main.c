/* main.c — the one runner of every Check suite.
 *
 * Each tests/unit/test_NAME.c defines `Suite *suite_NAME(void)`; the build
 * lists them in suites.h. Arguments, if any, name the suites to run
 * (`unit-tests config log`). Built with -DONE_SUITE=NAME it runs that suite
 * alone, for quick work on one module.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef ONE_SUITE
Suite *ONE_SUITE(void);

#else
#define SUITE(name) Suite *suite_##name(void);
#include "suites.h"
#undef SUITE
#endif

struct entry {
    const char *name;
    Suite *(*make)(void);
};

static const struct entry suites[] = {
#ifdef ONE_SUITE
    {"one", ONE_SUITE},
#else
#define SUITE(name) {#name, suite_##name},
#include "suites.h"
#undef SUITE
#endif
    {NULL, NULL},
};

static int wanted(const char *name, int argc, char **argv)
{
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    SRunner *sr = NULL;
    for (const struct entry *e = suites; e->name; e++) {
        if (!wanted(e->name, argc, argv))
            continue;
        if (!sr)
            sr = srunner_create(e->make());
        else
            srunner_add_suite(sr, e->make());
    }
    if (!sr) {
        fprintf(stderr, "unit-tests: no suite matches\n");
        return 2;
    }
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
