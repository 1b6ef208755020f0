/*
 * The static route's Content-Type (examples/http/static_files.c): chosen from
 * the extension of the last path component, case-insensitively, with
 * application/octet-stream for anything unknown.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/static_files.h"

static const char *ctype(const char *rel)
{
    return http_static_content_type((const uint8_t *)rel, strlen(rel));
}

static void test_static_content_type_from_common_extensions(void **state)
{
    (void)state;
    static const struct {
        const char *name, *type;
    } cases[] = {
        {"index.html", "text/html; charset=utf-8"},
        {"style.css", "text/css; charset=utf-8"},
        {"app.js", "text/javascript; charset=utf-8"},
        {"data.json", "application/json"},
        {"a.txt", "text/plain; charset=utf-8"},
        {"logo.png", "image/png"},
        {"photo.jpg", "image/jpeg"},
        {"photo.jpeg", "image/jpeg"},
        {"anim.gif", "image/gif"},
        {"icon.svg", "image/svg+xml"},
        {"favicon.ico", "image/vnd.microsoft.icon"},
        {"mod.wasm", "application/wasm"},
        {"doc.pdf", "application/pdf"},
        {"sub/dir/page.html", "text/html; charset=utf-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_string_equal(ctype(cases[i].name), cases[i].type);
}

static void test_static_content_type_ignores_case(void **state)
{
    (void)state;
    assert_string_equal(ctype("INDEX.HTML"), "text/html; charset=utf-8");
    assert_string_equal(ctype("Photo.JpG"), "image/jpeg");
}

static void test_static_content_type_unknown_is_octet_stream(void **state)
{
    (void)state;
    static const char *const unknown[] = {
        "README",         /* no extension */
        "archive.tar.xz", /* not in the table */
        "dir.html/file",  /* the dot is in a directory, not the file */
        "file.",          /* empty extension */
        "x.htmlx",        /* a prefix of a known one does not count */
        "x.ht",           /* nor does a known one's prefix */
        "",
    };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        assert_string_equal(ctype(unknown[i]), "application/octet-stream");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_static_content_type_from_common_extensions),
        cmocka_unit_test(test_static_content_type_ignores_case),
        cmocka_unit_test(test_static_content_type_unknown_is_octet_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
