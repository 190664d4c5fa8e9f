/*
 * Control-plane command authorization inside the kernel service: PROVISION_COMMAND_KEYS (the
 * device id and command keys, persisted in the sandbox), and the check every request passes
 * before it runs: a privileged opcode needs the control plane's signed command; an attached
 * command must verify under a provisioned key, name this device, match the IOCTL, not be past its
 * expires_at by more than SDC_COMMAND_EXPIRY_GRACE_MS on this kernel's clock, and carry a
 * device_seq not run before (a 256-seq window). Mirrors the TypeScript in kernel/command/ rule for rule, so the
 * mock and this library give the same status for the same bytes.
 *
 * The scanner reads the signed bytes only after their signature verified, so it parses control
 * plane output; it is strict and bounded (no whitespace, no duplicate fields, depth 8) anyway.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "sdc_internal.h"

#define PREFIX "sdc-command-v1\n"
#define PREFIX_LEN (sizeof PREFIX - 1)
#define ROTATION_PREFIX "sdc-kernel-provision-v1\n"
#define ROTATION_PREFIX_LEN (sizeof ROTATION_PREFIX - 1)
#define DEPTH_MAX 8
#define DEVICE_ID_BYTES_MAX 64u
#define OPCODE_BYTES_MAX 32u
#define ARGS_MAX 32u
#define ARG_NAME_BYTES_MAX 64u
#define INTEGER_DIGITS_MAX 16u
#define SAFE_INTEGER_MAX 9007199254740991ull
#define KEYS_FILE "command-keys"
#define SEQ_FILE "command-seq"
#define SEQ_FILE_BYTES (8u + 8u * (uint32_t)SDC_SEQ_WORDS)

typedef struct { const uint8_t* p; size_t len; } span;
typedef struct { const uint8_t* p; size_t len; size_t pos; } scanner;

typedef struct {
  span name;
  int is_string;
  span raw;        /* string content, escapes as they are */
  uint64_t value;  /* integer */
} command_arg;

typedef struct {
  span device_id, opcode;
  uint64_t device_seq, expires_at;
  int has_device_id, has_opcode, has_seq, has_expires, has_args;
  command_arg args[ARGS_MAX];
  uint32_t arg_count;
} parsed_command;

static int peek(const scanner* s) { return s->pos < s->len ? s->p[s->pos] : -1; }
static int take(scanner* s, int byte) {
  if (peek(s) != byte) return 0;
  s->pos++;
  return 1;
}

static int scan_string(scanner* s, span* out) {
  if (!take(s, '"')) return 0;
  size_t start = s->pos;
  while (s->pos < s->len) {
    uint8_t b = s->p[s->pos];
    if (b == '"') {
      out->p = s->p + start;
      out->len = s->pos - start;
      s->pos++;
      return 1;
    }
    if (b < 0x20) return 0;
    s->pos += b == '\\' ? 2 : 1;
  }
  return 0;
}

static size_t digits(scanner* s) {
  size_t start = s->pos;
  while (peek(s) >= '0' && peek(s) <= '9') s->pos++;
  return s->pos - start;
}

static int scan_number(scanner* s) {
  take(s, '-');
  if (digits(s) == 0) return 0;
  if (take(s, '.') && digits(s) == 0) return 0;
  if (take(s, 'e') || take(s, 'E')) {
    if (!take(s, '+')) take(s, '-');
    if (digits(s) == 0) return 0;
  }
  return 1;
}

static int literal(scanner* s, const char* word) {
  size_t n = strlen(word);
  if (s->len - s->pos < n || memcmp(s->p + s->pos, word, n) != 0) return 0;
  s->pos += n;
  return 1;
}

static int skip_value(scanner* s, int depth) {
  int b = peek(s);
  span ignored;
  if (b == '"') return scan_string(s, &ignored);
  if (b == '{' || b == '[') {
    if (depth >= DEPTH_MAX) return 0;
    int close = b == '{' ? '}' : ']';
    s->pos++;
    if (take(s, close)) return 1;
    do {
      if (b == '{' && !(scan_string(s, &ignored) && take(s, ':'))) return 0;
      if (!skip_value(s, depth + 1)) return 0;
    } while (take(s, ','));
    return take(s, close);
  }
  if (b == 't') return literal(s, "true");
  if (b == 'f') return literal(s, "false");
  if (b == 'n') return literal(s, "null");
  return scan_number(s);
}

