/*
 * TEST-ONLY (Windows): nftw() for the tests' temporary-directory clean-up: a depth-first
 * walk with FindFirstFileA that calls fn on every entry, children before their directory
 * when FTW_DEPTH is set (the only order the tests use). Links are not followed.
 */
#ifndef COMPAT_FTW_H
#define COMPAT_FTW_H

#include <stdio.h>
#include <string.h>

struct FTW {
    int base;
    int level;
};

enum { FTW_F = 0, FTW_D = 1, FTW_DNR = 2, FTW_NS = 3, FTW_SL = 4, FTW_DP = 5 };
#define FTW_PHYS  1
#define FTW_MOUNT 2
#define FTW_DEPTH 8

typedef int (*compat_ftw_fn)(const char *, const struct stat *, int, struct FTW *);

static inline int compat_nftw_at(const char *path, compat_ftw_fn fn, int flags, int level)
{
    struct stat st;
    struct FTW f = {0, level};
    const char *slash = strrchr(path, '/'), *bslash = strrchr(path, '\\');
    const char *last = slash > bslash ? slash : bslash;
    f.base = last != NULL ? (int)(last - path + 1) : 0;
    if (stat(path, &st) != 0)
        return fn(path, &st, FTW_NS, &f);
    DWORD a = GetFileAttributesA(path);
    bool dir = (a & FILE_ATTRIBUTE_DIRECTORY) != 0 && (a & FILE_ATTRIBUTE_REPARSE_POINT) == 0;
    if (!dir)
        return fn(path, &st, FTW_F, &f);
    int rc = (flags & FTW_DEPTH) ? 0 : fn(path, &st, FTW_D, &f);
    char pattern[MAX_PATH + 4];
    snprintf(pattern, sizeof pattern, "%s\\*", path);
    WIN32_FIND_DATAA e;
    HANDLE h = FindFirstFileA(pattern, &e);
    if (h != INVALID_HANDLE_VALUE) {
        do {
            if (strcmp(e.cFileName, ".") == 0 || strcmp(e.cFileName, "..") == 0)
                continue;
            char child[MAX_PATH + 4];
            snprintf(child, sizeof child, "%s/%s", path, e.cFileName);
            rc = compat_nftw_at(child, fn, flags, level + 1);
        } while (rc == 0 && FindNextFileA(h, &e));
        FindClose(h);
    }
    if (rc == 0 && (flags & FTW_DEPTH))
        rc = fn(path, &st, FTW_DP, &f);
    return rc;
}

static inline int nftw(const char *path, compat_ftw_fn fn, int nopenfd, int flags)
{
    (void)nopenfd;
    return compat_nftw_at(path, fn, flags, 0);
}

#endif
