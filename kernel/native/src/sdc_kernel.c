/*
 * Dispatcher: validates every request in the order the contract defines (so the TypeScript mock
 * gives byte-identical refusals), authenticates it, enforces the counter, runs the operation and
 * signs the response. Nothing is written past out_len.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "sdc_internal.h"

#define SDC_ENVELOPE_BYTES (SDC_HEADER_BYTES + SDC_SIGNATURE_BYTES)

static int read_key_file(const char* path, uint8_t out[32]) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return SDC_STATUS_IO_ERROR;
  uint8_t buffer[33];
  ssize_t total = 0;
  for (;;) { /* reads at most 33 bytes, enough to tell "exactly 32" from "more" */
    ssize_t n = read(fd, buffer + total, sizeof buffer - (size_t)total);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    total += n;
    if ((size_t)total == sizeof buffer) break;
  }
  close(fd);
  if (total != 32) return SDC_STATUS_BAD_LENGTH;
  memcpy(out, buffer, 32);
  return SDC_STATUS_OK;
}

void* sdc_open(const char* sandbox_dir, const char* agent_public_key_path,
               const char* service_seed_path, uint32_t flags, int32_t* status_out) {
  int32_t ignored;
  if (status_out == NULL) status_out = &ignored;
  *status_out = SDC_STATUS_IO_ERROR;
  if (sandbox_dir == NULL || agent_public_key_path == NULL || service_seed_path == NULL) return NULL;
  size_t sandbox_len = strlen(sandbox_dir);
  struct stat st;
  if (sandbox_len == 0 || sandbox_len >= SDC_SANDBOX_PATH_MAX || stat(sandbox_dir, &st) != 0 || !S_ISDIR(st.st_mode)) return NULL;

  uint8_t agent_public[32], service_seed[32];
  int status = read_key_file(agent_public_key_path, agent_public);
  if (status == SDC_STATUS_OK) status = read_key_file(service_seed_path, service_seed);
  if (status != SDC_STATUS_OK) { *status_out = status; return NULL; }

  sdc_handle* h = calloc(1, sizeof *h);
  if (h == NULL) return NULL;
  h->agent_key = sdc_key_from_public(agent_public);
  h->service_key = sdc_key_from_seed(service_seed);
  memset(service_seed, 0, sizeof service_seed);
  if (h->agent_key == NULL || h->service_key == NULL || !sdc_key_public_bytes(h->service_key, h->service_public_key) ||
      pthread_mutex_init(&h->lock, NULL) != 0) {
    EVP_PKEY_free(h->agent_key);
    EVP_PKEY_free(h->service_key);
    free(h);
    *status_out = SDC_STATUS_BAD_LENGTH;
    return NULL;
  }
  memcpy(h->sandbox, sandbox_dir, sandbox_len + 1);
  char versions[PATH_MAX];
  snprintf(versions, sizeof versions, "%s/versions", h->sandbox);
  if (mkdir(versions, 0700) != 0 && errno != EEXIST) {
    sdc_close(h);
    return NULL;
  }
  h->flags = flags;
  h->lock_screen_supported = (flags & SDC_OPEN_NO_LOCK_SCREEN) ? 0 : sdc_detect_lock_screen();
  sdc_restore_update_state(h);
  sdc_restore_watchdog(h);
  /* A damaged key or seq file must not silently reopen provisioning or forget what already ran. */
  if (!sdc_restore_command_keys(h) || !sdc_restore_command_window(h)) {
    sdc_close(h);
    return NULL;
  }
  h->alive = SDC_HANDLE_ALIVE;
  *status_out = SDC_STATUS_OK;
  return h;
}

void sdc_close(void* handle) {
  sdc_handle* h = handle;
  if (h == NULL) return;
  h->alive = 0;
  pthread_mutex_destroy(&h->lock);
  EVP_PKEY_free(h->agent_key);
  EVP_PKEY_free(h->service_key);
  sdc_command_keys_free(h);
  free(h);
}