static int scan_integer(scanner* s, uint64_t* value) {
  size_t start = s->pos;
  size_t n = digits(s);
  if (n == 0 || n > INTEGER_DIGITS_MAX) return 0;
  int c = peek(s);
  if (c == '.' || c == 'e' || c == 'E') return 0;
  uint64_t v = 0;
  for (size_t i = start; i < s->pos; i++) v = v * 10u + (uint64_t)(s->p[i] - '0');
  if (v > SAFE_INTEGER_MAX) return 0;
  *value = v;
  return 1;
}

/* A name or id: 1..max bytes, no escapes. */
static int plain(const span* v, size_t max) {
  return v->len >= 1 && v->len <= max && memchr(v->p, '\\', v->len) == NULL;
}

static int span_is(const span* v, const char* text) {
  size_t n = strlen(text);
  return v->len == n && memcmp(v->p, text, n) == 0;
}

static int parse_args(scanner* s, parsed_command* c) {
  if (!take(s, '{')) return 0;
  c->arg_count = 0;
  if (take(s, '}')) return 1;
  do {
    span name;
    if (!scan_string(s, &name) || !plain(&name, ARG_NAME_BYTES_MAX) || !take(s, ':')) return 0;
    for (uint32_t i = 0; i < c->arg_count; i++) {
      if (c->args[i].name.len == name.len && memcmp(c->args[i].name.p, name.p, name.len) == 0) return 0;
    }
    if (c->arg_count >= ARGS_MAX) return 0;
    command_arg* arg = &c->args[c->arg_count];
    arg->name = name;
    if (peek(s) == '"') {
      arg->is_string = 1;
      if (!scan_string(s, &arg->raw)) return 0;
    } else {
      arg->is_string = 0;
      if (!scan_integer(s, &arg->value)) return 0;
    }
    c->arg_count++;
  } while (take(s, ','));
  return take(s, '}');
}

static int parse_field(scanner* s, const span* key, parsed_command* c, int* handled) {
  *handled = 1;
  if (span_is(key, "device_id")) {
    if (c->has_device_id) return 0;
    c->has_device_id = 1;
    return scan_string(s, &c->device_id) && plain(&c->device_id, DEVICE_ID_BYTES_MAX);
  }
  if (span_is(key, "opcode")) {
    if (c->has_opcode) return 0;
    c->has_opcode = 1;
    return scan_string(s, &c->opcode) && plain(&c->opcode, OPCODE_BYTES_MAX);
  }
  if (span_is(key, "device_seq")) {
    if (c->has_seq) return 0;
    c->has_seq = 1;
    return scan_integer(s, &c->device_seq);
  }
  if (span_is(key, "expires_at")) {
    if (c->has_expires) return 0;
    c->has_expires = 1;
    return scan_integer(s, &c->expires_at);
  }
  if (span_is(key, "args")) {
    if (c->has_args) return 0;
    c->has_args = 1;
    return parse_args(s, c);
  }
  *handled = 0;
  return 1;
}

static int parse_command(const uint8_t* bytes, size_t len, parsed_command* c) {
  memset(c, 0, sizeof *c);
  if (len < PREFIX_LEN || memcmp(bytes, PREFIX, PREFIX_LEN) != 0) return 0;
  scanner s = { bytes, len, PREFIX_LEN };
  if (!take(&s, '{')) return 0;
  if (!take(&s, '}')) {
    do {
      span key;
      int handled;
      if (!scan_string(&s, &key) || !take(&s, ':')) return 0;
      if (!parse_field(&s, &key, c, &handled)) return 0;
      if (!handled && !skip_value(&s, 1)) return 0;
    } while (take(&s, ','));
    if (!take(&s, '}')) return 0;
  }
  if (s.pos != len) return 0;
  return c->has_device_id && c->has_opcode && c->has_seq && c->device_seq >= 1 && c->has_expires && c->has_args;
}

/* ---- matching the IOCTL ---- */

