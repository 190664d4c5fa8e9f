/*
 * The Linux implementations of the operations: process list from /proc, screen lock through
 * systemd-logind, and update slots in the sandbox directory (versions/<label> files plus the
 * symlinks current, previous and staged, each switched by an atomic rename).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "sdc_internal.h"

extern char** environ;

static const char* const loginctl_paths[] = {"/usr/bin/loginctl", "/bin/loginctl"};

int sdc_label_valid(const uint8_t label[SDC_LABEL_BYTES]) {
  const uint8_t* nul = memchr(label, 0, SDC_LABEL_BYTES);
  if (nul == NULL || nul == label) return 0;
  size_t len = (size_t)(nul - label);
  for (size_t i = len; i < SDC_LABEL_BYTES; i++) if (label[i] != 0) return 0;
  for (size_t i = 0; i < len; i++) {
    uint8_t c = label[i];
    int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return 0;
  }
  if ((len == 1 && label[0] == '.') || (len == 2 && label[0] == '.' && label[1] == '.')) return 0;
  return 1;
}

void sdc_label_write(uint8_t out[SDC_LABEL_BYTES], const char* label) {
  memset(out, 0, SDC_LABEL_BYTES);
  size_t len = strnlen(label, SDC_LABEL_BYTES - 1);
  memcpy(out, label, len);
}

/* A session manager exists when systemd is the init system and loginctl is installed. */
int sdc_detect_lock_screen(void) {
  if (access("/run/systemd/system", F_OK) != 0) return 0;
  for (size_t i = 0; i < sizeof loginctl_paths / sizeof loginctl_paths[0]; i++)
    if (access(loginctl_paths[i], X_OK) == 0) return 1;
  return 0;
}

/* How long loginctl may take to ask the sessions to lock (it only sends a D-Bus request): past it
 * the child is killed and the call answers IO_ERROR, so a hung session manager cannot hold the
 * handle's lock and every later call forever. */
#define SDC_LOCK_SCREEN_WAIT_MS 10000
#define SDC_LOCK_SCREEN_POLL_MS 20

/* waitpid with a deadline: 1 exited (status in *wstatus), 0 timed out (killed and reaped), -1 error. */
static int wait_child_bounded(pid_t pid, int* wstatus, int wait_ms) {
  const struct timespec poll = {0, SDC_LOCK_SCREEN_POLL_MS * 1000000L};
  for (int waited_ms = 0;; waited_ms += SDC_LOCK_SCREEN_POLL_MS) {
    pid_t done = waitpid(pid, wstatus, WNOHANG);
    if (done == pid) return 1;
    if (done < 0 && errno != EINTR) return -1;
    if (waited_ms >= wait_ms) break;
    nanosleep(&poll, NULL);
  }
  kill(pid, SIGKILL);
  while (waitpid(pid, wstatus, 0) < 0 && errno == EINTR) {}
  return 0;
}

int sdc_op_lock_screen(sdc_handle* h) {
  if (!h->lock_screen_supported) return SDC_STATUS_NOT_SUPPORTED;
  for (size_t i = 0; i < sizeof loginctl_paths / sizeof loginctl_paths[0]; i++) {
    if (access(loginctl_paths[i], X_OK) != 0) continue;
    char* argv[] = {(char*)loginctl_paths[i], (char*)"lock-sessions", NULL};
    pid_t pid;
    if (posix_spawn(&pid, loginctl_paths[i], NULL, NULL, argv, environ) != 0) return SDC_STATUS_IO_ERROR;
    int wstatus = 0;
    if (wait_child_bounded(pid, &wstatus, SDC_LOCK_SCREEN_WAIT_MS) != 1) return SDC_STATUS_IO_ERROR;
    return WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0 ? SDC_STATUS_OK : SDC_STATUS_IO_ERROR;
  }
  return SDC_STATUS_NOT_SUPPORTED;
}