int sdc_service_public_key(void* handle, uint8_t* out, uint32_t out_len) {
  sdc_handle* h = handle;
  if (h == NULL || h->alive != SDC_HANDLE_ALIVE) return SDC_STATUS_BAD_HANDLE;
  if (out == NULL || out_len < 32) return SDC_STATUS_BUFFER_TOO_SMALL;
  memcpy(out, h->service_public_key, 32);
  return SDC_STATUS_OK;
}

static int opcode_of(uint32_t code) {
  switch (code) {
    case SDC_IOCTL_EXEC_PING_KERNEL: return SDC_OP_EXEC_PING_KERNEL;
    case SDC_IOCTL_EXEC_LOCK_SCREEN: return SDC_OP_EXEC_LOCK_SCREEN;
    case SDC_IOCTL_EXEC_GET_PROCESS_LIST: return SDC_OP_EXEC_GET_PROCESS_LIST;
    case SDC_IOCTL_EXEC_STAGE_UPDATE: return SDC_OP_EXEC_STAGE_UPDATE;
    case SDC_IOCTL_EXEC_COMMIT_UPDATE: return SDC_OP_EXEC_COMMIT_UPDATE;
    case SDC_IOCTL_EXEC_ROLLBACK_UPDATE: return SDC_OP_EXEC_ROLLBACK_UPDATE;
    case SDC_IOCTL_EXEC_GET_STATUS: return SDC_OP_EXEC_GET_STATUS;
    case SDC_IOCTL_PROVISION_COMMAND_KEYS: return SDC_OP_PROVISION_COMMAND_KEYS;
    case SDC_IOCTL_EXEC_CONFIRM_UPDATE: return SDC_OP_EXEC_CONFIRM_UPDATE;
    default: return 0;
  }
}

/* Smallest response payload each opcode needs; the process list may grow into any remaining space. */
static uint32_t response_payload_min(int opcode) {
  switch (opcode) {
    case SDC_OP_EXEC_PING_KERNEL: return SDC_PING_RESPONSE_BYTES;
    case SDC_OP_EXEC_GET_PROCESS_LIST: return SDC_PROCESS_LIST_RESPONSE_BYTES;
    case SDC_OP_EXEC_STAGE_UPDATE: return SDC_STAGE_UPDATE_RESPONSE_BYTES;
    case SDC_OP_EXEC_COMMIT_UPDATE: return SDC_UPDATE_SLOTS_RESPONSE_BYTES;
    case SDC_OP_EXEC_ROLLBACK_UPDATE: return SDC_UPDATE_SLOTS_RESPONSE_BYTES;
    case SDC_OP_EXEC_GET_STATUS: return SDC_STATUS_RESPONSE_BYTES;
    case SDC_OP_PROVISION_COMMAND_KEYS: return SDC_PROVISION_RESPONSE_BYTES;
    case SDC_OP_EXEC_CONFIRM_UPDATE: return SDC_UPDATE_SLOTS_RESPONSE_BYTES;
    default: return 0;
  }
}