static const char* opcode_name(int opcode) {
  switch (opcode) {
    case SDC_OP_EXEC_PING_KERNEL: return "EXEC_PING_KERNEL";
    case SDC_OP_EXEC_LOCK_SCREEN: return "EXEC_LOCK_SCREEN";
    case SDC_OP_EXEC_GET_PROCESS_LIST: return "EXEC_GET_PROCESS_LIST";
    case SDC_OP_EXEC_STAGE_UPDATE: return "EXEC_STAGE_UPDATE";
    case SDC_OP_EXEC_COMMIT_UPDATE: return "EXEC_COMMIT_UPDATE";
    case SDC_OP_EXEC_ROLLBACK_UPDATE: return "EXEC_ROLLBACK_UPDATE";
    case SDC_OP_EXEC_GET_STATUS: return "EXEC_GET_STATUS";
    case SDC_OP_EXEC_CONFIRM_UPDATE: return "EXEC_CONFIRM_UPDATE";
    default: return "";
  }
}

static int arg_allowed(int opcode, const span* name) {
  switch (opcode) {
    case SDC_OP_EXEC_GET_PROCESS_LIST: return span_is(name, "limit");
    case SDC_OP_EXEC_STAGE_UPDATE:
      return span_is(name, "version") || span_is(name, "sha256") || span_is(name, "size_bytes") || span_is(name, "url");
    case SDC_OP_EXEC_COMMIT_UPDATE: return span_is(name, "version") || span_is(name, "sha256") || span_is(name, "watchdog_ms");
    case SDC_OP_EXEC_CONFIRM_UPDATE: return span_is(name, "version");
    default: return 0;
  }
}

static const command_arg* find_arg(const parsed_command* c, const char* name) {
  for (uint32_t i = 0; i < c->arg_count; i++) if (span_is(&c->args[i].name, name)) return &c->args[i];
  return NULL;
}

/* The arg is a string whose raw bytes equal the label (NUL-terminated within its 32 bytes, already validated). */
static int arg_is_label(const command_arg* arg, const uint8_t label[SDC_LABEL_BYTES]) {
  size_t n = strnlen((const char*)label, SDC_LABEL_BYTES);
  return arg != NULL && arg->is_string && arg->raw.len == n && memcmp(arg->raw.p, label, n) == 0;
}

static int arg_is_hex(const command_arg* arg, const uint8_t* bytes, size_t n) {
  static const char hex[] = "0123456789abcdef";
  if (arg == NULL || !arg->is_string || arg->raw.len != 2 * n) return 0;
  for (size_t i = 0; i < n; i++) {
    if (arg->raw.p[2 * i] != hex[bytes[i] >> 4] || arg->raw.p[2 * i + 1] != hex[bytes[i] & 15]) return 0;
  }
  return 1;
}

static int command_matches(int opcode, const parsed_command* c, const uint8_t* request) {
  if (!span_is(&c->opcode, opcode_name(opcode))) return 0;
  for (uint32_t i = 0; i < c->arg_count; i++) if (!arg_allowed(opcode, &c->args[i].name)) return 0;
  switch (opcode) {
    case SDC_OP_EXEC_GET_PROCESS_LIST: {
      const command_arg* limit = find_arg(c, "limit");
      if (limit == NULL) return 1;
      return !limit->is_string && sdc_rd32(request + SDC_PROCESS_LIST_REQUEST_MAX_ENTRIES_OFFSET) <= limit->value;
    }
    case SDC_OP_EXEC_STAGE_UPDATE: {
      const command_arg* size = find_arg(c, "size_bytes");
      const command_arg* url = find_arg(c, "url");
      return arg_is_label(find_arg(c, "version"), request + SDC_STAGE_UPDATE_REQUEST_VERSION_OFFSET) &&
             arg_is_hex(find_arg(c, "sha256"), request + SDC_STAGE_UPDATE_REQUEST_SHA256_OFFSET, SDC_STAGE_UPDATE_REQUEST_SHA256_SIZE) &&
             size != NULL && !size->is_string && (url == NULL || url->is_string);
    }
    case SDC_OP_EXEC_COMMIT_UPDATE: {
      /* version always; the digest and the watchdog window when the command names them. */
      const command_arg* sha = find_arg(c, "sha256");
      const command_arg* watchdog = find_arg(c, "watchdog_ms");
      return arg_is_label(find_arg(c, "version"), request + SDC_COMMIT_UPDATE_REQUEST_VERSION_OFFSET) &&
             (sha == NULL || arg_is_hex(sha, request + SDC_COMMIT_UPDATE_REQUEST_SHA256_OFFSET, SDC_COMMIT_UPDATE_REQUEST_SHA256_SIZE)) &&
             (watchdog == NULL || (!watchdog->is_string && watchdog->value == sdc_rd32(request + SDC_COMMIT_UPDATE_REQUEST_WATCHDOG_MS_OFFSET)));
    }
    case SDC_OP_EXEC_CONFIRM_UPDATE:
      return arg_is_label(find_arg(c, "version"), request + SDC_CONFIRM_UPDATE_REQUEST_VERSION_OFFSET);
    default:
      return 1;
  }
}

