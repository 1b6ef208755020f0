/*
 * Request-head parser and chunked decoder (see parser.h for the contract).
 *
 * The head grammar accepted (RFC 9112, strict):
 *   *( CRLF ) method SP target SP "HTTP/" DIGIT "." DIGIT CRLF
 *   *( field-name ":" OWS field-value OWS CRLF ) CRLF
 * Every line ends in CRLF: a bare CR or a bare LF is a 400. A field line
 * starting with SP / HTAB (obsolete folding) is a 400, as is whitespace
 * between a field name and its colon, and any control character other
 * than HTAB in a value. Fields that frame the message are checked when
 * their line ends: Content-Length (digits only, at most once),
 * Transfer-Encoding (only "chunked", else 501), Host (at most once, and
 * uri-host [ ":" port ] of RFC 3986: reg-name, IPv4 or a bracketed IP literal),
 * Connection (close / keep-alive), Expect (only 100-continue, else 417).
 */
#include "parser.h"

#include <string.h>

/* ------------------------------------------------------------------------ */
/* Character classes                                                         */

/*
 * Character classes, one table (the parser's hot loops index it per byte):
 *   C_TCHAR  token characters (RFC 9110 5.6.2): methods, field names
 *   C_HOST   a reg-name's characters besides "%" (RFC 3986 unreserved and
 *            sub-delims): the Host check, which runs on every request (a
 *            strchr per character cost ~15% of the pipelined server's
 *            user-space instructions)
 */
#define C_TCHAR 1
#define C_HOST  2
#define C_BOTH  (C_TCHAR | C_HOST)
static const uint8_t g_class[256] = {
    /* punctuation in both classes */
    ['!'] = C_BOTH, ['$'] = C_BOTH, ['&'] = C_BOTH, ['\''] = C_BOTH, ['*'] = C_BOTH,
    ['+'] = C_BOTH, ['-'] = C_BOTH, ['.'] = C_BOTH, ['_'] = C_BOTH, ['~'] = C_BOTH,
    /* token only */
    ['#'] = C_TCHAR, ['%'] = C_TCHAR, ['^'] = C_TCHAR, ['`'] = C_TCHAR, ['|'] = C_TCHAR,
    /* host only */
    ['('] = C_HOST, [')'] = C_HOST, [','] = C_HOST, [';'] = C_HOST, ['='] = C_HOST,
    /* DIGIT and ALPHA: both */
    ['0'] = C_BOTH, ['1'] = C_BOTH, ['2'] = C_BOTH, ['3'] = C_BOTH, ['4'] = C_BOTH, ['5'] = C_BOTH,
    ['6'] = C_BOTH, ['7'] = C_BOTH, ['8'] = C_BOTH, ['9'] = C_BOTH,
    ['A'] = C_BOTH, ['B'] = C_BOTH, ['C'] = C_BOTH, ['D'] = C_BOTH, ['E'] = C_BOTH, ['F'] = C_BOTH,
    ['G'] = C_BOTH, ['H'] = C_BOTH, ['I'] = C_BOTH, ['J'] = C_BOTH, ['K'] = C_BOTH, ['L'] = C_BOTH,
    ['M'] = C_BOTH, ['N'] = C_BOTH, ['O'] = C_BOTH, ['P'] = C_BOTH, ['Q'] = C_BOTH, ['R'] = C_BOTH,
    ['S'] = C_BOTH, ['T'] = C_BOTH, ['U'] = C_BOTH, ['V'] = C_BOTH, ['W'] = C_BOTH, ['X'] = C_BOTH,
    ['Y'] = C_BOTH, ['Z'] = C_BOTH,
    ['a'] = C_BOTH, ['b'] = C_BOTH, ['c'] = C_BOTH, ['d'] = C_BOTH, ['e'] = C_BOTH, ['f'] = C_BOTH,
    ['g'] = C_BOTH, ['h'] = C_BOTH, ['i'] = C_BOTH, ['j'] = C_BOTH, ['k'] = C_BOTH, ['l'] = C_BOTH,
    ['m'] = C_BOTH, ['n'] = C_BOTH, ['o'] = C_BOTH, ['p'] = C_BOTH, ['q'] = C_BOTH, ['r'] = C_BOTH,
    ['s'] = C_BOTH, ['t'] = C_BOTH, ['u'] = C_BOTH, ['v'] = C_BOTH, ['w'] = C_BOTH, ['x'] = C_BOTH,
    ['y'] = C_BOTH, ['z'] = C_BOTH,
};