/* Parses /proc/<pid>/stat: "pid (comm) state ppid ... rss(24th field) ...". */
static int read_process(const char* pid_name, uint8_t entry[SDC_PROCESS_ENTRY_BYTES]) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%s/stat", pid_name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buffer[1024];
  ssize_t n = read(fd, buffer, sizeof buffer - 1);
  close(fd);
  if (n <= 0) return 0;
  buffer[n] = '\0';
  char* open_paren = strchr(buffer, '(');
  char* close_paren = strrchr(buffer, ')');
  if (open_paren == NULL || close_paren == NULL || close_paren < open_paren) return 0;
  memset(entry, 0, SDC_PROCESS_ENTRY_BYTES);
  sdc_wr32(entry + SDC_PROCESS_ENTRY_PID_OFFSET, (uint32_t)strtoul(pid_name, NULL, 10));
  size_t name_len = (size_t)(close_paren - open_paren - 1);
  if (name_len > SDC_PROCESS_ENTRY_NAME_SIZE - 1) name_len = SDC_PROCESS_ENTRY_NAME_SIZE - 1;
  memcpy(entry + SDC_PROCESS_ENTRY_NAME_OFFSET, open_paren + 1, name_len);
  /* Fields after ')' start at field 3 (state); ppid is field 4, rss (pages) field 24. */
  unsigned long long fields[22] = {0};
  char* cursor = close_paren + 1;
  for (int field = 3; field <= 24 && *cursor; field++) {
    while (*cursor == ' ') cursor++;
    char* end = cursor;
    while (*end && *end != ' ') end++;
    if (field != 3) fields[field - 3] = strtoull(cursor, NULL, 10);
    cursor = end;
  }
  sdc_wr32(entry + SDC_PROCESS_ENTRY_PPID_OFFSET, (uint32_t)fields[1]);
  long page_kib = sysconf(_SC_PAGESIZE) / 1024;
  sdc_wr64(entry + SDC_PROCESS_ENTRY_RSS_KIB_OFFSET, (uint64_t)fields[21] * (uint64_t)(page_kib > 0 ? page_kib : 4));
  return 1;
}

int sdc_op_process_list(uint32_t max_entries, uint8_t* payload, uint32_t capacity, uint32_t* payload_len) {
  DIR* dir = opendir("/proc");
  if (dir == NULL) return SDC_STATUS_IO_ERROR;
  uint32_t fit = (capacity - SDC_PROCESS_LIST_RESPONSE_BYTES) / SDC_PROCESS_ENTRY_BYTES;
  uint32_t limit = max_entries < fit ? max_entries : fit;
  uint32_t total = 0, count = 0;
  uint8_t entry[SDC_PROCESS_ENTRY_BYTES];
  struct dirent* d;
  while (total < SDC_PROCESS_ENTRIES_MAX && (d = readdir(dir)) != NULL) {
    if (d->d_name[0] < '1' || d->d_name[0] > '9' || strspn(d->d_name, "0123456789") != strlen(d->d_name)) continue;
    if (!read_process(d->d_name, entry)) continue; /* exited while listing */
    total++;
    if (count < limit) {
      memcpy(payload + SDC_PROCESS_LIST_RESPONSE_BYTES + (size_t)count * SDC_PROCESS_ENTRY_BYTES, entry, sizeof entry);
      count++;
    }
  }
  closedir(dir);
  sdc_wr32(payload + SDC_PROCESS_LIST_RESPONSE_TOTAL_COUNT_OFFSET, total);
  sdc_wr32(payload + SDC_PROCESS_LIST_RESPONSE_ENTRY_COUNT_OFFSET, count);
  *payload_len = SDC_PROCESS_LIST_RESPONSE_BYTES + count * SDC_PROCESS_ENTRY_BYTES;
  return SDC_STATUS_OK;
}

/* ---- update slots ---- */

static void sandbox_path(const sdc_handle* h, char* out, size_t out_len, const char* a, const char* b) {
  snprintf(out, out_len, "%s/%s%s", h->sandbox, a, b);
}

/*
 * A rename or unlink is durable only once its directory is fsynced: without it, power loss can
 * bring back the old command-seq (an executed command runs again), the old command keys, a
 * cleared watchdog or the old slot links. 0 when done, else the errno. EINVAL, a filesystem that
 * cannot fsync a directory, counts as done (as in runtime/atomic-file.ts): it only weakens
 * durability there. Exported for the tests only (kernel/native/durable-state.test.ts).
 */
