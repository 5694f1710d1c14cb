/* goldimg.h — helpers for the image tests: run the PIL golden script, read PPM/PGM, compare. */
#ifndef LDM_GOLDIMG_H
#define LDM_GOLDIMG_H

#include <stddef.h>

#include "image.h"

/* The interpreter with Debian's python3-pil, python3-numpy and python3-torchvision. */
#define GI_PYTHON "/usr/bin/python3"
#define GI_SCRIPT "tests/golden/pil_resize.py"

/* Run `GI_PYTHON GI_SCRIPT mode dir` (from the repository root); on failure
 * abort the test with the script's stderr (a missing interpreter or module
 * is a failure with instructions, never a skip). */
void gi_run_golden(const char *mode, const char *dir);

/* The whole of file `path` (malloc'd, with a '\0' after its *len bytes; the
 * caller frees it); aborts on error. */
void *gi_read_file(const char *path, size_t *len);

/* Read a binary PPM (P6, c = 3) or PGM (P5, c = 1) into *im; aborts on error. */
void gi_read_pnm(const char *path, struct ldm_image *im);

/* The lines of dir/cases.txt (a NULL-terminated array; free with gi_free_lines). */
char **gi_read_lines(const char *dir, const char *name);
void gi_free_lines(char **lines);

/* Compare got with want sample by sample: print the first mismatches (up to
 * 6) and the largest error to stderr under `what`; return the number of
 * differing samples (or -1 when the sizes differ), and the largest absolute
 * error in *maxerr and the sum of absolute errors in *sumerr (either may be
 * NULL). */
long gi_compare(const char *what, const struct ldm_image *got, const struct ldm_image *want,
                int *maxerr, double *sumerr);

#endif