/* ---- expiry: CLOCK_REALTIME in Unix ms (expires_at is at most 2^53 - 1, so the sum cannot wrap) ---- */
static uint64_t unix_ms_now(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0) return UINT64_MAX; /* no clock: treat as expired (fail closed) */
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- replay window: bit i of seq_bits is seq (seq_highest - i) ---- */

static int window_fresh(const sdc_handle* h, uint64_t seq) {
  if (seq > h->seq_highest) return 1;
  uint64_t distance = h->seq_highest - seq;
  if (distance >= SDC_COMMAND_REPLAY_WINDOW) return 0;
  return ((h->seq_bits[distance / 64] >> (distance % 64)) & 1u) == 0;
}

static void window_mark(sdc_handle* h, uint64_t seq) {
  if (seq > h->seq_highest) {
    uint64_t shift = seq - h->seq_highest;
    uint64_t words = shift / 64, rest = shift % 64;
    for (int i = SDC_SEQ_WORDS - 1; i >= 0; i--) {
      uint64_t v = 0;
      if (shift < SDC_COMMAND_REPLAY_WINDOW && (uint64_t)i >= words) {
        v = h->seq_bits[(uint64_t)i - words] << rest;
        if (rest != 0 && (uint64_t)i >= words + 1) v |= h->seq_bits[(uint64_t)i - words - 1] >> (64 - rest);
      }
      h->seq_bits[i] = v;
    }
    h->seq_highest = seq;
    h->seq_bits[0] |= 1u;
    return;
  }
  uint64_t distance = h->seq_highest - seq;
  h->seq_bits[distance / 64] |= (uint64_t)1 << (distance % 64);
}

/* ---- files in the sandbox, written whole: temporary file, fsync, rename, fsync of the directory ---- */

static int write_sandbox_file(const sdc_handle* h, const char* name, const uint8_t* bytes, size_t len) {
  char path[PATH_MAX], tmp[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", h->sandbox, name);
  snprintf(tmp, sizeof tmp, "%s/%s.tmp", h->sandbox, name);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return 0;
  ssize_t written = write(fd, bytes, len);
  int ok = written == (ssize_t)len && fsync(fd) == 0;
  ok = close(fd) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) {
    unlink(tmp);
    return 0;
  }
  /* Until the directory is synced, power loss may bring the old file back (the replay window of
     before: a command that ran would run again). A failure refuses the command like a write failure. */
  return sdc_sync_sandbox(h, "");
}

/* Reads exactly `len` bytes; 1 when read, 0 when absent (ENOENT), -1 when unreadable or another size. */
static int read_sandbox_file(const sdc_handle* h, const char* name, uint8_t* out, size_t len) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", h->sandbox, name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : -1;
  uint8_t extra;
  ssize_t n = read(fd, out, len);
  ssize_t more = n == (ssize_t)len ? read(fd, &extra, 1) : 0;
  close(fd);
  return n == (ssize_t)len && more == 0 ? 1 : -1;
}

/*
 * The replay window survives a service restart and power loss: it is written (and its directory
 * synced) before the command runs, so a command cannot run, crash the service or the machine, and
 * run again. A write or sync failure refuses the command.
 */
static int persist_window(const sdc_handle* h, uint64_t highest, const uint64_t bits[SDC_SEQ_WORDS]) {
  uint8_t bytes[SEQ_FILE_BYTES];
  sdc_wr64(bytes, highest);
  for (int i = 0; i < SDC_SEQ_WORDS; i++) sdc_wr64(bytes + 8 + 8 * i, bits[i]);
  return write_sandbox_file(h, SEQ_FILE, bytes, sizeof bytes);
}