SDC_API int sdc_sync_directory(const char* dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  int error = 0;
  while (fsync(fd) != 0) {
    if (errno == EINTR) continue;
    error = errno == EINVAL ? 0 : errno;
    break;
  }
  close(fd);
  return error;
}

int sdc_sync_sandbox(const sdc_handle* h, const char* sub) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s%s", h->sandbox, sub);
  return sdc_sync_directory(dir) == 0;
}

/* Points sandbox/<name> at versions/<label> (or removes it for ""), atomically via rename, durably. */
static int set_link(const sdc_handle* h, const char* name, const char* label) {
  char link_path[PATH_MAX], tmp_path[PATH_MAX], target[64];
  sandbox_path(h, link_path, sizeof link_path, name, "");
  if (label[0] == '\0') {
    if (unlink(link_path) != 0) return errno == ENOENT;
    return sdc_sync_sandbox(h, "");
  }
  sandbox_path(h, tmp_path, sizeof tmp_path, name, ".tmp");
  snprintf(target, sizeof target, "versions/%s", label);
  unlink(tmp_path);
  if (symlink(target, tmp_path) != 0) return 0;
  if (rename(tmp_path, link_path) != 0) { unlink(tmp_path); return 0; }
  return sdc_sync_sandbox(h, "");
}

static void read_link(const sdc_handle* h, const char* name, char out[SDC_LABEL_BYTES]) {
  char link_path[PATH_MAX], target[128];
  out[0] = '\0';
  sandbox_path(h, link_path, sizeof link_path, name, "");
  ssize_t n = readlink(link_path, target, sizeof target - 1);
  if (n <= 9 || strncmp(target, "versions/", 9) != 0) return;
  target[n] = '\0';
  uint8_t label[SDC_LABEL_BYTES] = {0};
  size_t len = (size_t)n - 9;
  if (len >= SDC_LABEL_BYTES) return;
  memcpy(label, target + 9, len);
  if (!sdc_label_valid(label)) return;
  memcpy(out, label, SDC_LABEL_BYTES);
}

void sdc_restore_update_state(sdc_handle* h) {
  read_link(h, "current", h->update.current);
  read_link(h, "previous", h->update.previous);
  read_link(h, "staged", h->update.staged);
}

static void remove_version(const sdc_handle* h, const char* label) {
  if (label[0] == '\0') return;
  char path[PATH_MAX];
  sandbox_path(h, path, sizeof path, "versions/", label);
  unlink(path);
}

uint64_t sdc_current_size_bytes(const sdc_handle* h) {
  if (h->update.current[0] == '\0') return 0;
  char path[PATH_MAX];
  struct stat st;
  sandbox_path(h, path, sizeof path, "versions/", h->update.current);
  return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static uint64_t unix_ms_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int write_all(int fd, const uint8_t* data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;
    data += n;
    len -= (size_t)n;
  }
  return 1;
}

/* Copies src to dst_fd while hashing; refuses more than SDC_ARTIFACT_BYTES_MAX. */
static int copy_and_hash(int src, int dst, uint8_t digest[32], uint64_t* size) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) { EVP_MD_CTX_free(ctx); return SDC_STATUS_IO_ERROR; }
  uint8_t buffer[16384];
  int status = SDC_STATUS_OK;
  *size = 0;
  for (;;) {
    ssize_t n = read(src, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) { status = SDC_STATUS_IO_ERROR; break; }
    if (n == 0) break;
    *size += (uint64_t)n;
    if (*size > SDC_ARTIFACT_BYTES_MAX) { status = SDC_STATUS_BAD_PAYLOAD; break; }
    if (EVP_DigestUpdate(ctx, buffer, (size_t)n) != 1 || !write_all(dst, buffer, (size_t)n)) { status = SDC_STATUS_IO_ERROR; break; }
  }
  unsigned int digest_len = 0;
  if (status == SDC_STATUS_OK && (EVP_DigestFinal_ex(ctx, digest, &digest_len) != 1 || digest_len != 32)) status = SDC_STATUS_IO_ERROR;
  EVP_MD_CTX_free(ctx);
  return status;
}