/* Request payload checks: exact sizes give BAD_LENGTH, out-of-range fields BAD_PAYLOAD. */
static int validate_payload(int opcode, const uint8_t* p, uint32_t len) {
  switch (opcode) {
    case SDC_OP_EXEC_PING_KERNEL:
      return len == SDC_PING_REQUEST_BYTES ? SDC_STATUS_OK : SDC_STATUS_BAD_LENGTH;
    case SDC_OP_EXEC_LOCK_SCREEN:
    case SDC_OP_EXEC_ROLLBACK_UPDATE:
    case SDC_OP_EXEC_GET_STATUS:
      return len == 0 ? SDC_STATUS_OK : SDC_STATUS_BAD_LENGTH;
    case SDC_OP_EXEC_GET_PROCESS_LIST: {
      if (len != SDC_PROCESS_LIST_REQUEST_BYTES) return SDC_STATUS_BAD_LENGTH;
      uint32_t max_entries = sdc_rd32(p + SDC_PROCESS_LIST_REQUEST_MAX_ENTRIES_OFFSET);
      if (max_entries == 0 || max_entries > SDC_PROCESS_ENTRIES_MAX || sdc_rd32(p + SDC_PROCESS_LIST_REQUEST_RESERVED_OFFSET) != 0)
        return SDC_STATUS_BAD_PAYLOAD;
      return SDC_STATUS_OK;
    }
    case SDC_OP_EXEC_STAGE_UPDATE: {
      if (len < SDC_STAGE_UPDATE_REQUEST_BYTES) return SDC_STATUS_BAD_LENGTH;
      uint32_t path_len = sdc_rd16(p + SDC_STAGE_UPDATE_REQUEST_PATH_LEN_OFFSET);
      if (path_len == 0 || path_len > SDC_UPDATE_PATH_BYTES_MAX || len != SDC_STAGE_UPDATE_REQUEST_BYTES + path_len)
        return SDC_STATUS_BAD_LENGTH;
      if (sdc_rd16(p + SDC_STAGE_UPDATE_REQUEST_RESERVED_OFFSET) != 0 || !sdc_label_valid(p + SDC_STAGE_UPDATE_REQUEST_VERSION_OFFSET) ||
          memchr(p + SDC_STAGE_UPDATE_REQUEST_BYTES, 0, path_len) != NULL)
        return SDC_STATUS_BAD_PAYLOAD;
      return SDC_STATUS_OK;
    }
    case SDC_OP_EXEC_COMMIT_UPDATE: {
      if (len != SDC_COMMIT_UPDATE_REQUEST_BYTES) return SDC_STATUS_BAD_LENGTH;
      uint32_t watchdog_ms = sdc_rd32(p + SDC_COMMIT_UPDATE_REQUEST_WATCHDOG_MS_OFFSET);
      if (!sdc_label_valid(p + SDC_COMMIT_UPDATE_REQUEST_VERSION_OFFSET) || sdc_rd32(p + SDC_COMMIT_UPDATE_REQUEST_RESERVED_OFFSET) != 0 ||
          (watchdog_ms != 0 && (watchdog_ms < SDC_WATCHDOG_WINDOW_MS_MIN || watchdog_ms > SDC_WATCHDOG_WINDOW_MS_MAX)))
        return SDC_STATUS_BAD_PAYLOAD;
      return SDC_STATUS_OK;
    }
    case SDC_OP_EXEC_CONFIRM_UPDATE:
      if (len != SDC_CONFIRM_UPDATE_REQUEST_BYTES) return SDC_STATUS_BAD_LENGTH;
      return sdc_label_valid(p + SDC_CONFIRM_UPDATE_REQUEST_VERSION_OFFSET) ? SDC_STATUS_OK : SDC_STATUS_BAD_PAYLOAD;
    case SDC_OP_PROVISION_COMMAND_KEYS:
      if (len != SDC_PROVISION_REQUEST_BYTES) return SDC_STATUS_BAD_LENGTH;
      return sdc_provision_body_valid(p) ? SDC_STATUS_OK : SDC_STATUS_BAD_PAYLOAD;
    default:
      return SDC_STATUS_UNKNOWN_CODE;
  }
}