int sdc_restore_command_window(sdc_handle* h) {
  uint8_t bytes[SEQ_FILE_BYTES];
  int found = read_sandbox_file(h, SEQ_FILE, bytes, sizeof bytes);
  if (found <= 0) return found == 0;
  h->seq_highest = sdc_rd64(bytes);
  for (int i = 0; i < SDC_SEQ_WORDS; i++) h->seq_bits[i] = sdc_rd64(bytes + 8 + 8 * i);
  return 1;
}

/* ---- the check before execution ---- */

static int verify_under_provisioned(const sdc_handle* h, const uint8_t* message, size_t len, const uint8_t signature[64]) {
  for (uint32_t i = 0; i < h->command_key_count; i++) {
    if (sdc_verify(h->command_keys[i], message, len, signature)) return 1;
  }
  return 0;
}

int sdc_command_check(sdc_handle* h, int opcode, const uint8_t* attachment, uint32_t attachment_len, const uint8_t* request) {
  if (opcode == SDC_OP_PROVISION_COMMAND_KEYS) return attachment_len == 0 ? SDC_STATUS_OK : SDC_STATUS_COMMAND_INVALID;
  if (attachment_len == 0 && !SDC_OPCODE_PRIVILEGED(opcode)) return SDC_STATUS_OK;
  if (h->command_key_count == 0) return SDC_STATUS_NOT_PROVISIONED;
  if (attachment_len == 0) return SDC_STATUS_COMMAND_MISSING;
  if (attachment_len < SDC_COMMAND_ATTACHMENT_BYTES) return SDC_STATUS_COMMAND_INVALID;
  uint32_t signed_len = sdc_rd32(attachment + SDC_COMMAND_ATTACHMENT_SIGNED_LEN_OFFSET);
  if (signed_len < 1 || signed_len > SDC_COMMAND_SIGNED_BYTES_MAX || attachment_len != SDC_COMMAND_ATTACHMENT_BYTES + signed_len)
    return SDC_STATUS_COMMAND_INVALID;
  const uint8_t* signed_bytes = attachment + SDC_COMMAND_ATTACHMENT_BYTES;
  if (!verify_under_provisioned(h, signed_bytes, signed_len, attachment + SDC_COMMAND_ATTACHMENT_SIGNATURE_OFFSET))
    return SDC_STATUS_COMMAND_FORGED;
  parsed_command command;
  if (!parse_command(signed_bytes, signed_len, &command)) return SDC_STATUS_COMMAND_INVALID;
  size_t id_len = strlen(h->device_id);
  if (command.device_id.len != id_len || memcmp(command.device_id.p, h->device_id, id_len) != 0) return SDC_STATUS_COMMAND_WRONG_DEVICE;
  if (!command_matches(opcode, &command, request)) return SDC_STATUS_COMMAND_MISMATCH;
  /* The kernel's own clock, never the agent's word; before the window, so an expired command takes no seq. */
  if (unix_ms_now() >= command.expires_at + SDC_COMMAND_EXPIRY_GRACE_MS) return SDC_STATUS_COMMAND_EXPIRED;
  if (!window_fresh(h, command.device_seq)) return SDC_STATUS_COMMAND_REPLAY;
  uint64_t highest = h->seq_highest, bits[SDC_SEQ_WORDS];
  memcpy(bits, h->seq_bits, sizeof bits);
  window_mark(h, command.device_seq);
  if (!persist_window(h, h->seq_highest, h->seq_bits)) {
    h->seq_highest = highest;
    memcpy(h->seq_bits, bits, sizeof bits);
    return SDC_STATUS_IO_ERROR;
  }
  return SDC_STATUS_OK;
}

/* ---- provisioning ---- */

/* Copies the NUL-padded device id out of a provisioning body; 0 when malformed. */
static int decode_device_id(const uint8_t* body, char out[DEVICE_ID_BYTES_MAX + 1]) {
  const uint8_t* field = body + SDC_PROVISION_REQUEST_DEVICE_ID_OFFSET;
  size_t end = strnlen((const char*)field, SDC_PROVISION_REQUEST_DEVICE_ID_SIZE);
  if (end == 0) return 0;
  for (size_t i = end; i < SDC_PROVISION_REQUEST_DEVICE_ID_SIZE; i++) if (field[i] != 0) return 0;
  for (size_t i = 0; i < end; i++) {
    uint8_t c = field[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '.' || c == '_' || c == '-'));
    if (!ok) return 0;
  }
  memcpy(out, field, end);
  out[end] = 0;
  return 1;
}