/*
 * Opens the update source for reading only once it is known to be a regular file. The path is the
 * agent's choice and the signed command does not cover it, and open() itself acts on a device
 * (opening /dev/watchdog arms the watchdog, a tape rewinds, a FIFO releases a blocked writer), so
 * nothing but a regular file may ever be opened: O_PATH|O_NOFOLLOW names the inode without opening
 * it (a symlink as the last component is refused too), fstat checks it, and the read descriptor
 * comes from /proc/self/fd/N, i.e. that same inode, so a path swapped in between changes nothing.
 * Without /proc the path is opened again (O_NOFOLLOW|O_NONBLOCK, no FIFO wait) and must be the
 * same inode: that fallback has the race the kernel-mode driver would not. -1 on any refusal.
 */
static int open_regular_source(const char* source) {
  int pinned = open(source, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (pinned < 0) return -1;
  struct stat st, opened;
  if (fstat(pinned, &st) != 0 || !S_ISREG(st.st_mode)) { close(pinned); return -1; }
  char self[64];
  snprintf(self, sizeof self, "/proc/self/fd/%d", pinned);
  int src = open(self, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (src < 0 && errno == ENOENT) src = open(source, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
  close(pinned);
  if (src < 0) return -1;
  int fl = fcntl(src, F_GETFL);
  if (fstat(src, &opened) != 0 || !S_ISREG(opened.st_mode) || opened.st_dev != st.st_dev || opened.st_ino != st.st_ino ||
      fl < 0 || fcntl(src, F_SETFL, fl & ~O_NONBLOCK) != 0) {
    close(src);
    return -1;
  }
  return src;
}

static int stage_into(sdc_handle* h, const char* label, const char* source, const uint8_t expected[32], uint8_t* payload) {
  if (strcmp(label, h->update.current) == 0 || strcmp(label, h->update.previous) == 0) return SDC_STATUS_BAD_STATE;
  int src = open_regular_source(source);
  if (src < 0) return SDC_STATUS_IO_ERROR;
  char part[PATH_MAX], final_path[PATH_MAX];
  sandbox_path(h, part, sizeof part, "versions/", label);
  memcpy(final_path, part, sizeof part);
  strncat(part, ".part", sizeof part - strlen(part) - 1);
  int dst = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (dst < 0) { close(src); return SDC_STATUS_IO_ERROR; }
  uint8_t digest[32];
  uint64_t size = 0;
  int status = copy_and_hash(src, dst, digest, &size);
  close(src);
  if (status == SDC_STATUS_OK && fsync(dst) != 0) status = SDC_STATUS_IO_ERROR;
  if (close(dst) != 0 && status == SDC_STATUS_OK) status = SDC_STATUS_IO_ERROR;
  if (status == SDC_STATUS_OK && memcmp(digest, expected, 32) != 0) status = SDC_STATUS_DIGEST_MISMATCH;
  if (status == SDC_STATUS_OK && rename(part, final_path) != 0) status = SDC_STATUS_IO_ERROR;
  if (status != SDC_STATUS_OK) { unlink(part); return status; }
  /* The artifact's name in versions/ must be on disk before the staged link points at it. */
  if (!sdc_sync_sandbox(h, "/versions")) return SDC_STATUS_IO_ERROR;
  if (h->update.staged[0] != '\0' && strcmp(h->update.staged, label) != 0) remove_version(h, h->update.staged);
  if (!set_link(h, "staged", label)) return SDC_STATUS_IO_ERROR;
  memcpy(h->update.staged, label, SDC_LABEL_BYTES);
  sdc_label_write(payload + SDC_STAGE_UPDATE_RESPONSE_VERSION_OFFSET, label);
  sdc_wr64(payload + SDC_STAGE_UPDATE_RESPONSE_SIZE_BYTES_OFFSET, size);
  memcpy(payload + SDC_STAGE_UPDATE_RESPONSE_SHA256_OFFSET, digest, 32);
  return SDC_STATUS_OK;
}

int sdc_op_stage_update(sdc_handle* h, const uint8_t* request, uint32_t request_len, uint8_t* payload, uint32_t* payload_len) {
  (void)request_len; /* validated by the dispatcher: 68 + path_len */
  char label[SDC_LABEL_BYTES];
  memcpy(label, request + SDC_STAGE_UPDATE_REQUEST_VERSION_OFFSET, SDC_LABEL_BYTES); /* NUL-terminated: validated */
  uint32_t path_len = sdc_rd16(request + SDC_STAGE_UPDATE_REQUEST_PATH_LEN_OFFSET);
  char source[SDC_UPDATE_PATH_BYTES_MAX + 1];
  memcpy(source, request + SDC_STAGE_UPDATE_REQUEST_BYTES, path_len);
  source[path_len] = '\0';
  int status = stage_into(h, label, source, request + SDC_STAGE_UPDATE_REQUEST_SHA256_OFFSET, payload);
  if (status != SDC_STATUS_OK) {
    h->update.stage_failures++;
    return status;
  }
  *payload_len = SDC_STAGE_UPDATE_RESPONSE_BYTES;
  return SDC_STATUS_OK;
}

static void write_slots(const sdc_handle* h, uint8_t* payload, uint32_t* payload_len) {
  sdc_label_write(payload + SDC_UPDATE_SLOTS_RESPONSE_CURRENT_VERSION_OFFSET, h->update.current);
  sdc_label_write(payload + SDC_UPDATE_SLOTS_RESPONSE_PREVIOUS_VERSION_OFFSET, h->update.previous);
  *payload_len = SDC_UPDATE_SLOTS_RESPONSE_BYTES;
}

/* ---- commit watchdog ---- */

#define WATCHDOG_FILE_BYTES (SDC_LABEL_BYTES + 8u) /* label, the window in ms, the re-arms at open so far (u32 LE each) */

static uint64_t mono_ms_now(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0 || ts.tv_sec < 0) return UINT64_MAX; /* no clock: the watchdog fires (fail safe) */
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* <sandbox>/watchdog names the version on trial and its window: temp file, fsync, rename. */
static int watchdog_persist(const sdc_handle* h, const char* label, uint32_t window_ms, uint32_t rearms) {
  char path[PATH_MAX], tmp[PATH_MAX];
  sandbox_path(h, path, sizeof path, "watchdog", "");
  sandbox_path(h, tmp, sizeof tmp, "watchdog", ".tmp");
  uint8_t body[WATCHDOG_FILE_BYTES];
  sdc_label_write(body, label);
  sdc_wr32(body + SDC_LABEL_BYTES, window_ms);
  sdc_wr32(body + SDC_LABEL_BYTES + 4u, rearms);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return 0;
  int ok = write_all(fd, body, sizeof body) && fsync(fd) == 0;
  if (close(fd) != 0) ok = 0;
  if (ok && rename(tmp, path) != 0) ok = 0;
  if (!ok) unlink(tmp);
  return ok && sdc_sync_sandbox(h, "");
}

static int watchdog_clear(sdc_handle* h) {
  char path[PATH_MAX];
  sandbox_path(h, path, sizeof path, "watchdog", "");
  if (unlink(path) != 0 && errno != ENOENT) return 0;
  /* A removal lost to power loss would re-arm a confirmed version's trial at the next open. */
  if (!sdc_sync_sandbox(h, "")) return 0;
  h->update.watchdog_armed = 0;
  h->update.watchdog_window_ms = 0;
  h->update.watchdog_deadline_ms = 0;
  return 1;
}

uint64_t sdc_watchdog_remaining_ms(const sdc_handle* h) {
  if (!h->update.watchdog_armed) return 0;
  uint64_t now = mono_ms_now();
  return now >= h->update.watchdog_deadline_ms ? 0 : h->update.watchdog_deadline_ms - now;
}

static int hash_file(const char* path, uint8_t digest[32]) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return SDC_STATUS_IO_ERROR;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  int status = SDC_STATUS_OK;
  if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) status = SDC_STATUS_IO_ERROR;
  uint8_t buffer[16384];
  while (status == SDC_STATUS_OK) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) { status = SDC_STATUS_IO_ERROR; break; }
    if (n == 0) break;
    if (EVP_DigestUpdate(ctx, buffer, (size_t)n) != 1) status = SDC_STATUS_IO_ERROR;
  }
  unsigned int digest_len = 0;
  if (status == SDC_STATUS_OK && (EVP_DigestFinal_ex(ctx, digest, &digest_len) != 1 || digest_len != 32)) status = SDC_STATUS_IO_ERROR;
  EVP_MD_CTX_free(ctx);
  close(fd);
  return status;
}

