/*
 * A test file's temporary directory (header-only, POSIX and the Windows test
 * shim's ftw.h): `g_dir`, made under /tmp from a prefix by
 * support_tmpdir_make(), removed with everything in it by
 * support_tmpdir_remove(); path_in() names a file in it. Each file that
 * includes this header has its own. Include after support.h (cmocka).
 */
#ifndef ASYNCIO_TEST_TMPDIR_H
#define ASYNCIO_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char g_dir[64];

static inline int support_tmpdir_rm_entry(const char *p, const struct stat *sb, int flag,
                                          struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* Makes g_dir = "/tmp/<prefix>XXXXXX"; fails the test when it cannot. */
static inline void support_tmpdir_make(const char *prefix)
{
    int n = snprintf(g_dir, sizeof g_dir, "/tmp/%sXXXXXX", prefix);
    assert_true(n > 0 && (size_t)n < sizeof g_dir);
    assert_non_null(mkdtemp(g_dir));
}

/* Removes g_dir and everything under it (depth first, symlinks not followed). */
static inline void support_tmpdir_remove(void)
{
    nftw(g_dir, support_tmpdir_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* "<g_dir>/<name>" in buf (256 bytes). */
static inline const char *path_in(char *buf, const char *name)
{
    snprintf(buf, 256, "%s/%s", g_dir, name);
    return buf;
}

#endif