static void write_status_payload(const sdc_handle* h, uint8_t* p) {
  memset(p, 0, SDC_STATUS_RESPONSE_BYTES);
  sdc_label_write(p + SDC_STATUS_RESPONSE_CURRENT_VERSION_OFFSET, h->update.current);
  sdc_label_write(p + SDC_STATUS_RESPONSE_PREVIOUS_VERSION_OFFSET, h->update.previous);
  sdc_label_write(p + SDC_STATUS_RESPONSE_STAGED_VERSION_OFFSET, h->update.staged);
  sdc_wr64(p + SDC_STATUS_RESPONSE_LAST_COUNTER_OFFSET, h->last_counter);
  sdc_wr64(p + SDC_STATUS_RESPONSE_REQUESTS_ACCEPTED_OFFSET, h->requests_accepted);
  sdc_wr64(p + SDC_STATUS_RESPONSE_REQUESTS_REFUSED_OFFSET, h->requests_refused);
  sdc_wr32(p + SDC_STATUS_RESPONSE_COMMITS_OFFSET, h->update.commits);
  sdc_wr32(p + SDC_STATUS_RESPONSE_ROLLBACKS_OFFSET, h->update.rollbacks);
  sdc_wr32(p + SDC_STATUS_RESPONSE_STAGE_FAILURES_OFFSET, h->update.stage_failures);
  sdc_wr64(p + SDC_STATUS_RESPONSE_CURRENT_SIZE_BYTES_OFFSET, sdc_current_size_bytes(h));
  sdc_wr64(p + SDC_STATUS_RESPONSE_LAST_COMMIT_UNIX_MS_OFFSET, h->update.last_commit_unix_ms);
  sdc_wr32(p + SDC_STATUS_RESPONSE_WATCHDOG_STATE_OFFSET, h->update.watchdog_armed ? 1u : 0u);
  sdc_wr64(p + SDC_STATUS_RESPONSE_WATCHDOG_REMAINING_MS_OFFSET, sdc_watchdog_remaining_ms(h));
  sdc_wr32(p + SDC_STATUS_RESPONSE_WATCHDOG_ROLLBACKS_OFFSET, h->update.watchdog_rollbacks);
  sdc_wr32(p + SDC_STATUS_RESPONSE_COMMIT_FAILURES_OFFSET, h->update.commit_failures);
  sdc_wr32(p + SDC_STATUS_RESPONSE_CONFIRMS_OFFSET, h->update.confirms);
}

static int execute(sdc_handle* h, int opcode, const uint8_t* request, uint32_t request_len,
                   uint8_t* payload, uint32_t capacity, uint32_t* payload_len) {
  switch (opcode) {
    case SDC_OP_EXEC_PING_KERNEL:
      memcpy(payload + SDC_PING_RESPONSE_NONCE_OFFSET, request + SDC_PING_REQUEST_NONCE_OFFSET, 8);
      sdc_wr32(payload + SDC_PING_RESPONSE_CONTRACT_VERSION_OFFSET, SDC_CONTRACT_VERSION);
      sdc_wr32(payload + SDC_PING_RESPONSE_CAPABILITIES_OFFSET, h->lock_screen_supported ? 1u : 0u);
      *payload_len = SDC_PING_RESPONSE_BYTES;
      return SDC_STATUS_OK;
    case SDC_OP_EXEC_LOCK_SCREEN:
      *payload_len = 0;
      return sdc_op_lock_screen(h);
    case SDC_OP_EXEC_GET_PROCESS_LIST:
      return sdc_op_process_list(sdc_rd32(request + SDC_PROCESS_LIST_REQUEST_MAX_ENTRIES_OFFSET), payload, capacity, payload_len);
    case SDC_OP_EXEC_STAGE_UPDATE:
      return sdc_op_stage_update(h, request, request_len, payload, payload_len);
    case SDC_OP_EXEC_COMMIT_UPDATE: {
      int status = sdc_op_commit_update(h, request, payload, payload_len);
      if (status != SDC_STATUS_OK) h->update.commit_failures++;
      return status;
    }
    case SDC_OP_EXEC_CONFIRM_UPDATE:
      return sdc_op_confirm_update(h, request, payload, payload_len);
    case SDC_OP_EXEC_ROLLBACK_UPDATE:
      return sdc_op_rollback_update(h, payload, payload_len);
    case SDC_OP_EXEC_GET_STATUS:
      write_status_payload(h, payload);
      *payload_len = SDC_STATUS_RESPONSE_BYTES;
      return SDC_STATUS_OK;
    case SDC_OP_PROVISION_COMMAND_KEYS:
      return sdc_op_provision(h, request, payload, payload_len);
    default:
      return SDC_STATUS_UNKNOWN_CODE;
  }
}