static int all_zero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i++) if (p[i] != 0) return 0;
  return 1;
}

int sdc_op_commit_update(sdc_handle* h, const uint8_t* request, uint8_t* payload, uint32_t* payload_len) {
  const char* label = (const char*)(request + SDC_COMMIT_UPDATE_REQUEST_VERSION_OFFSET);
  if (h->update.staged[0] == '\0' || strcmp(label, h->update.staged) != 0) return SDC_STATUS_BAD_STATE;
  /* An unconfirmed commit is still on trial: committing over it would make it the fallback. */
  if (h->update.watchdog_armed) return SDC_STATUS_BAD_STATE;
  const uint8_t* approved = request + SDC_COMMIT_UPDATE_REQUEST_SHA256_OFFSET;
  if (!all_zero(approved, SDC_COMMIT_UPDATE_REQUEST_SHA256_SIZE)) {
    /* Recomputed over the staged file, not remembered from STAGE. */
    char staged_path[PATH_MAX];
    uint8_t digest[32];
    sandbox_path(h, staged_path, sizeof staged_path, "versions/", h->update.staged);
    int status = hash_file(staged_path, digest);
    if (status != SDC_STATUS_OK) return status;
    if (memcmp(digest, approved, 32) != 0) return SDC_STATUS_DIGEST_MISMATCH;
  }
  /* The first install has nothing to fall back to, so it cannot be on trial: a window (which the
     control plane signs without knowing what the device runs) is then ignored, not refused. */
  uint32_t watchdog_ms = h->update.current[0] == '\0' ? 0u : sdc_rd32(request + SDC_COMMIT_UPDATE_REQUEST_WATCHDOG_MS_OFFSET);
  /* The watchdog file first: a crash after the switch must find the trial recorded. */
  if (watchdog_ms != 0 && !watchdog_persist(h, h->update.staged, watchdog_ms, 0)) return SDC_STATUS_IO_ERROR;
  char old_previous[SDC_LABEL_BYTES];
  memcpy(old_previous, h->update.previous, SDC_LABEL_BYTES);
  /* previous first, then current: a crash in between leaves current intact and previous == current. */
  if (!set_link(h, "previous", h->update.current) || !set_link(h, "current", h->update.staged) || !set_link(h, "staged", "")) {
    sdc_restore_update_state(h);
    if (watchdog_ms != 0 && strcmp(h->update.current, label) != 0) watchdog_clear(h);
    else if (watchdog_ms != 0) { /* current did switch: keep the trial */
      h->update.watchdog_armed = 1;
      h->update.watchdog_window_ms = watchdog_ms;
      h->update.watchdog_deadline_ms = mono_ms_now() + watchdog_ms;
    }
    return SDC_STATUS_IO_ERROR;
  }
  memcpy(h->update.previous, h->update.current, SDC_LABEL_BYTES);
  memcpy(h->update.current, h->update.staged, SDC_LABEL_BYTES);
  h->update.staged[0] = '\0';
  if (strcmp(old_previous, h->update.previous) != 0 && strcmp(old_previous, h->update.current) != 0) remove_version(h, old_previous);
  h->update.commits++;
  h->update.last_commit_unix_ms = unix_ms_now();
  if (watchdog_ms != 0) {
    h->update.watchdog_armed = 1;
    h->update.watchdog_window_ms = watchdog_ms;
    h->update.watchdog_deadline_ms = mono_ms_now() + watchdog_ms;
  }
  write_slots(h, payload, payload_len);
  return SDC_STATUS_OK;
}

