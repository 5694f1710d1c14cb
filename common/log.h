/* log.h — structured logging, one line per event:
 *
 *   level=info msg="lease granted" shard=data/a-000001.tar lease=7
 *
 * ldm_log(level, msg, kvfmt, ...) formats kvfmt like printf, with one rule
 * added: a %s conversion that directly follows '=' is a value, and is
 * quoted ("...", with \" \\ \n \t escaped) when it is empty or holds a space,
 * '"', '=', or a control character. msg is always quoted. Lines go to
 * stderr (journald adds the time) unless ldm_log_set_fd() says otherwise.
 * Thread-safe: each line is written with a single write(2).
 */
#ifndef LDM_LOG_H
#define LDM_LOG_H

enum ldm_log_level { LDM_LOG_DEBUG = 0, LDM_LOG_INFO, LDM_LOG_WARN, LDM_LOG_ERROR, LDM_LOG_OFF };

/* Lines below `level` are dropped. Default LDM_LOG_INFO. */
void ldm_log_set_level(int level);
int ldm_log_get_level(void);

/* "debug", "info", "warn"/"warning", "error", "off" -> level. Returns 0 or LDM_EINVAL. */
int ldm_log_parse_level(const char *name, int *level);
const char *ldm_log_level_name(int level);

/* Where lines go (default 2). */
void ldm_log_set_fd(int fd);

/* Format one line into buf (always NUL-terminated, truncated to size,
 * ending in '\n'). Returns the length written. Used by ldm_log and tests. */
int ldm_log_format(char *buf, int size, int level, const char *msg, const char *kvfmt, ...)
    __attribute__((format(printf, 5, 6)));

void ldm_log(int level, const char *msg, const char *kvfmt, ...) __attribute__((format(printf, 3, 4)));

#define LOG_DEBUG(msg, ...) ldm_log(LDM_LOG_DEBUG, msg, __VA_ARGS__)
#define LOG_INFO(msg, ...) ldm_log(LDM_LOG_INFO, msg, __VA_ARGS__)
#define LOG_WARN(msg, ...) ldm_log(LDM_LOG_WARN, msg, __VA_ARGS__)
#define LOG_ERROR(msg, ...) ldm_log(LDM_LOG_ERROR, msg, __VA_ARGS__)

#endif
