/* tfevents.h — TensorBoard event files written by trainerd (rank 0).
 *
 * A file OUTPUT/events.out.tfevents.<unix time>.<hostname> holds TFRecord
 * records (little-endian uint64 length, masked CRC32C of those 8 bytes,
 * the data, masked CRC32C of the data; mask = ((crc >> 15) | (crc << 17))
 * + 0xa282ead8). Each record is an Event protobuf: wall_time (double,
 * field 1), step (int64, field 2), and either file_version "brain.Event:2"
 * (string, field 3; the first record only) or a summary (field 5) with one
 * Summary.Value {tag (string, field 1), simple_value (float, field 2)}.
 * Every record is written with one write(2) as soon as it is made, so a
 * reader (TensorBoard) sees it at once and a crash loses at most the
 * record being written.
 */
#ifndef LDM_TRAINERD_TFEVENTS_H
#define LDM_TRAINERD_TFEVENTS_H

#include <stddef.h>
#include <stdint.h>

#define TD_TFEVENTS_VERSION "brain.Event:2"

struct td_tfevents;

/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78) of n bytes;
 * td_crc32c("123456789", 9) == 0xE3069283. */
uint32_t td_crc32c(const void *data, size_t n);
/* The masked form TFRecord stores. */
uint32_t td_crc32c_mask(uint32_t crc);

/* Create dir/events.out.tfevents.<unix time>.<hostname> (appended to when it
 * exists) and write the file_version record. *out is owned by the caller
 * (td_tfevents_close). Errors: LDM_EIO (the file), LDM_ENOMEM. */
int td_tfevents_open(const char *dir, struct td_tfevents **out);
/* The file's path (valid until close). */
const char *td_tfevents_path(const struct td_tfevents *w);
/* Append one scalar event (tag, value at step; wall_time in Unix seconds).
 * Errors: LDM_EINVAL (empty or over-long tag), LDM_EIO (the write). */
int td_tfevents_scalar(struct td_tfevents *w, const char *tag, int64_t step, double wall_time,
                       float value);
/* Close the file and free *w; NULL is fine. */
void td_tfevents_close(struct td_tfevents **w);

/* Encode one Event (file_version when tag is NULL, else a scalar summary)
 * as a full TFRecord into buf; *len gets its size. Errors: LDM_ERANGE when
 * size is too small, LDM_EINVAL for an over-long tag. */
int td_tfevents_encode(const char *tag, int64_t step, double wall_time, float value,
                       uint8_t *buf, size_t size, size_t *len);

#endif