static int rollback(sdc_handle* h, int by_watchdog) {
  if (h->update.previous[0] == '\0') return SDC_STATUS_BAD_STATE;
  char old_current[SDC_LABEL_BYTES];
  memcpy(old_current, h->update.current, SDC_LABEL_BYTES);
  if (!set_link(h, "current", h->update.previous) || !set_link(h, "previous", "")) {
    sdc_restore_update_state(h);
    return SDC_STATUS_IO_ERROR;
  }
  memcpy(h->update.current, h->update.previous, SDC_LABEL_BYTES);
  h->update.previous[0] = '\0';
  if (strcmp(old_current, h->update.current) != 0 && strcmp(old_current, h->update.staged) != 0) remove_version(h, old_current);
  /* The trial is over either way; a stale file left by a failed unlink is dropped at the next open (it no longer names current). */
  watchdog_clear(h);
  h->update.watchdog_armed = 0;
  h->update.rollbacks++;
  if (by_watchdog) h->update.watchdog_rollbacks++;
  h->update.last_commit_unix_ms = unix_ms_now();
  return SDC_STATUS_OK;
}

int sdc_op_rollback_update(sdc_handle* h, uint8_t* payload, uint32_t* payload_len) {
  int status = rollback(h, 0);
  if (status == SDC_STATUS_OK) write_slots(h, payload, payload_len);
  return status;
}