static int is_host_char(uint8_t c)
{
    return g_class[c] & C_HOST;
}

static int is_tchar(uint8_t c)
{
    return g_class[c] & C_TCHAR;
}

/* field-vchar / SP / HTAB (obs-text allowed): what a field value may hold. */
static int is_value_char(uint8_t c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static int ieq(const uint8_t *s, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (n != m)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (lower(s[i]) != (uint8_t)lit[i])
            return 0;
    }
    return 1;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (uint8_t)lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Head parser                                                               */

enum head_state {
    H_START = 0, /* before the request line: leading CRLFs are skipped */
    H_START_LF,  /* after a leading CR */
    H_METHOD,
    H_TARGET_START,
    H_TARGET,
    H_VERSION, /* "HTTP/x.y", vidx = position */
    H_LINE_LF, /* after the request line's CR */
    H_FIELD_START,
    H_NAME,
    H_OWS, /* after the colon, before the value */
    H_VALUE,
    H_FIELD_LF, /* after a field line's CR */
    H_END_LF,   /* after the CR of the empty line */
    H_DONE,
};

void http_parser_reset(http_parser *p)
{
    memset(p, 0, sizeof *p);
}

static http_method method_of(const uint8_t *s, size_t n)
{
    if (n == 3 && memcmp(s, "GET", 3) == 0)
        return HTTP_M_GET;
    if (n == 4 && memcmp(s, "HEAD", 4) == 0)
        return HTTP_M_HEAD;
    if (n == 4 && memcmp(s, "POST", 4) == 0)
        return HTTP_M_POST;
    return HTTP_M_OTHER;
}

/* Content-Length: 1*DIGIT, once. */
static int field_content_length(http_request *r, const uint8_t *v, size_t n)
{
    if ((r->flags & HTTP_F_HAS_CL) || n == 0)
        return 400;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return 400;
        if (x > (UINT64_MAX - 9) / 10)
            return 400;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    r->content_length = x;
    r->flags |= HTTP_F_HAS_CL;
    return 0;
}

/* Calls fn on each OWS-trimmed, non-empty element of a comma-separated list. */
static int each_element(http_request *r, const uint8_t *v, size_t n,
                        int (*fn)(http_request *, const uint8_t *, size_t))
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && v[j] != ',')
            j++;
        size_t a = i, b = j;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        if (b > a) {
            int rc = fn(r, v + a, b - a);
            if (rc != 0)
                return rc;
        }
        i = j + 1;
    }
    return 0;
}

/*
 * Host = uri-host [ ":" port ] (RFC 9112 3.2, RFC 3986 3.2.2): a reg-name
 * (unreserved, sub-delims, %XX; IPv4 addresses are reg-names too) or an
 * IP literal in brackets (hex digits, ":", "." and, for IPvFuture, the
 * reg-name characters), then optionally ":" and digits. Empty is allowed
 * (a target without authority). Returns 0 or 400.
 */
