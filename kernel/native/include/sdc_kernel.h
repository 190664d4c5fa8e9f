/*
 * Secure Device Control kernel service: a user-mode library with a DeviceIoControl-shaped entry
 * point. The byte layouts, codes and statuses are in sdc_kernel_contract.h (generated from
 * kernel/contract.json); docs/kernel-contract.md explains them.
 */
#ifndef SDC_KERNEL_H
#define SDC_KERNEL_H

#include <stdint.h>
#include "sdc_kernel_contract.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define SDC_API __declspec(dllexport)
#else
#define SDC_API __attribute__((visibility("default")))
#endif

/* sdc_open flags */
#define SDC_OPEN_NO_LOCK_SCREEN 0x1u /* never run the session manager; EXEC_LOCK_SCREEN answers NOT_SUPPORTED */

/*
 * Opens a kernel service instance.
 *   sandbox_dir: existing directory owned by the service; updates live in sandbox_dir/versions and
 *                the symlinks current, previous and staged (restored from disk on open).
 *   agent_public_key_path: file of exactly 32 raw bytes, the agent's Ed25519 public key.
 *   service_seed_path: file of exactly 32 raw bytes, the service's Ed25519 private seed.
 * Returns NULL on failure with *status_out = SDC_STATUS_IO_ERROR (files, sandbox) or
 * SDC_STATUS_BAD_LENGTH (key file not 32 bytes); SDC_STATUS_OK on success.
 */
SDC_API void* sdc_open(const char* sandbox_dir, const char* agent_public_key_path,
                       const char* service_seed_path, uint32_t flags, int32_t* status_out);

/* Closes the handle; NULL is ignored. The handle must not be used afterwards. */
SDC_API void sdc_close(void* handle);

/* Copies the service's 32-byte Ed25519 public key into out. Returns a status. */
SDC_API int sdc_service_public_key(void* handle, uint8_t* out, uint32_t out_len);

/*
 * Executes one request. Returns the response status (also in the response header when a
 * response is written). Writes at most out_len bytes; *bytes_returned is the response length
 * (0 when nothing is written: BAD_HANDLE, or out_len below header + signature).
 */
SDC_API int sdc_device_io_control(void* handle, uint32_t code, const void* in, uint32_t in_len,
                                  void* out, uint32_t out_len, uint32_t* bytes_returned);

#ifdef __cplusplus
}
#endif

#endif /* SDC_KERNEL_H */
