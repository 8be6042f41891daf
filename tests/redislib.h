/* redislib - throwaway redis-server instances for the tests of weir's
 * Redis backends (test-rate-redis, test-throttle-redis): on a free
 * loopback port, in a directory of the test's, started as the test's own
 * child (its PID is the server's) and stopped by that PID only. */
#ifndef WEIR_TESTS_REDISLIB_H
#define WEIR_TESTS_REDISLIB_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* redis_server_installed - redis-server is in PATH (else: exit 77) */
bool redis_server_installed(void);
/* redis_free_port - a loopback TCP port nobody listens on right now */
int redis_free_port(void);
/* redis_admin - a plain hiredis connection to 127.0.0.1:port, AUTH sent
 * when password; NULL if none (caller frees with redisFree) */
redisContext *redis_admin(int port, const char *password);
/* redis_server_start - redis-server on 127.0.0.1:port with its files and
 * log in dir, requiring password when not NULL; returns once it answers
 * PING; exits the test (1) when it does not start */
pid_t redis_server_start(const char *dir, int port, const char *password);
/* redis_server_stop - signal *pid (unless 0), reap it, set it to 0 */
void redis_server_stop(pid_t *pid, int sig);
/* redis_test_cleanup - at exit: every server of pids (stopped ones too)
 * killed, and dir removed */
void redis_test_cleanup(const char *dir, pid_t *pids, size_t n);

/* Clocks for timing assertions */
long long test_mono_ms(void);
void test_sleep_ms(long long ms);

#endif
