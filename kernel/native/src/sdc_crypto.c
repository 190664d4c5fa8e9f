/* Ed25519 through OpenSSL's EVP interface (pure Ed25519: no digest, one-shot sign/verify). */
#include <openssl/evp.h>
#include "sdc_internal.h"

EVP_PKEY* sdc_key_from_public(const uint8_t public_key[32]) {
  return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, public_key, 32);
}

EVP_PKEY* sdc_key_from_seed(const uint8_t seed[32]) {
  return EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
}

int sdc_key_public_bytes(EVP_PKEY* key, uint8_t out[32]) {
  size_t len = 32;
  return EVP_PKEY_get_raw_public_key(key, out, &len) == 1 && len == 32;
}

int sdc_verify(EVP_PKEY* key, const uint8_t* message, size_t message_len, const uint8_t signature[64]) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == NULL) return 0;
  int ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
           EVP_DigestVerify(ctx, signature, 64, message, message_len) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

int sdc_sign(EVP_PKEY* key, const uint8_t* message, size_t message_len, uint8_t signature[64]) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == NULL) return 0;
  size_t len = 64;
  int ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
           EVP_DigestSign(ctx, signature, &len, message, message_len) == 1 && len == 64;
  EVP_MD_CTX_free(ctx);
  return ok;
}