/* Writes header + signature around a payload already at out + SDC_HEADER_BYTES. */
static int sign_response(EVP_PKEY* key, uint8_t* out, int opcode, uint64_t counter, int status, uint32_t payload_len,
                         uint32_t* bytes_returned) {
  sdc_wr32(out + SDC_HEADER_MAGIC_OFFSET, SDC_RESPONSE_MAGIC);
  sdc_wr16(out + SDC_HEADER_VERSION_OFFSET, SDC_CONTRACT_VERSION);
  sdc_wr16(out + SDC_HEADER_OPCODE_OFFSET, (uint16_t)opcode);
  sdc_wr32(out + SDC_HEADER_FLAGS_OFFSET, 0);
  sdc_wr32(out + SDC_HEADER_PAYLOAD_LEN_OFFSET, payload_len);
  sdc_wr64(out + SDC_HEADER_COUNTER_OFFSET, counter);
  sdc_wr32(out + SDC_HEADER_STATUS_OFFSET, (uint32_t)status);
  sdc_wr32(out + SDC_HEADER_COMMAND_LEN_OFFSET, 0);
  if (!sdc_sign(key, out, SDC_HEADER_BYTES + payload_len, out + SDC_HEADER_BYTES + payload_len)) {
    /* Cannot sign: return nothing rather than an unsigned response. */
    memset(out, 0, SDC_ENVELOPE_BYTES);
    return SDC_STATUS_IO_ERROR;
  }
  *bytes_returned = SDC_ENVELOPE_BYTES + payload_len;
  return status;
}

static int finish(sdc_handle* h, uint8_t* out, int opcode, uint64_t counter, int status, uint32_t payload_len,
                  uint32_t* bytes_returned) {
  if (status != SDC_STATUS_OK) h->requests_refused++;
  return sign_response(h->service_key, out, opcode, counter, status, payload_len, bytes_returned);
}

static int refuse(sdc_handle* h, uint8_t* out, int opcode, uint64_t counter, int status, uint32_t* bytes_returned) {
  return finish(h, out, opcode, counter, status, 0, bytes_returned);
}