static int host_valid(const uint8_t *v, size_t n)
{
    size_t i = 0;
    if (n > 0 && v[0] == '[') {
        for (i = 1; i < n && v[i] != ']'; i++) {
            if (!is_host_char(v[i]) && v[i] != ':')
                return 400;
        }
        if (i == n || i == 1)
            return 400; /* no closing bracket, or "[]" */
        i++;
    } else {
        for (; i < n && v[i] != ':'; i++) {
            /* The common run (a name or IPv4), four bytes a step. */
            while (i + 4 <= n &&
                   (g_class[v[i]] & g_class[v[i + 1]] & g_class[v[i + 2]] & g_class[v[i + 3]] &
                    C_HOST))
                i += 4;
            while (i < n && is_host_char(v[i]))
                i++;
            if (i == n || v[i] == ':')
                break;
            if (v[i] == '%') {
                if (i + 2 >= n || hexval(v[i + 1]) < 0 || hexval(v[i + 2]) < 0)
                    return 400;
                i += 2;
            } else if (!is_host_char(v[i])) {
                return 400;
            }
        }
    }
    if (i == n)
        return 0;
    if (v[i] != ':')
        return 400; /* something after "]" */
    for (i++; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return 400;
    }
    return 0;
}

/* Transfer-Encoding element: only one "chunked" is understood. */
static int te_element(http_request *r, const uint8_t *v, size_t n)
{
    if (!ieq(v, n, "chunked"))
        return 501;
    if (r->flags & HTTP_F_CHUNKED)
        return 400; /* chunked applied twice */
    r->flags |= HTTP_F_CHUNKED;
    return 0;
}

static int conn_element(http_request *r, const uint8_t *v, size_t n)
{
    if (ieq(v, n, "close"))
        r->flags |= HTTP_F_CONN_CLOSE;
    else if (ieq(v, n, "keep-alive"))
        r->flags |= HTTP_F_CONN_KEEP;
    return 0;
}

/*
 * Is the field name s[0..n) the lower-case literal `lit` (letters and "-")?
 * Field names are tokens, so OR-ing 0x20 into each byte is an exact
 * case-insensitive compare here: among token characters only the two cases
 * of a letter map onto that lower-case letter, and only "-" onto "-"
 * (CR, the other byte that maps to it, is no token character).
 */
static int name_is(const uint8_t *s, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((uint8_t)(s[i] | 0x20) != (uint8_t)lit[i])
            return 0;
    }
    return 1;
}

/* A complete field line: interpret the fields that frame the message. */
static int field_done(http_parser *p, const uint8_t *msg)
{
    http_request *r = &p->req;
    const uint8_t *name = msg + p->mark;
    const uint8_t *v = msg + p->value_off;
    size_t n = p->value_end - p->value_off;

    switch (p->name_len) { /* one compare per field line, most lines none */
    case 4:
        if (!name_is(name, "host", 4))
            return 0;
        if (r->host_count++ > 0)
            return 400;
        return host_valid(v, n);
    case 6:
        if (!name_is(name, "expect", 6))
            return 0;
        if (!ieq(v, n, "100-continue"))
            return 417;
        r->flags |= HTTP_F_CONTINUE;
        return 0;
    case 10:
        if (!name_is(name, "connection", 10))
            return 0;
        return each_element(r, v, n, conn_element);
    case 14:
        if (!name_is(name, "content-length", 14))
            return 0;
        return field_content_length(r, v, n);
    case 17:
        if (!name_is(name, "transfer-encoding", 17))
            return 0;
        r->flags |= HTTP_F_HAS_TE;
        if (n == 0)
            return 400;
        return each_element(r, v, n, te_element);
    default:
        return 0;
    }
}

/* The head is complete: rules that need all fields. */
static int head_done(http_parser *p, const http_limits *lim)
{
    http_request *r = &p->req;
    r->head_len = p->pos;
    if (r->version_minor == 1 && r->host_count == 0)
        return 400;
    if (r->flags & HTTP_F_HAS_TE) {
        if (r->flags & HTTP_F_HAS_CL)
            return 400; /* request smuggling vector */
        if (r->version_minor == 0)
            return 400; /* HTTP/1.0 has no transfer codings */
        if (!(r->flags & HTTP_F_CHUNKED))
            return 400;
    }
    if ((r->flags & HTTP_F_HAS_CL) && r->content_length > lim->max_body)
        return 413;
    p->state = H_DONE;
    return HTTP_PARSE_DONE;
}

