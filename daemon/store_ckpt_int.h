/* store_ckpt_int.h: what writing a checkpoint (store_checkpoint.c) and
 * reading one back (store_restore.c) share: the file's format, its
 * checksum and a few file helpers. Inside the store only.
 *
 * The file: the copy's LMDB pages, then a trailer of CKPT_TRAILER bytes
 * ("FNLDCKP2", u64 BE seq, u64 BE length of the LMDB data, u64 BE XXH3-64
 * of that data). It is written as checkpoints/ckpt.tmp, fsync'd, renamed
 * to ckpt-<seq, 20 digits>.mdb and the directory fsync'd: a name of that
 * form is a complete file unless the disk itself lost it, which the
 * trailer (length and checksum) tells before LMDB maps a page. XXH3
 * (libxxhash) hashes at memory speed, where zlib's CRC-32 took 2.9 s of
 * CPU for a 2.6 GiB checkpoint at start-up; checkpoints written before it
 * ("FNLDCKP1": u32 BE CRC-32, 4 zero bytes) are still verified. */
#ifndef FUNNELD_STORE_CKPT_INT_H
#define FUNNELD_STORE_CKPT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <lmdb.h>
#include <xxhash.h>
#include <zlib.h>

#define CKPT_TRAILER 32
#define CKPT_MAGIC "FNLDCKP2"     /* XXH3-64 */
#define CKPT_MAGIC_CRC "FNLDCKP1" /* CRC-32, read only */
#define CKPT_CHUNK (4u << 20)     /* read back, verified or copied at a time */

/* A running checksum of a checkpoint's data: XXH3-64, or (crc, for
 * checkpoints of the first format) zlib's CRC-32. */
typedef struct {
    bool crc;
    uLong c;
    XXH3_state_t *x;
} ckpt_sum_t;

void ckpt_sum_init(ckpt_sum_t *s, bool crc);
void ckpt_sum_add(ckpt_sum_t *s, const unsigned char *p, size_t n);
/* The checksum; frees s. */
uint64_t ckpt_sum_end(ckpt_sum_t *s);

/* The checkpoints' directory of a state directory (or a partition's
 * checkpoint root). */
void ckpt_dir(const char *state_dir, char *out, size_t cap);

/* fsync a directory, so that a rename in it is durable. 0 or -1. */
int ckpt_fsync_dir(const char *path);

/* Open the checkpoint (or data.mdb) at path read-only, without a lock
 * file, with a read transaction. Returns 0, or an LMDB error (nothing left
 * open). ckpt_close ends both; NULLs are skipped. */
int ckpt_open(const char *path, MDB_env **env, MDB_txn **txn);
void ckpt_close(MDB_env **env, MDB_txn **txn);

/* Open the LMDB file at path (a checkpoint, or a restored data.mdb)
 * read-only, without a lock file, and read its schema and applied
 * sequence. Returns 0, or an LMDB error. */
int ckpt_read_meta(const char *path, uint64_t *schema, uint64_t *applied);

/* pwrite all n bytes at off (EINTR retried). 0, or -1 with errno. */
int ckpt_write_full(int fd, const unsigned char *buf, size_t n, uint64_t off);

#endif
