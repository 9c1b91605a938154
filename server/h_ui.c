/*
 * h_ui.c — the dashboard: its static files (ui/index.html, ui/app.js,
 * ui/app.css), embedded into the binary at build time with .incbin (paths
 * relative to the repository root, where make runs the compiler; the
 * dependency is in tests/server/server.mk), so the page needs no network
 * and no file beside the binary; and GET /v1/params, the parameter table
 * and the presets the page builds its job form from. See handlers.h for
 * how a handler answers.
 */
#include <string.h>

#include "codec.h"
#include "handlers.h"

#define EMBED(name, file)                                                      \
  __asm__(".section .rodata\n"                                                 \
          ".balign 16\n" #name "_start:\n"                                     \
          ".incbin \"" file "\"\n" #name "_end:\n"                             \
          ".byte 0\n"                                                          \
          ".previous\n");                                                      \
  extern const char name##_start[], name##_end[];

EMBED(lsmi__ui_index, "ui/index.html")
EMBED(lsmi__ui_js, "ui/app.js")
EMBED(lsmi__ui_css, "ui/app.css")

typedef struct asset {
  const char *path, *ctype;
  const char *start, *end;
} asset_t;

static const asset_t assets[] = {
    {"/", "text/html; charset=utf-8", lsmi__ui_index_start,
     lsmi__ui_index_end},
    {"/ui/app.js", "text/javascript; charset=utf-8", lsmi__ui_js_start,
     lsmi__ui_js_end},
    {"/ui/app.css", "text/css; charset=utf-8", lsmi__ui_css_start,
     lsmi__ui_css_end},
};

int lsmi_h_ui(lsmi_req_t *r) {
  size_t len = strlen(r->path);
  if (len > 1 && r->path[len - 1] == '/')
    len--;
  for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++) {
    const asset_t *a = &assets[i];
    if (strlen(a->path) != len || strncmp(a->path, r->path, len))
      continue;
    /* The page talks only to this origin; nothing may frame it. */
    lsmi_hdr_t hd[] = {
        {"Content-Security-Policy",
         "default-src 'self'; img-src 'self' data: blob:; "
         "frame-ancestors 'none'"},
        {"X-Content-Type-Options", "nosniff"},
        {NULL, NULL}};
    return lsmi_http_reply(r, 200, a->ctype, (char *)a->start,
                           (size_t)(a->end - a->start), true, hd);
  }
  return lsmi_error_set(&r->err, LSMI_ERR_NOTFOUND, NULL,
                        "no such resource: %s", r->path);
}

static const char *type_name(lsmi_param_type_t t) {
  switch (t) {
  case LSMI_PARAM_INT:
  case LSMI_PARAM_UINT64:
    return "integer";
  case LSMI_PARAM_DOUBLE:
    return "number";
  case LSMI_PARAM_BOOL:
    return "boolean";
  default:
    return "string";
  }
}

/* One row of the table, with its default. */
static json_t *param_json(const lsmi_param_desc_t *d, const json_t *defaults) {
  char flag[64];
  snprintf(flag, sizeof flag, "--%s", d->name);
  for (char *p = flag; *p; p++)
    if (*p == '_')
      *p = '-';
  json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:O}", "name", d->name, "type",
                        type_name(d->type), "flag", flag, "help", d->help,
                        "default", json_object_get(defaults, d->name));
  if (o == NULL)
    return NULL;
  if (d->type == LSMI_PARAM_ENUM) {
    json_t *c = json_array();
    for (const char *const *k = d->choices; k && *k; k++)
      json_array_append_new(c, json_string(*k));
    json_object_set_new(o, "choices", c);
  } else if (d->type != LSMI_PARAM_BOOL) {
    json_object_set_new(o, "min", json_real(d->min));
    json_object_set_new(o, "max", json_real(d->max));
    json_object_set_new(o, "min_exclusive", json_boolean(d->min_exclusive));
  }
  return o;
}

int lsmi_h_params(lsmi_req_t *r) {
  lsmi_params_t p;
  lsmi_params_default(&p);
  json_t *defaults = lsmi_codec_params_to_json(&p);
  lsmi_params_preset(&p, LSMI_PRESET_ROBUST);
  json_t *robust = lsmi_codec_params_to_json(&p);
  size_t n = 0;
  const lsmi_param_desc_t *t = lsmi_params_table(&n);
  json_t *rows = json_array();
  for (size_t i = 0; rows && i < n; i++)
    json_array_append_new(rows, param_json(&t[i], defaults));
  json_t *o = json_pack("{s:o, s:{s:O, s:o}}", "params", rows, "presets",
                        "published", defaults, "robust", robust);
  json_decref(defaults);
  if (o == NULL)
    return lsmi_error_set(&r->err, LSMI_ERR_NOMEM, NULL, "out of memory");
  return lsmi_http_reply_json(r, 200, o, NULL);
}