/* The version "HTTP/x.y" once its CR arrived. */
static int version_done(http_parser *p)
{
    if (p->major != 1)
        return 505;
    if (p->req.version_minor > 1)
        return 505;
    return 0;
}

/* One byte of the request line. Returns 0 to go on, or a status / DONE. */
static int line_byte(http_parser *p, const uint8_t *msg, uint8_t c)
{
    static const char proto[] = "HTTP/";
    switch (p->state) {
    case H_START: /* leading empty lines are ignored (RFC 9112 2.2) */
        if (c == '\r') {
            p->state = H_START_LF;
            return 0;
        }
        if (!is_tchar(c))
            return 400;
        p->line_start = p->mark = p->pos;
        p->state = H_METHOD;
        return 0;
    case H_START_LF:
        if (c != '\n')
            return 400;
        p->state = H_START;
        return 0;
    case H_METHOD:
        if (c == ' ') {
            p->req.method = (uint8_t)method_of(msg + p->mark, p->pos - p->mark);
            p->state = H_TARGET_START;
            return 0;
        }
        return is_tchar(c) ? 0 : 400;
    case H_TARGET_START:
    case H_TARGET:
        if (c == ' ' && p->state == H_TARGET) {
            p->req.target_len = p->pos - p->req.target_off;
            p->state = H_VERSION;
            p->vidx = 0;
            return 0;
        }
        if (c <= 0x20 || c >= 0x7f)
            return 400;
        if (p->state == H_TARGET_START) {
            p->req.target_off = p->pos;
            p->state = H_TARGET;
        }
        return 0;
    case H_VERSION:
        if (p->vidx < 5) {
            if (c != (uint8_t)proto[p->vidx])
                return 400;
        } else if (p->vidx == 5 || p->vidx == 7) {
            if (c < '0' || c > '9')
                return 400;
            if (p->vidx == 5)
                p->major = (uint8_t)(c - '0');
            else
                p->req.version_minor = (uint8_t)(c - '0');
        } else if (p->vidx == 6) {
            if (c != '.')
                return 400;
        } else {
            if (c != '\r')
                return 400;
            int rc = version_done(p);
            if (rc != 0)
                return rc;
            p->state = H_LINE_LF;
            return 0;
        }
        p->vidx++;
        return 0;
    case H_LINE_LF:
        if (c != '\n')
            return 400;
        p->state = H_FIELD_START;
        p->line_start = p->pos + 1; /* the header section starts after this LF */
        p->mark = p->line_start;
        return 0;
    default:
        return 400;
    }
}

/* One byte of the header section. */
static int field_byte(http_parser *p, const uint8_t *msg, const http_limits *lim, uint8_t c)
{
    switch (p->state) {
    case H_FIELD_START:
        if (c == '\r') {
            p->state = H_END_LF;
            return 0;
        }
        if (!is_tchar(c))
            return 400; /* SP / HTAB: obsolete line folding; ':' : empty name; else junk */
        if (p->req.nheaders >= lim->max_headers)
            return 431;
        p->mark = p->pos;
        p->state = H_NAME;
        return 0;
    case H_NAME:
        if (c == ':') {
            p->name_len = p->pos - p->mark;
            p->state = H_OWS;
            p->value_off = p->value_end = p->pos + 1;
            return 0;
        }
        return is_tchar(c) ? 0 : 400; /* incl. whitespace before the colon */
    case H_OWS:
        if (c == ' ' || c == '\t') {
            p->value_off = p->value_end = p->pos + 1;
            return 0;
        }
        p->state = H_VALUE;
        /* fall through */
    case H_VALUE:
        if (c == '\r') {
            p->state = H_FIELD_LF;
            return 0;
        }
        if (!is_value_char(c))
            return 400;
        if (c != ' ' && c != '\t')
            p->value_end = p->pos + 1;
        return 0;
    case H_FIELD_LF: {
        if (c != '\n')
            return 400; /* bare CR */
        p->req.nheaders++;
        int rc = field_done(p, msg);
        if (rc != 0)
            return rc;
        p->state = H_FIELD_START;
        return 0;
    }
    case H_END_LF:
        if (c != '\n')
            return 400;
        p->pos++; /* the LF is part of the head */
        return head_done(p, lim);
    default:
        return 400;
    }
}

