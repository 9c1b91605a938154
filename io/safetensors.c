/*
 * safetensors.c — Hugging Face .safetensors files.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON
 * ({"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
 * "__metadata__": {...}}), then the data region that the offsets index.
 * N is checked against max_header_bytes and the file before the header is
 * parsed (jansson, duplicate keys rejected); every tensor's offsets are
 * checked against the data region and its byte count against shape x dtype
 * in overflow-safe arithmetic. Tensors are read in place (little endian,
 * C order); tensors whose names play no role (lsmi__key_role) are ignored.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "dsio.h"

static const struct {
  const char *name;
  lsmi__dtype_t dt;
} dtypes[] = {
    {"F64", LSMI__DT_F64},   {"F32", LSMI__DT_F32}, {"F16", LSMI__DT_F16},
    {"BF16", LSMI__DT_BF16}, {"I64", LSMI__DT_I64}, {"I32", LSMI__DT_I32},
    {"I16", LSMI__DT_I16},   {"I8", LSMI__DT_I8},   {"U64", LSMI__DT_U64},
    {"U32", LSMI__DT_U32},   {"U16", LSMI__DT_U16}, {"U8", LSMI__DT_U8},
    {"BOOL", LSMI__DT_BOOL}};

static int read_tensor(const char *key, json_t *info, const unsigned char *data,
                       uint64_t dlen, const lsmi_limits_t *lim,
                       lsmi__arrays_t *as, int role, lsmi_error_t *err) {
  json_t *dt = json_object_get(info, "dtype");
  json_t *shape = json_object_get(info, "shape");
  json_t *offs = json_object_get(info, "data_offsets");
  if (!json_is_string(dt) || !json_is_array(shape) || !json_is_array(offs) ||
      json_array_size(offs) != 2 || !json_is_integer(json_array_get(offs, 0)) ||
      !json_is_integer(json_array_get(offs, 1)))
    return lsmi_error_set(err, LSMI_ERR_FORMAT, key,
                          "safetensors header entry %s lacks dtype, shape or "
                          "data_offsets",
                          key);
  lsmi__array_t a;
  memset(&a, 0, sizeof a);
  snprintf(a.key, sizeof a.key, "%s", key);
  bool known = false;
  for (size_t k = 0; k < sizeof dtypes / sizeof dtypes[0]; k++)
    if (strcmp(json_string_value(dt), dtypes[k].name) == 0) {
      a.dtype = dtypes[k].dt;
      known = true;
    }
  if (!known)
    return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, key,
                          "%s has dtype %.32s, which is not supported", key,
                          json_string_value(dt));
  if (json_array_size(shape) > LSMI__MAX_NDIM)
    return lsmi_error_set(err, LSMI_ERR_SHAPE, key,
                          "%s has %zu dimensions; at most %d are supported",
                          key, json_array_size(shape), LSMI__MAX_NDIM);
  uint64_t numel = 1;
  bool overflow = false;
  a.ndim = (int)json_array_size(shape);
  for (int d = 0; d < a.ndim; d++) {
    json_t *v = json_array_get(shape, (size_t)d);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
      return lsmi_error_set(err, LSMI_ERR_FORMAT, key,
                            "%s: shape holds a non-integer or negative size",
                            key);
    a.shape[d] = (uint64_t)json_integer_value(v);
    if (!lsmi__mul_u64(numel, a.shape[d], &numel))
      overflow = true;
  }
  char shp[160];
  lsmi__shape_str(&a, shp, sizeof shp);
  uint64_t bytes;
  if (overflow || !lsmi__mul_u64(numel, lsmi__dtype_size(a.dtype), &bytes))
    return lsmi_error_set(err, LSMI_ERR_LIMIT, key,
                          "%s has shape %s: its size overflows", key, shp);
  json_int_t b = json_integer_value(json_array_get(offs, 0));
  json_int_t e = json_integer_value(json_array_get(offs, 1));
  if (b < 0 || e < b || (uint64_t)e > dlen)
    return lsmi_error_set(err, LSMI_ERR_FORMAT, key,
                          "%s: data_offsets [%lld, %lld] lie outside the %llu "
                          "bytes of data (truncated?)",
                          key, (long long)b, (long long)e,
                          (unsigned long long)dlen);
  if ((uint64_t)(e - b) != bytes)
    return lsmi_error_set(err, LSMI_ERR_FORMAT, key,
                          "%s has shape %s (%s, %llu bytes) but its "
                          "data_offsets span %lld bytes",
                          key, shp, lsmi__dtype_name(a.dtype),
                          (unsigned long long)bytes, (long long)(e - b));
  a.data = data + b;
  a.data_len = (size_t)bytes;
  lsmi__strides_c(&a);
  return lsmi__arrays_put(as, role, &a, lim, err);
}

int lsmi__read_safetensors(const unsigned char *buf, size_t len,
                           const lsmi_limits_t *lim, lsmi__arrays_t *as,
                           lsmi_error_t *err) {
  if (len < 8)
    return lsmi_error_set(err, LSMI_ERR_FORMAT, "",
                          "safetensors file shorter than its 8-byte header "
                          "length");
  uint64_t n = lsmi__le64(buf);
  if (n > lim->max_header_bytes)
    return lsmi_error_set(err, LSMI_ERR_LIMIT, "",
                          "safetensors header of %llu bytes exceeds the "
                          "limit %llu",
                          (unsigned long long)n,
                          (unsigned long long)lim->max_header_bytes);
  if (n > len - 8)
    return lsmi_error_set(err, LSMI_ERR_FORMAT, "",
                          "safetensors header says %llu bytes but the file "
                          "has %zu (truncated?)",
                          (unsigned long long)n, len - 8);
  json_error_t jerr;
  json_t *h = json_loadb((const char *)buf + 8, (size_t)n,
                         JSON_REJECT_DUPLICATES, &jerr);
  if (!h || !json_is_object(h)) {
    json_decref(h);
    return lsmi_error_set(err, LSMI_ERR_FORMAT, "",
                          "safetensors header is not a JSON object: %s",
                          h ? "wrong type" : jerr.text);
  }
  const unsigned char *data = buf + 8 + n;
  uint64_t dlen = len - 8 - n;
  const char *key;
  json_t *info;
  int rc = 0;
  json_object_foreach(h, key, info) {
    if (strcmp(key, "__metadata__") != 0)
      lsmi__arrays_seen(as, key);
    int role = lsmi__key_role(as, -1, key);
    if (role < 0)
      continue;
    if (!json_is_object(info)) {
      rc = lsmi_error_set(err, LSMI_ERR_FORMAT, key,
                          "safetensors header entry %s is not an object", key);
      break;
    }
    rc = read_tensor(key, info, data, dlen, lim, as, role, err);
    if (rc)
      break;
  }
  json_decref(h);
  return rc;
}
