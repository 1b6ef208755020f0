/*
 * Static files for the http_server example: maps a request path under
 * /static/ to a regular file under the root directory, with no way out of
 * the root (see static_files.c for the rules).
 */
#ifndef HTTP_STATIC_FILES_H
#define HTTP_STATIC_FILES_H
#include <stddef.h>
#include <stdint.h>

/**
 * Opens the file named by `rel` (the target after "/static/", query
 * stripped, still percent-encoded; not NUL-terminated) under the directory
 * `root_fd`. On success returns 200 with *fd_out (O_RDONLY, the caller
 * closes it) and *size_out. Otherwise an HTTP status: 400 (a "." or ".."
 * component, an encoded NUL or '/'), 404 (missing, not a regular file, a
 * symbolic link anywhere on the way, no root configured), 403 (no
 * permission), 503 (out of fds or memory: the caller adds Retry-After), 500
 * (another I/O error).
 */
int http_static_open(int root_fd, const uint8_t *rel, size_t len, int *fd_out, uint64_t *size_out);

/**
 * The Content-Type for the file named by `rel` (as for http_static_open),
 * from the extension of its last component, case-insensitive: html, css,
 * js, json, txt, svg, png, jpg, gif, ico, wasm, pdf, fonts, ... (text types
 * with "; charset=utf-8"); "application/octet-stream" for anything else.
 * A static string.
 */
const char *http_static_content_type(const uint8_t *rel, size_t len);

#endif