int sdc_op_confirm_update(sdc_handle* h, const uint8_t* request, uint8_t* payload, uint32_t* payload_len) {
  const char* label = (const char*)(request + SDC_CONFIRM_UPDATE_REQUEST_VERSION_OFFSET);
  if (!h->update.watchdog_armed || strcmp(label, h->update.current) != 0) return SDC_STATUS_BAD_STATE;
  if (!watchdog_clear(h)) return SDC_STATUS_IO_ERROR; /* still armed: a reopen would find the trial */
  h->update.confirms++;
  write_slots(h, payload, payload_len);
  return SDC_STATUS_OK;
}

/* Called at the start of every call: an expired trial rolls back; a failed rollback stays armed and is retried. */
void sdc_watchdog_check(sdc_handle* h) {
  if (!h->update.watchdog_armed || mono_ms_now() < h->update.watchdog_deadline_ms) return;
  if (h->update.previous[0] == '\0') { watchdog_clear(h); h->update.watchdog_armed = 0; return; }
  (void)rollback(h, 1);
}

/*
 * At open: a watchdog file naming the current version (with a previous one to fall back to) is
 * armed again with its whole window from now: the monotonic clock does not survive a reboot, and
 * the restarted system gets the full window to confirm. At most SDC_WATCHDOG_REARMS_MAX times: a
 * service that keeps restarting before it confirms (a crash loop) is rolled back at the next open,
 * as a bootloader's boot counter would. Anything else is stale and removed.
 */
void sdc_restore_watchdog(sdc_handle* h) {
  char path[PATH_MAX];
  sandbox_path(h, path, sizeof path, "watchdog", "");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  uint8_t body[WATCHDOG_FILE_BYTES + 1];
  ssize_t n = read(fd, body, sizeof body);
  close(fd);
  int sized = n == (ssize_t)WATCHDOG_FILE_BYTES;
  uint32_t window_ms = sized ? sdc_rd32(body + SDC_LABEL_BYTES) : 0;
  uint32_t rearms = sized ? sdc_rd32(body + SDC_LABEL_BYTES + 4u) : 0;
  if (!sized || !sdc_label_valid(body) || strcmp((const char*)body, h->update.current) != 0 ||
      h->update.previous[0] == '\0' || window_ms < SDC_WATCHDOG_WINDOW_MS_MIN || window_ms > SDC_WATCHDOG_WINDOW_MS_MAX) {
    unlink(path);
    return;
  }
  h->update.watchdog_armed = 1;
  h->update.watchdog_window_ms = window_ms;
  if (rearms >= SDC_WATCHDOG_REARMS_MAX || !watchdog_persist(h, h->update.current, window_ms, rearms + 1)) {
    (void)rollback(h, 1); /* out of restarts (or cannot count this one): the trial failed */
    return;
  }
  h->update.watchdog_deadline_ms = mono_ms_now() + window_ms;
}