int sdc_provision_body_valid(const uint8_t* body) {
  uint32_t count = sdc_rd32(body + SDC_PROVISION_REQUEST_KEY_COUNT_OFFSET);
  if (sdc_rd32(body + SDC_PROVISION_REQUEST_RESERVED_OFFSET) != 0 || count < 1 || count > SDC_COMMAND_KEYS_MAX) return 0;
  for (uint32_t i = SDC_PROVISION_REQUEST_KEYS_OFFSET + 32u * count; i < SDC_PROVISION_REQUEST_KEYS_OFFSET + SDC_PROVISION_REQUEST_KEYS_SIZE; i++) {
    if (body[i] != 0) return 0;
  }
  char id[DEVICE_ID_BYTES_MAX + 1];
  return decode_device_id(body, id);
}

/* Replaces the in-memory keys with the body's; 0 (nothing changed) when a key cannot be loaded. */
static int install_body(sdc_handle* h, const uint8_t* body) {
  uint32_t count = sdc_rd32(body + SDC_PROVISION_REQUEST_KEY_COUNT_OFFSET);
  EVP_PKEY* keys[SDC_COMMAND_KEYS_MAX] = {0};
  for (uint32_t i = 0; i < count; i++) {
    keys[i] = sdc_key_from_public(body + SDC_PROVISION_REQUEST_KEYS_OFFSET + 32u * i);
    if (keys[i] == NULL) {
      for (uint32_t j = 0; j < i; j++) EVP_PKEY_free(keys[j]);
      return 0;
    }
  }
  sdc_command_keys_free(h);
  for (uint32_t i = 0; i < count; i++) h->command_keys[i] = keys[i];
  h->command_key_count = count;
  decode_device_id(body, h->device_id);
  memcpy(h->provision_body, body, SDC_PROVISION_BODY_BYTES);
  return 1;
}

void sdc_command_keys_free(sdc_handle* h) {
  for (uint32_t i = 0; i < h->command_key_count; i++) EVP_PKEY_free(h->command_keys[i]);
  memset(h->command_keys, 0, sizeof h->command_keys);
  h->command_key_count = 0;
}

/* On open: a sandbox provisioned before keeps its keys. Absent file: unprovisioned. Bad file: refuse to open. */
int sdc_restore_command_keys(sdc_handle* h) {
  uint8_t body[SDC_PROVISION_BODY_BYTES];
  int found = read_sandbox_file(h, KEYS_FILE, body, sizeof body);
  if (found <= 0) return found == 0;
  return sdc_provision_body_valid(body) && install_body(h, body);
}

int sdc_op_provision(sdc_handle* h, const uint8_t* request, uint8_t* payload, uint32_t* payload_len) {
  *payload_len = 0;
  char device_id[DEVICE_ID_BYTES_MAX + 1];
  decode_device_id(request, device_id);
  uint32_t outcome;
  if (h->command_key_count == 0) {
    outcome = 1;
  } else if (strcmp(device_id, h->device_id) != 0) {
    return SDC_STATUS_PROVISION_DENIED;
  } else if (memcmp(request, h->provision_body, SDC_PROVISION_BODY_BYTES) == 0) {
    outcome = 2;
  } else {
    uint8_t input[ROTATION_PREFIX_LEN + SDC_PROVISION_BODY_BYTES];
    memcpy(input, ROTATION_PREFIX, ROTATION_PREFIX_LEN);
    memcpy(input + ROTATION_PREFIX_LEN, request, SDC_PROVISION_BODY_BYTES);
    if (!verify_under_provisioned(h, input, sizeof input, request + SDC_PROVISION_REQUEST_ROTATION_SIGNATURE_OFFSET))
      return SDC_STATUS_PROVISION_DENIED;
    outcome = 3;
  }
  if (outcome != 2 && (!write_sandbox_file(h, KEYS_FILE, request, SDC_PROVISION_BODY_BYTES) || !install_body(h, request)))
    return SDC_STATUS_IO_ERROR;
  sdc_wr32(payload + SDC_PROVISION_RESPONSE_OUTCOME_OFFSET, outcome);
  sdc_wr32(payload + SDC_PROVISION_RESPONSE_KEY_COUNT_OFFSET, h->command_key_count);
  *payload_len = SDC_PROVISION_RESPONSE_BYTES;
  return SDC_STATUS_OK;
}
