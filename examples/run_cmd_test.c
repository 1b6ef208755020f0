/*
 * End-to-end test of examples/run_cmd: runs it through popen(3) with a
 * scenario's command line and checks its output lines and exit status.
 *
 *   run_cmd_test BUILD_DIR SCENARIO
 *
 * Scenarios: lines (stdout and stderr streamed, exit code passed on),
 * timeout (SIGTERM at the deadline, exit 124, the child reaped), grace (a
 * child ignoring SIGTERM gets SIGKILL after the grace period), missing (an
 * exec error is reported as such, exit 127, no child ever ran), bad_flags.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static char g_out[65536];

/* Runs `run_cmd ARGS 2>&1`; returns its exit status (-1 if it did not exit normally). */
static int run(const char *dir, const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s/run_cmd' %s 2>&1", dir, args);
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(g_out, 1, sizeof g_out - 1, f);
    g_out[n] = '\0';
    int st = pclose(f);
    printf("$ run_cmd %s\n%s", args, g_out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int g_failed;

static void expect(int ok, const char *what)
{
    if (!ok) {
        printf("FAILED: %s\n", what);
        g_failed = 1;
    }
}

static int has_line(const char *line)
{
    size_t len = strlen(line);
    for (const char *p = g_out; (p = strstr(p, line)) != NULL; p++)
        if ((p == g_out || p[-1] == '\n') && p[len] == '\n')
            return 1;
    return 0;
}

/* The child's pid from "started pid N" is gone: run_cmd reaped it (no zombie left). */
static void expect_child_reaped(void)
{
    const char *s = strstr(g_out, "started pid ");
    expect(s != NULL, "a started pid line");
    if (s == NULL)
        return;
    int pid = atoi(s + 12);
    expect(pid > 0 && kill(pid, 0) < 0 && errno == ESRCH, "the child no longer exists");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: run_cmd_test BUILD_DIR SCENARIO\n");
        return 2;
    }
    const char *dir = argv[1], *sc = argv[2];
    if (strcmp(sc, "lines") == 0) {
        int st = run(dir, "-- /bin/sh -c 'echo one; echo two >&2; echo three; exit 3'");
        expect(st == 3, "exit status 3 passed on");
        expect(has_line("out: one") && has_line("out: three"), "stdout lines");
        expect(has_line("err: two"), "stderr line");
        expect(has_line("exit: code 3"), "exit line");
        expect(strstr(g_out, "out: one\n") < strstr(g_out, "out: three\n"), "lines in order");
        expect_child_reaped();
    } else if (strcmp(sc, "timeout") == 0) {
        int st = run(dir, "--timeout-ms 200 -- /bin/sh -c 'echo ready; exec sleep 100'");
        expect(st == 124, "exit status 124 on timeout");
        expect(has_line("out: ready"), "output before the timeout streamed");
        expect(has_line("timeout: SIGTERM"), "SIGTERM sent");
        expect(!has_line("timeout: SIGKILL"), "no SIGKILL needed");
        expect(has_line("exit: signal 15"), "killed by SIGTERM");
        expect_child_reaped();
    } else if (strcmp(sc, "grace") == 0) {
        int st = run(dir, "--timeout-ms 200 --grace-ms 200 -- "
                          "/bin/sh -c 'trap \"\" TERM; echo ready; exec sleep 100'");
        expect(st == 124, "exit status 124 on timeout");
        expect(has_line("timeout: SIGTERM") && has_line("timeout: SIGKILL"), "TERM then KILL");
        expect(has_line("exit: signal 9"), "killed by SIGKILL");
        expect_child_reaped();
    } else if (strcmp(sc, "missing") == 0) {
        int st = run(dir, "-- /nonexistent/asyncio/program");
        expect(st == 127, "exit status 127");
        expect(strstr(g_out, "cannot run /nonexistent/asyncio/program") != NULL, "spawn error");
        expect(strstr(g_out, "started pid") == NULL && strstr(g_out, "exit:") == NULL,
               "no child ran");
    } else if (strcmp(sc, "bad_flags") == 0) {
        expect(run(dir, "--timeout-ms x -- true") == 2, "bad number refused");
        expect(run(dir, "--timeout-ms 5") == 2, "no command refused");
        expect(run(dir, "--frob 1 -- true") == 2, "unknown flag refused");
    } else {
        fprintf(stderr, "unknown scenario %s\n", sc);
        return 2;
    }
    return g_failed;
}