static int handle_locked(sdc_handle* h, uint32_t code, const uint8_t* in, uint32_t in_len, uint8_t* out,
                         uint32_t out_len, uint32_t* bytes_returned) {
  /* The commit watchdog is checked on every call, before the request is looked at (no timer thread). */
  sdc_watchdog_check(h);
  uint64_t counter = in_len >= SDC_HEADER_BYTES ? sdc_rd64(in + SDC_HEADER_COUNTER_OFFSET) : 0;
  int opcode = opcode_of(code);
  if (opcode == 0) return refuse(h, out, 0, counter, SDC_STATUS_UNKNOWN_CODE, bytes_returned);
  if (in_len < SDC_ENVELOPE_BYTES) return refuse(h, out, opcode, counter, SDC_STATUS_BAD_LENGTH, bytes_returned);
  if (sdc_rd32(in + SDC_HEADER_MAGIC_OFFSET) != SDC_REQUEST_MAGIC) return refuse(h, out, opcode, counter, SDC_STATUS_BAD_MAGIC, bytes_returned);
  if (sdc_rd16(in + SDC_HEADER_VERSION_OFFSET) != SDC_CONTRACT_VERSION) return refuse(h, out, opcode, counter, SDC_STATUS_BAD_VERSION, bytes_returned);
  uint32_t payload_len = sdc_rd32(in + SDC_HEADER_PAYLOAD_LEN_OFFSET);
  uint32_t command_len = sdc_rd32(in + SDC_HEADER_COMMAND_LEN_OFFSET);
  if (payload_len > SDC_PAYLOAD_BYTES_MAX || in_len != SDC_ENVELOPE_BYTES + payload_len || command_len > payload_len)
    return refuse(h, out, opcode, counter, SDC_STATUS_BAD_LENGTH, bytes_returned);
  if (sdc_rd32(in + SDC_HEADER_FLAGS_OFFSET) != 0 || sdc_rd32(in + SDC_HEADER_STATUS_OFFSET) != 0 ||
      sdc_rd16(in + SDC_HEADER_OPCODE_OFFSET) != opcode)
    return refuse(h, out, opcode, counter, SDC_STATUS_BAD_HEADER, bytes_returned);
  if (!sdc_verify(h->agent_key, in, SDC_HEADER_BYTES + payload_len, in + SDC_HEADER_BYTES + payload_len))
    return refuse(h, out, opcode, counter, SDC_STATUS_BAD_SIGNATURE, bytes_returned);
  if (counter <= h->last_counter) return refuse(h, out, opcode, counter, SDC_STATUS_REPLAY, bytes_returned);
  h->last_counter = counter;
  h->requests_accepted++;

  /* The command attachment is the payload's last command_len bytes; the opcode payload precedes it. */
  const uint8_t* request = in + SDC_HEADER_BYTES;
  uint32_t request_len = payload_len - command_len;
  int status = validate_payload(opcode, request, request_len);
  if (status != SDC_STATUS_OK) return refuse(h, out, opcode, counter, status, bytes_returned);
  uint32_t needed = SDC_ENVELOPE_BYTES + response_payload_min(opcode);
  if (out_len < needed) {
    if (out_len < SDC_ENVELOPE_BYTES + 4) return refuse(h, out, opcode, counter, SDC_STATUS_BUFFER_TOO_SMALL, bytes_returned);
    sdc_wr32(out + SDC_HEADER_BYTES, needed);
    return finish(h, out, opcode, counter, SDC_STATUS_BUFFER_TOO_SMALL, 4, bytes_returned);
  }
  status = sdc_command_check(h, opcode, request + request_len, command_len, request);
  if (status != SDC_STATUS_OK) return refuse(h, out, opcode, counter, status, bytes_returned);
  uint32_t capacity = out_len - SDC_ENVELOPE_BYTES;
  uint32_t response_len = 0;
  status = execute(h, opcode, request, request_len, out + SDC_HEADER_BYTES, capacity, &response_len);
  if (status != SDC_STATUS_OK || response_len > capacity) response_len = 0;
  return finish(h, out, opcode, counter, status, response_len, bytes_returned);
}

int sdc_device_io_control(void* handle, uint32_t code, const void* in, uint32_t in_len, void* out, uint32_t out_len,
                          uint32_t* bytes_returned) {
  uint32_t ignored;
  if (bytes_returned == NULL) bytes_returned = &ignored;
  *bytes_returned = 0;
  sdc_handle* h = handle;
  if (h == NULL || h->alive != SDC_HANDLE_ALIVE) return SDC_STATUS_BAD_HANDLE;
  if (out == NULL || out_len < SDC_ENVELOPE_BYTES) return SDC_STATUS_BUFFER_TOO_SMALL;
  if (in == NULL) in_len = 0;
  if (pthread_mutex_trylock(&h->lock) != 0) {
    uint64_t counter = in_len >= SDC_HEADER_BYTES ? sdc_rd64((const uint8_t*)in + SDC_HEADER_COUNTER_OFFSET) : 0;
    /* The key is immutable after open, so BUSY is signed without touching the locked state. */
    return sign_response(h->service_key, out, opcode_of(code), counter, SDC_STATUS_BUSY, 0, bytes_returned);
  }
  int status = handle_locked(h, code, in, in_len, out, out_len, bytes_returned);
  pthread_mutex_unlock(&h->lock);
  return status;
}
