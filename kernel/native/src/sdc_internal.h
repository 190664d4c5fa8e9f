/* Internal declarations shared by the kernel service's translation units. */
#ifndef SDC_INTERNAL_H
#define SDC_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include "sdc_kernel.h"

#define SDC_HANDLE_ALIVE 0x53444348u /* marks a live handle; cleared on close */
#define SDC_LABEL_BYTES SDC_VERSION_LABEL_BYTES
#define SDC_SANDBOX_PATH_MAX 3072u   /* leaves room for "/versions/<label>.part" under PATH_MAX */
#define SDC_PROVISION_BODY_BYTES SDC_PROVISION_REQUEST_ROTATION_SIGNATURE_OFFSET /* id, count, keys */
#define SDC_SEQ_WORDS ((int)(SDC_COMMAND_REPLAY_WINDOW / 64u))

typedef struct sdc_update_state {
  char current[SDC_LABEL_BYTES];  /* NUL-terminated labels; "" means none */
  char previous[SDC_LABEL_BYTES];
  char staged[SDC_LABEL_BYTES];
  uint32_t commits;
  uint32_t rollbacks;
  uint32_t stage_failures;
  uint64_t last_commit_unix_ms;
  uint32_t commit_failures;
  uint32_t confirms;
  uint32_t watchdog_rollbacks;
  /* The commit watchdog: armed after a COMMIT with a window until CONFIRM, ROLLBACK or expiry.
     Deadline on CLOCK_MONOTONIC; persisted as <sandbox>/watchdog (label + window) for a reopen. */
  int watchdog_armed;
  uint32_t watchdog_window_ms;
  uint64_t watchdog_deadline_ms;
} sdc_update_state;

typedef struct sdc_handle {
  uint32_t alive;
  uint32_t flags;
  pthread_mutex_t lock;
  EVP_PKEY* agent_key;    /* verifies requests */
  EVP_PKEY* service_key;  /* signs responses */
  uint8_t service_public_key[32];
  char sandbox[SDC_SANDBOX_PATH_MAX];
  int lock_screen_supported;
  uint64_t last_counter;
  uint64_t requests_accepted;
  uint64_t requests_refused;
  sdc_update_state update;
  /* Control-plane command authorization (sdc_command.c); no keys means unprovisioned. */
  EVP_PKEY* command_keys[SDC_COMMAND_KEYS_MAX];
  uint32_t command_key_count;
  char device_id[65];
  uint8_t provision_body[SDC_PROVISION_BODY_BYTES];
  uint64_t seq_highest;
  uint64_t seq_bits[SDC_COMMAND_REPLAY_WINDOW / 64u];
} sdc_handle;

/* Little-endian field access; every caller has checked the bounds. */
static inline uint16_t sdc_rd16(const uint8_t* p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t sdc_rd32(const uint8_t* p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t sdc_rd64(const uint8_t* p) { return (uint64_t)sdc_rd32(p) | ((uint64_t)sdc_rd32(p + 4) << 32); }
static inline void sdc_wr16(uint8_t* p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void sdc_wr32(uint8_t* p, uint32_t v) {
  p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void sdc_wr64(uint8_t* p, uint64_t v) { sdc_wr32(p, (uint32_t)v); sdc_wr32(p + 4, (uint32_t)(v >> 32)); }

/* crypto (OpenSSL libcrypto) */
EVP_PKEY* sdc_key_from_public(const uint8_t public_key[32]);
EVP_PKEY* sdc_key_from_seed(const uint8_t seed[32]);
int sdc_key_public_bytes(EVP_PKEY* key, uint8_t out[32]);
int sdc_verify(EVP_PKEY* key, const uint8_t* message, size_t message_len, const uint8_t signature[64]);
int sdc_sign(EVP_PKEY* key, const uint8_t* message, size_t message_len, uint8_t signature[64]);

/* operations; each returns a status and writes its response payload into payload (capacity given) */
int sdc_label_valid(const uint8_t label[SDC_LABEL_BYTES]);
void sdc_label_write(uint8_t out[SDC_LABEL_BYTES], const char* label);
int sdc_detect_lock_screen(void);
int sdc_op_lock_screen(sdc_handle* h);
int sdc_op_process_list(uint32_t max_entries, uint8_t* payload, uint32_t capacity, uint32_t* payload_len);
int sdc_op_stage_update(sdc_handle* h, const uint8_t* request, uint32_t request_len, uint8_t* payload, uint32_t* payload_len);
int sdc_op_commit_update(sdc_handle* h, const uint8_t* request, uint8_t* payload, uint32_t* payload_len);
int sdc_op_rollback_update(sdc_handle* h, uint8_t* payload, uint32_t* payload_len);
int sdc_op_confirm_update(sdc_handle* h, const uint8_t* request, uint8_t* payload, uint32_t* payload_len);
void sdc_watchdog_check(sdc_handle* h);
void sdc_restore_watchdog(sdc_handle* h);
uint64_t sdc_watchdog_remaining_ms(const sdc_handle* h);
uint64_t sdc_current_size_bytes(const sdc_handle* h);
/* fsync of a directory after a rename/unlink in it: 0 or the errno (EINVAL tolerated); exported for tests only. */
SDC_API int sdc_sync_directory(const char* dir);
/* sdc_sync_directory of the sandbox ("") or a directory in it ("/versions"); 1 when done. */
int sdc_sync_sandbox(const sdc_handle* h, const char* sub);

/* control-plane command authorization (sdc_command.c) */
int sdc_command_check(sdc_handle* h, int opcode, const uint8_t* attachment, uint32_t attachment_len, const uint8_t* request);
int sdc_provision_body_valid(const uint8_t* body);
int sdc_op_provision(sdc_handle* h, const uint8_t* request, uint8_t* payload, uint32_t* payload_len);
int sdc_restore_command_keys(sdc_handle* h);
int sdc_restore_command_window(sdc_handle* h);
void sdc_command_keys_free(sdc_handle* h);
void sdc_restore_update_state(sdc_handle* h);

#endif /* SDC_INTERNAL_H */