/*
 * Fast path: inside a run of bytes that only continue the current token
 * (method, target, field name, field value), skip to the first byte that
 * needs the state machine, stopping where a length limit would fire so
 * that byte too goes through the per-byte checks. The result is the same
 * as feeding those bytes one at a time (the split tests and fuzz targets
 * check exactly that).
 */
static void skip_run(http_parser *p, const uint8_t *msg, size_t len, const http_limits *lim)
{
    size_t pos = p->pos, end;
    if (p->state < H_FIELD_START) {
        if (p->state != H_METHOD && p->state != H_TARGET)
            return;
        end = p->line_start + lim->max_line; /* 414 fires at pos - line_start >= max_line */
    } else {
        if (p->state != H_NAME && p->state != H_VALUE)
            return;
        end = p->line_start + lim->max_head; /* 431 likewise */
    }
    if (end > len)
        end = len;
    switch (p->state) {
    case H_METHOD:
    case H_NAME:
        while (pos < end && is_tchar(msg[pos]))
            pos++;
        break;
    case H_TARGET:
        while (pos < end && msg[pos] > 0x20 && msg[pos] < 0x7f)
            pos++;
        break;
    default: { /* H_VALUE: stop at CR and at anything that is not a value byte */
        size_t last = p->value_end;
        while (pos < end) {
            uint8_t c = msg[pos];
            if (c == '\r' || !is_value_char(c))
                break;
            pos++;
            if (c != ' ' && c != '\t')
                last = pos;
        }
        p->value_end = last;
        break;
    }
    }
    p->pos = pos;
}

/*
 * Whole-head fast path. A request head usually arrives whole (keep-alive and
 * pipelined clients send it in one write), so for a fresh parser the common
 * grammar is checked in one straight pass over the bytes: local offsets
 * instead of a state per byte, token runs four bytes a step through the
 * class table, target and value runs eight bytes a step (SWAR: one 64-bit
 * word tested for "any byte outside the allowed range" with the classic
 * has-less / has-more tricks; the exact byte is then found one at a time).
 *
 * It accepts only what it can decide exactly as the state machine would:
 * no leading empty lines, "HTTP/1.0" or "HTTP/1.1", every limit kept with a
 * margin it checks, and the whole head present. Anything else (an error the
 * byte loop would report, an incomplete head, a limit reached) returns
 * FAST_FALLBACK and the caller runs the state machine from byte 0, so every
 * error status, and every result for a head split at any byte, stays the
 * state machine's (the split tests feed heads both whole and in pieces).
 * The fields that frame the message go through the same field_done() and
 * head_done(), so their rules exist once.
 */
#define FAST_FALLBACK (-1)
#define SWAR_ONES     0x0101010101010101ull
#define SWAR_HIGHS    0x8080808080808080ull

