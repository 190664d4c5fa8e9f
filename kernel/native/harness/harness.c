/*
 * Replays a corpus of requests through sdc_device_io_control, for the sanitizer run.
 * Corpus records: u32 code, u32 in_len, u32 out_len, in_len bytes (all little-endian).
 * Checks after every call: bytes_returned <= out_len and the status is a defined one.
 * Usage: sdc_kernel_harness SANDBOX AGENT_PUB SERVICE_SEED CORPUS
 * Prints "calls=<n> statuses=<s0>,<s1>,..." (count per status) and exits 0, or 1 on a violation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sdc_kernel.h"

#define STATUS_COUNT 24
#define RECORD_BYTES_MAX (4u * 1024u * 1024u)

static int read_u32(FILE* f, uint32_t* value) {
  uint8_t b[4];
  if (fread(b, 1, 4, f) != 4) return 0;
  *value = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 5) { fprintf(stderr, "usage: %s SANDBOX AGENT_PUB SERVICE_SEED CORPUS\n", argv[0]); return 2; }
  int32_t open_status = -1;
  void* handle = sdc_open(argv[1], argv[2], argv[3], SDC_OPEN_NO_LOCK_SCREEN, &open_status);
  if (handle == NULL) { fprintf(stderr, "sdc_open failed: %d\n", open_status); return 2; }
  FILE* corpus = fopen(argv[4], "rb");
  if (corpus == NULL) { perror("corpus"); return 2; }
  unsigned long counts[STATUS_COUNT] = {0};
  unsigned long calls = 0;
  int violation = 0;
  uint32_t code, in_len, out_len;
  while (read_u32(corpus, &code) && read_u32(corpus, &in_len) && read_u32(corpus, &out_len)) {
    if (in_len > RECORD_BYTES_MAX || out_len > RECORD_BYTES_MAX) { fprintf(stderr, "record too large\n"); violation = 1; break; }
    /* Exact-size heap buffers, so ASan reports any read or write past in_len / out_len. */
    uint8_t* in = malloc(in_len ? in_len : 1);
    uint8_t* out = malloc(out_len ? out_len : 1);
    if (in == NULL || out == NULL || fread(in, 1, in_len, corpus) != in_len) { free(in); free(out); violation = 1; break; }
    uint32_t returned = 0xFFFFFFFFu;
    int status = sdc_device_io_control(handle, code, in_len ? in : NULL, in_len, out_len ? out : NULL, out_len, &returned);
    calls++;
    if (status < 0 || status >= STATUS_COUNT || returned > out_len) {
      fprintf(stderr, "violation at call %lu: status=%d returned=%u out_len=%u\n", calls, status, returned, out_len);
      violation = 1;
    } else {
      counts[status]++;
    }
    free(in);
    free(out);
  }
  fclose(corpus);
  sdc_close(handle);
  printf("calls=%lu statuses=", calls);
  for (int i = 0; i < STATUS_COUNT; i++) printf("%s%lu", i ? "," : "", counts[i]);
  printf("\n");
  return violation;
}