/* 8 bytes as a little-endian word (one load on little-endian machines). */
static uint64_t load_word_le(const uint8_t *s)
{
    uint64_t w;
    memcpy(&w, s, sizeof w);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

/* Nonzero iff some byte of w is below n (n <= 128). */
static uint64_t swar_less(uint64_t w, uint8_t n)
{
    return (w - SWAR_ONES * n) & ~w & SWAR_HIGHS;
}

/* Nonzero iff some byte of w is above n (n <= 127). */
static uint64_t swar_more(uint64_t w, uint8_t n)
{
    return ((w + SWAR_ONES * (uint64_t)(127 - n)) | w) & SWAR_HIGHS;
}

/* Nonzero iff some byte of w equals b. */
static uint64_t swar_eq(uint64_t w, uint8_t b)
{
    return swar_less(w ^ (SWAR_ONES * b), 1);
}

/* End of the token run starting at i (field names, methods). */
static size_t tchar_run(const uint8_t *msg, size_t i, size_t len)
{
    while (i + 4 <= len &&
           (g_class[msg[i]] & g_class[msg[i + 1]] & g_class[msg[i + 2]] & g_class[msg[i + 3]] &
            C_TCHAR))
        i += 4;
    while (i < len && is_tchar(msg[i]))
        i++;
    return i;
}

/*
 * The next 8 bytes at msg[i..len) as a word, bytes past len read as 0 (a
 * byte every run stops at). Little-endian order: byte k of the input is
 * bits 8k..8k+7, so the first flagged byte is the lowest flagged bit.
 * Reads only msg[0..len) (i < len).
 */
static uint64_t load_word_padded(const uint8_t *msg, size_t i, size_t len)
{
    size_t k = len - i;
    if (k >= 8)
        return load_word_le(msg + i);
    if (len >= 8) /* the last 8 bytes of msg[0..len), shifted down: one load */
        return load_word_le(msg + len - 8) >> (8 * (8 - k)); /* callers: k >= 1 */
    uint64_t w = 0;
    for (size_t j = 0; j < k; j++)
        w |= (uint64_t)msg[i + j] << (8 * j);
    return w;
}

/* Index (0..7) of the first flagged byte of a nonzero has-less/has-more mask:
 * the lowest flag of those masks is exact (a borrow or carry can only add
 * false flags above a true one). */
static size_t first_flagged(uint64_t mask)
{
    return (size_t)__builtin_ctzll(mask) / 8;
}

/* End of the run of request-target bytes (VCHAR: 0x21..0x7e) starting at i. */
static size_t target_run(const uint8_t *msg, size_t i, size_t len)
{
    while (i < len) {
        uint64_t w = load_word_padded(msg, i, len);
        uint64_t m = swar_less(w, 0x21) | swar_more(w, 0x7e);
        if (m != 0) {
            i += first_flagged(m);
            return i < len ? i : len;
        }
        i += 8;
    }
    return len;
}

/* First byte at or after i that is not SP / VCHAR / obs-text (CR, HTAB, other CTLs, DEL). */
static size_t value_run(const uint8_t *msg, size_t i, size_t len)
{
    while (i < len) {
        uint64_t w = load_word_padded(msg, i, len);
        uint64_t m = swar_less(w, 0x20) | swar_eq(w, 0x7f);
        if (m != 0) {
            i += first_flagged(m);
            return i < len ? i : len;
        }
        i += 8;
    }
    return len;
}

static int parse_head_fast(http_parser *p, const uint8_t *msg, size_t len, const http_limits *lim)
{
    http_request *r = &p->req;
    /* request line: method SP target SP "HTTP/1." ("0" / "1") CRLF */
    size_t i;
    if (len >= 4 && memcmp(msg, "GET ", 4) == 0) { /* the usual method: one compare */
        i = 3;
        r->method = HTTP_M_GET;
    } else {
        i = tchar_run(msg, 0, len);
        if (i == 0 || i >= len || msg[i] != ' ')
            return FAST_FALLBACK;
        r->method = (uint8_t)method_of(msg, i);
    }
    size_t t = i + 1;
    i = target_run(msg, t, len);
    if (i == t || i >= len || msg[i] != ' ')
        return FAST_FALLBACK;
    r->target_off = (uint32_t)t;
    r->target_len = (uint32_t)(i - t);
    i++;
    if (len - i < 10 || memcmp(msg + i, "HTTP/1.", 7) != 0 ||
        (msg[i + 7] != '0' && msg[i + 7] != '1') || msg[i + 8] != '\r' || msg[i + 9] != '\n')
        return FAST_FALLBACK;
    if (i + 8 > lim->max_line) /* the CR at i + 8: 414 fires at a byte beyond max_line */
        return FAST_FALLBACK;
    p->major = 1;
    r->version_minor = (uint8_t)(msg[i + 7] - '0');
    i += 10;
    size_t section = i; /* the header section: 431 fires at a byte max_head past it */
    size_t limit = section + lim->max_head;
    p->line_start = (uint32_t)section;
    for (;;) {
        if (i >= len || i >= limit)
            return FAST_FALLBACK;
        if (msg[i] == '\r') { /* the empty line */
            if (i + 1 >= len || i + 1 >= limit || msg[i + 1] != '\n')
                return FAST_FALLBACK;
            p->pos = (uint32_t)(i + 2);
            return head_done(p, lim);
        }
        if (r->nheaders >= lim->max_headers)
            return FAST_FALLBACK;
        size_t name = i;
        i = tchar_run(msg, i, len);
        if (i == name || i >= len || msg[i] != ':')
            return FAST_FALLBACK;
        p->mark = (uint32_t)name;
        p->name_len = (uint32_t)(i - name);
        i++;
        while (i < len && (msg[i] == ' ' || msg[i] == '\t'))
            i++;
        size_t voff = i;
        for (;;) {
            i = value_run(msg, i, len);
            if (i < len && msg[i] == '\t') {
                i++;
                continue;
            }
            break;
        }
        if (i + 1 >= len || msg[i] != '\r' || msg[i + 1] != '\n' || i + 1 >= limit)
            return FAST_FALLBACK;
        size_t vend = i;
        while (vend > voff && (msg[vend - 1] == ' ' || msg[vend - 1] == '\t'))
            vend--;
        p->value_off = (uint32_t)voff;
        p->value_end = (uint32_t)vend;
        r->nheaders++;
        int rc = field_done(p, msg);
        if (rc != 0)
            return rc;
        i += 2;
    }
}

int http_parse_head(http_parser *p, const uint8_t *msg, size_t len, const http_limits *lim)
{
    if (p->state == H_DONE)
        return HTTP_PARSE_DONE;
    if (p->pos == 0 && p->state == H_START) {
        int rc = parse_head_fast(p, msg, len, lim);
        if (rc != FAST_FALLBACK)
            return rc;
        http_parser_reset(p);
    }
    while (p->pos < len) {
        skip_run(p, msg, len, lim);
        if (p->pos >= len)
            break;
        uint8_t c = msg[p->pos];
        int rc;
        if (p->state < H_FIELD_START) {
            /* request line (CRLF excluded); leading empty lines share its limit */
            if (p->state <= H_START_LF) {
                if (p->pos >= lim->max_line)
                    return 400;
            } else if (c != '\r' && p->state != H_LINE_LF &&
                       p->pos - p->line_start >= lim->max_line) {
                return 414;
            }
            rc = line_byte(p, msg, c);
        } else {
            if (p->pos - p->line_start >= lim->max_head)
                return 431;
            rc = field_byte(p, msg, lim, c);
        }
        if (rc != 0)
            return rc;
        p->pos++;
    }
    return HTTP_PARSE_MORE;
}

/* ------------------------------------------------------------------------ */
/* Chunked decoder                                                           */

enum chunk_state {
    C_SIZE = 0,   /* first hex digit of a chunk size */
    C_SIZE_MORE,  /* more hex digits, or BWS / ';' / CR */
    C_SIZE_WS,    /* BWS after the size: ';' or CR must follow */
    C_EXT,        /* chunk extension: ignored up to CR */
    C_SIZE_LF,    /* after the size line's CR */
    C_DATA,       /* `remaining` data bytes */
    C_DATA_CR,    /* the CR after the data */
    C_DATA_LF,    /* the LF after the data */
    C_TRAILER,    /* start of a trailer line (or the final CRLF) */
    C_TRAILER_LN, /* inside a trailer line */
    C_TRAILER_LF, /* after a trailer line's CR */
    C_END_LF,     /* after the final CR */
    C_DONE,
};

/* Longest size line (digits + extension) and trailer section accepted. */
#define CHUNK_LINE_MAX    4096
#define CHUNK_TRAILER_MAX 16384
#define CHUNK_DIGITS_MAX  15 /* 2^60: no overflow, far beyond any body limit */

void http_chunked_reset(http_chunked *c)
{
    memset(c, 0, sizeof *c);
}

/* One framing byte. Returns 0, DONE, or an error status. */
static int chunk_byte(http_chunked *c, uint8_t b, uint64_t max_body)
{
    int h;
    if (c->state <= C_SIZE_LF && ++c->line > CHUNK_LINE_MAX)
        return 400;
    switch (c->state) {
    case C_SIZE:
        if ((h = hexval(b)) < 0)
            return 400;
        c->remaining = (uint64_t)h;
        c->digits = 1;
        c->state = C_SIZE_MORE;
        return 0;
    case C_SIZE_MORE:
        if ((h = hexval(b)) >= 0) {
            if (++c->digits > CHUNK_DIGITS_MAX)
                return 400;
            c->remaining = c->remaining * 16 + (uint64_t)h;
            return 0;
        }
        /* fall through */
    case C_SIZE_WS:
        if (b == ' ' || b == '\t') {
            c->state = C_SIZE_WS;
            return 0;
        }
        if (b == ';') {
            c->state = C_EXT;
            return 0;
        }
        if (b != '\r')
            return 400;
        c->state = C_SIZE_LF;
        return 0;
    case C_EXT:
        if (b == '\r') {
            c->state = C_SIZE_LF;
            return 0;
        }
        return is_value_char(b) ? 0 : 400;
    case C_SIZE_LF:
        if (b != '\n')
            return 400;
        c->line = 0;
        if (c->remaining > max_body - c->total)
            return 413;
        c->state = c->remaining == 0 ? C_TRAILER : C_DATA;
        return 0;
    case C_DATA_CR:
        if (b != '\r')
            return 400;
        c->state = C_DATA_LF;
        return 0;
    case C_DATA_LF:
        if (b != '\n')
            return 400;
        c->state = C_SIZE;
        return 0;
    default:
        break;
    }
    /* trailer section: field lines, ignored, then CRLF */
    if (++c->trailer > CHUNK_TRAILER_MAX)
        return 400;
    switch (c->state) {
    case C_TRAILER:
        if (b == '\r') {
            c->state = C_END_LF;
            return 0;
        }
        if (!is_tchar(b))
            return 400; /* obs-fold or junk */
        c->state = C_TRAILER_LN;
        return 0;
    case C_TRAILER_LN:
        if (b == '\r') {
            c->state = C_TRAILER_LF;
            return 0;
        }
        return is_value_char(b) ? 0 : 400;
    case C_TRAILER_LF:
        if (b != '\n')
            return 400;
        c->state = C_TRAILER;
        return 0;
    case C_END_LF:
        if (b != '\n')
            return 400;
        c->state = C_DONE;
        return HTTP_CHUNK_DONE;
    default:
        return 400;
    }
}

int http_chunked_decode(http_chunked *c, const uint8_t *in, size_t len, uint64_t max_body,
                        size_t *consumed, size_t *data_off, size_t *data_len)
{
    size_t i = 0;
    if (c->state == C_DONE) {
        *consumed = 0;
        return HTTP_CHUNK_DONE;
    }
    while (i < len) {
        if (c->state == C_DATA) {
            size_t n = len - i;
            if ((uint64_t)n > c->remaining)
                n = (size_t)c->remaining;
            c->remaining -= n;
            c->total += n;
            if (c->remaining == 0)
                c->state = C_DATA_CR;
            *data_off = i;
            *data_len = n;
            *consumed = i + n;
            return HTTP_CHUNK_DATA;
        }
        int rc = chunk_byte(c, in[i], max_body);
        i++;
        if (rc == HTTP_CHUNK_DONE) {
            *consumed = i;
            return HTTP_CHUNK_DONE;
        }
        if (rc != 0)
            return rc;
    }
    *consumed = len;
    return HTTP_CHUNK_MORE;
}

const char *http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 417:
        return "Expectation Failed";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}
