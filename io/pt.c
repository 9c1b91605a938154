/*
 * pt.c — PyTorch files: the zip format that torch.save has written since
 * 1.6, read with a restricted unpickler.
 *
 * A torch.save file is a zip holding "<name>/data.pkl" (a pickle of the saved
 * object in which every storage is a persistent id), "<name>/data/<key>"
 * (the raw bytes of each storage, little endian unless "<name>/byteorder"
 * says "big") and some version records. We accept exactly what torch.save
 * emits for a dict of tensors:
 *
 *   globals   torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter,
 *             collections.OrderedDict, torch.<Type>Storage (Float, Double,
 *             Half, BFloat16, Long, Int, Short, Char, Byte, Bool)
 *   values    None, bools, ints, floats, strings, tuples, lists, dicts
 *   opcodes   the protocol 2-5 subset that builds those (listed in run());
 *
 * and refuse everything else by name ("unsupported pickle global
 * os.system", "unsupported pickle opcode 'i' (INST)"), before anything is
 * called: REDUCE on an allowed global is interpreted, never executed. The
 * machine is a loop over opcodes with an explicit stack, memo and mark
 * list, all allocated from one arena released at the end; no recursion, so
 * nesting depth cannot overflow the C stack, and the pickle itself is
 * bounded by max_header_bytes, which bounds the work.
 *
 * Tensors become strided views (offset, sizes, strides in elements, turned
 * into bytes here) into their storage member, read once per storage key so
 * that tensors sharing a storage share its bytes. The legacy pre-zip format
 * (a bare pickle stream) is refused with an 'unsupported' error that says
 * how to re-save the file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsio.h"
#include "zip.h"

/* ---- arena ---- */

typedef struct chunk {
  struct chunk *next;
  size_t used, cap;
  unsigned char data[];
} chunk_t;

typedef struct arena {
  chunk_t *head;
} arena_t;

static void *arena_alloc(arena_t *a, size_t size) {
  size = (size + 15) & ~(size_t)15;
  if (!a->head || a->head->cap - a->head->used < size) {
    size_t cap = size > 65536 ? size : 65536;
    chunk_t *c = malloc(sizeof *c + cap);
    if (!c)
      return NULL;
    c->cap = cap;
    c->used = 0;
    c->next = a->head;
    a->head = c;
  }
  void *p = a->head->data + a->head->used;
  a->head->used += size;
  return p;
}

static void arena_free(arena_t *a) {
  while (a->head) {
    chunk_t *n = a->head->next;
    free(a->head);
    a->head = n;
  }
}

/* ---- values ---- */

enum {
  V_NONE,
  V_BOOL,
  V_INT,
  V_FLOAT,
  V_STR,
  V_TUPLE,
  V_LIST,
  V_DICT, /* items hold key, value, key, value ... */
  V_GLOBAL,
  V_STORAGE,
  V_TENSOR
};

enum { G_REBUILD_TENSOR, G_REBUILD_PARAMETER, G_ORDERED_DICT, G_STORAGE };

typedef struct pv {
  int t;
  int64_t i;         /* V_BOOL, V_INT; V_GLOBAL: which G_ */
  const char *s;     /* V_STR (NUL-terminated copy), V_STORAGE: key */
  size_t len;        /* V_STR */
  struct pv **items; /* V_TUPLE, V_LIST, V_DICT */
  size_t n, cap;
  lsmi__dtype_t dtype; /* V_GLOBAL of a storage class, V_STORAGE, V_TENSOR */
  uint64_t numel;      /* V_STORAGE */
  struct tensor *tn;   /* V_TENSOR */
} pv_t;

/* Kept apart from pv_t so that the many small values of a pickle stay
 * small: a hostile data.pkl of one-byte opcodes costs at most about 80
 * bytes per byte. */
typedef struct tensor {
  pv_t *storage;
  uint64_t offset; /* elements */
  int ndim;
  uint64_t shape[LSMI__MAX_NDIM], stride[LSMI__MAX_NDIM];
} tensor_t;

typedef struct vm {
  arena_t arena;
  const unsigned char *p, *end;
  pv_t **stack;
  size_t sp, scap;
  size_t *marks;
  size_t nmarks, mcap;
  pv_t **memo;
  size_t memo_cap;
  size_t total; /* pickle length: bounds the memo */
  lsmi_error_t *err;
} vm_t;

static int nomem(vm_t *m) {
  return lsmi_error_set(m->err, LSMI_ERR_NOMEM, "data.pkl",
                        "out of memory unpickling data.pkl");
}

static int malformed(vm_t *m, const char *what) {
  return lsmi_error_set(m->err, LSMI_ERR_FORMAT, "data.pkl",
                        "malformed pickle in data.pkl: %s", what);
}

static pv_t *new_value(vm_t *m, int t) {
  pv_t *v = arena_alloc(&m->arena, sizeof *v);
  if (v) {
    memset(v, 0, sizeof *v);
    v->t = t;
  }
  return v;
}

/* Grows a dynamic array held in the arena (the old block stays until the
 * arena goes: at most twice the final size in total). */
static bool grow(vm_t *m, void **items, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap)
    return true;
  size_t nc = *cap ? *cap * 2 : 8;
  while (nc < need)
    nc *= 2;
  void *p = arena_alloc(&m->arena, nc * elem);
  if (!p)
    return false;
  if (*cap)
    memcpy(p, *items, *cap * elem);
  /* The arena does not zero: the memo relies on unset slots being NULL. */
  memset((char *)p + *cap * elem, 0, (nc - *cap) * elem);
  *items = p;
  *cap = nc;
  return true;
}

static int push(vm_t *m, pv_t *v) {
  if (!v)
    return nomem(m);
  if (m->sp == m->scap) {
    size_t nc = m->scap ? m->scap * 2 : 64;
    pv_t **ns = realloc(m->stack, nc * sizeof *ns);
    if (!ns)
      return nomem(m);
    m->stack = ns;
    m->scap = nc;
  }
  m->stack[m->sp++] = v;
  return 0;
}

static pv_t *pop(vm_t *m) {
  if (m->sp == 0 || (m->nmarks && m->sp <= m->marks[m->nmarks - 1]))
    return NULL;
  return m->stack[--m->sp];
}

/* Pops everything above the last mark into a new sequence value. */
static pv_t *pop_to_mark(vm_t *m, int t) {
  if (m->nmarks == 0)
    return NULL;
  size_t base = m->marks[--m->nmarks];
  pv_t *v = new_value(m, t);
  if (!v)
    return NULL;
  size_t n = m->sp - base;
  v->items = arena_alloc(&m->arena, (n ? n : 1) * sizeof *v->items);
  if (!v->items)
    return NULL;
  memcpy(v->items, m->stack + base, n * sizeof *v->items);
  v->n = v->cap = n;
  m->sp = base;
  return v;
}

static bool take(vm_t *m, size_t k, const unsigned char **q) {
  if ((size_t)(m->end - m->p) < k)
    return false;
  *q = m->p;
  m->p += k;
  return true;
}

static pv_t *new_str(vm_t *m, const unsigned char *s, size_t len) {
  pv_t *v = new_value(m, V_STR);
  if (!v)
    return NULL;
  char *c = arena_alloc(&m->arena, len + 1);
  if (!c)
    return NULL;
  memcpy(c, s, len);
  c[len] = '\0';
  v->s = c;
  v->len = len;
  return v;
}

static const struct {
  const char *name;
  lsmi__dtype_t dt;
} storages[] = {
    {"FloatStorage", LSMI__DT_F32}, {"DoubleStorage", LSMI__DT_F64},
    {"HalfStorage", LSMI__DT_F16},  {"BFloat16Storage", LSMI__DT_BF16},
    {"LongStorage", LSMI__DT_I64},  {"IntStorage", LSMI__DT_I32},
    {"ShortStorage", LSMI__DT_I16}, {"CharStorage", LSMI__DT_I8},
    {"ByteStorage", LSMI__DT_U8},   {"BoolStorage", LSMI__DT_BOOL}};

/* The allow-list: anything else is refused by its name. */
static bool allowed_global(const char *mod, size_t ml, const char *name,
                           size_t nl, int64_t *kind, lsmi__dtype_t *dt) {
#define IS(s, l, lit) ((l) == sizeof(lit) - 1 && memcmp((s), (lit), (l)) == 0)
  *dt = LSMI__DT_U8;
  if (IS(mod, ml, "torch._utils") && IS(name, nl, "_rebuild_tensor_v2")) {
    *kind = G_REBUILD_TENSOR;
    return true;
  }
  if (IS(mod, ml, "torch._utils") && IS(name, nl, "_rebuild_parameter")) {
    *kind = G_REBUILD_PARAMETER;
    return true;
  }
  if (IS(mod, ml, "collections") && IS(name, nl, "OrderedDict")) {
    *kind = G_ORDERED_DICT;
    return true;
  }
  if (IS(mod, ml, "torch")) {
    for (size_t k = 0; k < sizeof storages / sizeof storages[0]; k++) {
      if (nl == strlen(storages[k].name) &&
          memcmp(name, storages[k].name, nl) == 0) {
        *kind = G_STORAGE;
        *dt = storages[k].dt;
        return true;
      }
    }
  }
  return false;
#undef IS
}

static int refuse_global(vm_t *m, const char *mod, size_t ml, const char *name,
                         size_t nl) {
  int a = ml > 100 ? 100 : (int)ml, b = nl > 100 ? 100 : (int)nl;
  return lsmi_error_set(m->err, LSMI_ERR_UNSUPPORTED, "data.pkl",
                        "unsupported pickle global %.*s.%.*s: only tensors "
                        "saved by torch.save in a dict are accepted",
                        a, mod, b, name);
}

static int push_global(vm_t *m, const char *mod, size_t ml, const char *name,
                       size_t nl) {
  int64_t kind;
  lsmi__dtype_t dt;
  if (!allowed_global(mod, ml, name, nl, &kind, &dt))
    return refuse_global(m, mod, ml, name, nl);
  pv_t *g = new_value(m, V_GLOBAL);
  if (!g)
    return nomem(m);
  g->i = kind;
  g->dtype = dt;
  return push(m, g);
}

static bool is_uint(const pv_t *v) { return v && v->t == V_INT && v->i >= 0; }

/* ('storage', <Type>Storage, key, location, numel) -> V_STORAGE */
static int persistent_load(vm_t *m, pv_t *pid) {
  if (!pid || pid->t != V_TUPLE || pid->n != 5 || pid->items[0]->t != V_STR ||
      strcmp(pid->items[0]->s, "storage") != 0 ||
      pid->items[1]->t != V_GLOBAL || pid->items[1]->i != G_STORAGE ||
      pid->items[2]->t != V_STR || !is_uint(pid->items[4]))
    return malformed(m, "a persistent id is not a torch storage reference");
  pv_t *s = new_value(m, V_STORAGE);
  if (!s)
    return nomem(m);
  s->dtype = pid->items[1]->dtype;
  s->s = pid->items[2]->s;
  s->numel = (uint64_t)pid->items[4]->i;
  return push(m, s);
}

static int rebuild_tensor(vm_t *m, pv_t *args) {
  if (!args || args->t != V_TUPLE || args->n < 4 ||
      args->items[0]->t != V_STORAGE || !is_uint(args->items[1]) ||
      args->items[2]->t != V_TUPLE || args->items[3]->t != V_TUPLE ||
      args->items[2]->n != args->items[3]->n)
    return malformed(m, "bad arguments to _rebuild_tensor_v2");
  pv_t *size = args->items[2], *stride = args->items[3];
  if (size->n > LSMI__MAX_NDIM)
    return lsmi_error_set(m->err, LSMI_ERR_SHAPE, "data.pkl",
                          "a tensor has %zu dimensions; at most 2 are "
                          "meaningful",
                          size->n);
  pv_t *v = new_value(m, V_TENSOR);
  tensor_t *t = arena_alloc(&m->arena, sizeof *t);
  if (!v || !t)
    return nomem(m);
  memset(t, 0, sizeof *t);
  v->tn = t;
  t->storage = args->items[0];
  v->dtype = t->storage->dtype;
  t->offset = (uint64_t)args->items[1]->i;
  t->ndim = (int)size->n;
  for (size_t k = 0; k < size->n; k++) {
    if (!is_uint(size->items[k]))
      return malformed(m, "a tensor size is not a non-negative int");
    if (!is_uint(stride->items[k]))
      return lsmi_error_set(m->err, LSMI_ERR_UNSUPPORTED, "data.pkl",
                            "tensors with negative strides are not "
                            "supported");
    t->shape[k] = (uint64_t)size->items[k]->i;
    t->stride[k] = (uint64_t)stride->items[k]->i;
  }
  return push(m, v);
}

static int reduce(vm_t *m) {
  pv_t *args = pop(m), *f = pop(m);
  if (!args || !f)
    return malformed(m, "REDUCE on an empty stack");
  if (f->t != V_GLOBAL)
    return malformed(m, "REDUCE of something that is not a global");
  switch (f->i) {
  case G_REBUILD_TENSOR:
    return rebuild_tensor(m, args);
  case G_REBUILD_PARAMETER:
    /* (data, requires_grad, backward_hooks): the data tensor itself. */
    if (args->t != V_TUPLE || args->n < 1 || args->items[0]->t != V_TENSOR)
      return malformed(m, "bad arguments to _rebuild_parameter");
    return push(m, args->items[0]);
  case G_ORDERED_DICT:
    if (args->t != V_TUPLE || args->n != 0)
      return lsmi_error_set(m->err, LSMI_ERR_UNSUPPORTED, "data.pkl",
                            "OrderedDict built from arguments is not "
                            "supported");
    return push(m, new_value(m, V_DICT));
  default:
    return malformed(m, "a storage class cannot be called");
  }
}

static int add_items(vm_t *m, pv_t *target, pv_t **items, size_t n) {
  if (!grow(m, (void **)&target->items, &target->cap, target->n + n,
            sizeof *target->items))
    return nomem(m);
  memcpy(target->items + target->n, items, n * sizeof *items);
  target->n += n;
  return 0;
}

static int memo_put(vm_t *m, uint64_t idx) {
  if (m->sp == 0)
    return malformed(m, "memo put on an empty stack");
  /* A memo index never exceeds the number of opcodes, which the pickle's
   * length bounds. */
  if (idx >= m->total)
    return malformed(m, "memo index out of range");
  if (!grow(m, (void **)&m->memo, &m->memo_cap, (size_t)idx + 1,
            sizeof *m->memo))
    return nomem(m);
  m->memo[idx] = m->stack[m->sp - 1];
  return 0;
}

static int memo_get(vm_t *m, uint64_t idx) {
  if (idx >= m->memo_cap || !m->memo[idx])
    return malformed(m, "memo get of an unset index");
  return push(m, m->memo[idx]);
}

/* Runs the pickle to STOP; *result gets the top of the stack. */
static int run(vm_t *m, pv_t **result) {
  const unsigned char *q;
  size_t memo_n = 0;
  for (;;) {
    if (m->p >= m->end)
      return malformed(m, "no STOP opcode (truncated?)");
    unsigned char op = *m->p++;
    int rc = 0;
    switch (op) {
    case 0x80: /* PROTO */
      if (!take(m, 1, &q))
        return malformed(m, "truncated PROTO");
      break;
    case 0x95: /* FRAME */
      if (!take(m, 8, &q))
        return malformed(m, "truncated FRAME");
      break;
    case '.': /* STOP */
      *result = pop(m);
      return *result ? 0 : malformed(m, "STOP on an empty stack");
    case '}': /* EMPTY_DICT */
      rc = push(m, new_value(m, V_DICT));
      break;
    case ']': /* EMPTY_LIST */
      rc = push(m, new_value(m, V_LIST));
      break;
    case ')': /* EMPTY_TUPLE */
      rc = push(m, new_value(m, V_TUPLE));
      break;
    case 'N':
      rc = push(m, new_value(m, V_NONE));
      break;
    case 0x88: /* NEWTRUE */
    case 0x89: /* NEWFALSE */ {
      pv_t *v = new_value(m, V_BOOL);
      if (v)
        v->i = op == 0x88;
      rc = push(m, v);
      break;
    }
    case '(': /* MARK */
      if (m->nmarks == m->mcap) {
        size_t nc = m->mcap ? m->mcap * 2 : 16;
        size_t *nm = realloc(m->marks, nc * sizeof *nm);
        if (!nm)
          return nomem(m);
        m->marks = nm;
        m->mcap = nc;
      }
      m->marks[m->nmarks++] = m->sp;
      break;
    case 't': /* TUPLE */
    case 'l': /* LIST */ {
      if (m->nmarks == 0)
        return malformed(m, "TUPLE/LIST without MARK");
      pv_t *v = pop_to_mark(m, op == 't' ? V_TUPLE : V_LIST);
      rc = push(m, v);
      break;
    }
    case 'd': /* DICT */ {
      if (m->nmarks == 0)
        return malformed(m, "DICT without MARK");
      pv_t *v = pop_to_mark(m, V_DICT);
      if (v && v->n % 2)
        return malformed(m, "DICT with an odd number of items");
      rc = push(m, v);
      break;
    }
    case 0x85: /* TUPLE1 */
    case 0x86: /* TUPLE2 */
    case 0x87: /* TUPLE3 */ {
      size_t n = (size_t)(op - 0x84);
      if (m->sp < n || (m->nmarks && m->sp - n < m->marks[m->nmarks - 1]))
        return malformed(m, "TUPLEn on a short stack");
      pv_t *v = new_value(m, V_TUPLE);
      if (!v)
        return nomem(m);
      v->items = arena_alloc(&m->arena, n * sizeof *v->items);
      if (!v->items)
        return nomem(m);
      memcpy(v->items, m->stack + m->sp - n, n * sizeof *v->items);
      v->n = v->cap = n;
      m->sp -= n;
      rc = push(m, v);
      break;
    }
    case 'q': /* BINPUT */
      if (!take(m, 1, &q))
        return malformed(m, "truncated BINPUT");
      rc = memo_put(m, q[0]);
      break;
    case 'r': /* LONG_BINPUT */
      if (!take(m, 4, &q))
        return malformed(m, "truncated LONG_BINPUT");
      rc = memo_put(m, lsmi__le32(q));
      break;
    case 0x94: /* MEMOIZE */
      rc = memo_put(m, memo_n++);
      break;
    case 'h': /* BINGET */
      if (!take(m, 1, &q))
        return malformed(m, "truncated BINGET");
      rc = memo_get(m, q[0]);
      break;
    case 'j': /* LONG_BINGET */
      if (!take(m, 4, &q))
        return malformed(m, "truncated LONG_BINGET");
      rc = memo_get(m, lsmi__le32(q));
      break;
    case 'X':  /* BINUNICODE */
    case 0x8c: /* SHORT_BINUNICODE */
    case 0x8d: /* BINUNICODE8 */
    case 'U':  /* SHORT_BINSTRING */
    case 'T':  /* BINSTRING */
    case 'B':  /* BINBYTES */
    case 'C': /* SHORT_BINBYTES */ {
      size_t lb = (op == 0x8c || op == 'U' || op == 'C') ? 1
                  : op == 0x8d                           ? 8
                                                         : 4;
      if (!take(m, lb, &q))
        return malformed(m, "truncated string length");
      uint64_t n = lb == 1 ? q[0] : lb == 4 ? lsmi__le32(q) : lsmi__le64(q);
      if (n > (uint64_t)(m->end - m->p))
        return malformed(m, "string runs past the end of data.pkl");
      take(m, (size_t)n, &q);
      rc = push(m, new_str(m, q, (size_t)n));
      break;
    }
    case 'K': /* BININT1 */
    case 'M': /* BININT2 */
    case 'J': /* BININT */ {
      size_t k = op == 'K' ? 1 : op == 'M' ? 2 : 4;
      if (!take(m, k, &q))
        return malformed(m, "truncated int");
      pv_t *v = new_value(m, V_INT);
      if (v)
        v->i = k == 1   ? q[0]
               : k == 2 ? lsmi__le16(q)
                        : (int64_t)(int32_t)lsmi__le32(q);
      rc = push(m, v);
      break;
    }
    case 0x8a: /* LONG1 */ {
      if (!take(m, 1, &q))
        return malformed(m, "truncated LONG1");
      size_t n = q[0];
      if (n > 8)
        return lsmi_error_set(m->err, LSMI_ERR_LIMIT, "data.pkl",
                              "an integer in data.pkl has %zu bytes; at most "
                              "8 are supported",
                              n);
      if (!take(m, n, &q))
        return malformed(m, "truncated LONG1");
      uint64_t u = 0;
      for (size_t k = 0; k < n; k++)
        u |= (uint64_t)q[k] << (8 * k);
      if (n > 0 && n < 8 && (q[n - 1] & 0x80))
        u |= ~(uint64_t)0 << (8 * n); /* sign-extend */
      pv_t *v = new_value(m, V_INT);
      if (v)
        v->i = (int64_t)u;
      rc = push(m, v);
      break;
    }
    case 'G': /* BINFLOAT, big endian */ {
      if (!take(m, 8, &q))
        return malformed(m, "truncated BINFLOAT");
      pv_t *v = new_value(m, V_FLOAT);
      rc = push(m, v);
      break;
    }
    case 'c': /* GLOBAL "module\nname\n" */ {
      const unsigned char *mod = m->p;
      const unsigned char *nl1 = memchr(mod, '\n', (size_t)(m->end - mod));
      if (!nl1)
        return malformed(m, "truncated GLOBAL");
      const unsigned char *name = nl1 + 1;
      const unsigned char *nl2 = memchr(name, '\n', (size_t)(m->end - name));
      if (!nl2)
        return malformed(m, "truncated GLOBAL");
      m->p = nl2 + 1;
      rc = push_global(m, (const char *)mod, (size_t)(nl1 - mod),
                       (const char *)name, (size_t)(nl2 - name));
      break;
    }
    case 0x93: /* STACK_GLOBAL */ {
      pv_t *name = pop(m), *mod = pop(m);
      if (!name || !mod || name->t != V_STR || mod->t != V_STR)
        return malformed(m, "STACK_GLOBAL without two strings");
      rc = push_global(m, mod->s, mod->len, name->s, name->len);
      break;
    }
    case 'Q': /* BINPERSID */
      rc = persistent_load(m, pop(m));
      break;
    case 'R': /* REDUCE */
      rc = reduce(m);
      break;
    case 's': /* SETITEM */ {
      pv_t *v = pop(m), *k = pop(m);
      if (!v || !k || m->sp == 0 || m->stack[m->sp - 1]->t != V_DICT)
        return malformed(m, "SETITEM without a dict");
      pv_t *kv[2] = {k, v};
      rc = add_items(m, m->stack[m->sp - 1], kv, 2);
      break;
    }
    case 'u': /* SETITEMS */
    case 'e': /* APPENDS */ {
      if (m->nmarks == 0)
        return malformed(m, "SETITEMS/APPENDS without MARK");
      size_t base = m->marks[m->nmarks - 1];
      if (base == 0)
        return malformed(m, "SETITEMS/APPENDS without a target");
      pv_t *target = m->stack[base - 1];
      if (target->t != (op == 'u' ? V_DICT : V_LIST) ||
          (op == 'u' && (m->sp - base) % 2))
        return malformed(m, "SETITEMS/APPENDS on the wrong type");
      rc = add_items(m, target, m->stack + base, m->sp - base);
      m->sp = base;
      m->nmarks--;
      break;
    }
    case 'a': /* APPEND */ {
      pv_t *v = pop(m);
      if (!v || m->sp == 0 || m->stack[m->sp - 1]->t != V_LIST)
        return malformed(m, "APPEND without a list");
      rc = add_items(m, m->stack[m->sp - 1], &v, 1);
      break;
    }
    case '0': /* POP */
      if (!pop(m))
        return malformed(m, "POP on an empty stack");
      break;
    case '2': /* DUP */
      if (m->sp == 0)
        return malformed(m, "DUP on an empty stack");
      rc = push(m, m->stack[m->sp - 1]);
      break;
    default: {
      static const struct {
        unsigned char op;
        const char *name;
      } known[] = {{'i', "INST"},         {'o', "OBJ"},
                   {0x81, "NEWOBJ"},      {0x92, "NEWOBJ_EX"},
                   {'b', "BUILD"},        {'P', "PERSID"},
                   {'I', "INT"},          {'L', "LONG"},
                   {'F', "FLOAT"},        {'S', "STRING"},
                   {'V', "UNICODE"},      {'g', "GET"},
                   {'p', "PUT"},          {0x82, "EXT1"},
                   {0x83, "EXT2"},        {0x84, "EXT4"},
                   {0x8b, "LONG4"},       {0x96, "BYTEARRAY8"},
                   {0x97, "NEXT_BUFFER"}, {0x98, "READONLY_BUFFER"},
                   {0x8f, "EMPTY_SET"},   {0x90, "ADDITEMS"},
                   {0x91, "FROZENSET"},   {'1', "POP_MARK"},
                   {0x8e, "BINBYTES8"}};
      const char *name = "unknown";
      for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
        if (known[k].op == op)
          name = known[k].name;
      return lsmi_error_set(m->err, LSMI_ERR_UNSUPPORTED, "data.pkl",
                            "unsupported pickle opcode 0x%02x (%s) in "
                            "data.pkl",
                            op, name);
    }
    }
    if (rc)
      return rc;
  }
}

/* ---- the reader ---- */

typedef struct loaded {
  const char *key;
  const unsigned char *data;
  size_t len;
} loaded_t;

int lsmi__read_pt(const unsigned char *buf, size_t len,
                  const lsmi_limits_t *lim, lsmi__arrays_t *as,
                  lsmi_error_t *err) {
  if (len >= 2 && buf[0] == 0x80)
    return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, "",
                          "legacy PyTorch file (a bare pickle, written before "
                          "PyTorch 1.6 or with "
                          "_use_new_zipfile_serialization=False) is not "
                          "supported; re-save it with a current torch.save");
  lsmi__zip_t z;
  int rc = lsmi__zip_open(&z, buf, len, lim, err);
  const lsmi__zip_entry_t *pkl = NULL;
  for (size_t i = 0; !rc && i < z.n && !pkl; i++) {
    size_t k = strlen(z.e[i].name);
    if (k >= 8 && strcmp(z.e[i].name + k - 8, "data.pkl") == 0 &&
        (k == 8 || z.e[i].name[k - 9] == '/'))
      pkl = &z.e[i];
  }
  if (!rc && !pkl)
    rc = lsmi_error_set(err, LSMI_ERR_FORMAT, "data.pkl",
                        "zip file has no data.pkl: not a torch.save file");
  if (!rc && pkl->usize > lim->max_header_bytes)
    rc = lsmi_error_set(err, LSMI_ERR_LIMIT, "data.pkl",
                        "data.pkl has %llu bytes; the limit for headers is "
                        "%llu",
                        (unsigned long long)pkl->usize,
                        (unsigned long long)lim->max_header_bytes);
  if (rc) {
    lsmi__zip_close(&z);
    return rc;
  }
  char prefix[256];
  size_t plen = strlen(pkl->name) - 8;
  if (plen >= sizeof prefix - 32) {
    lsmi__zip_close(&z);
    return lsmi_error_set(err, LSMI_ERR_FORMAT, "data.pkl",
                          "archive name too long");
  }
  memcpy(prefix, pkl->name, plen);
  prefix[plen] = '\0';

  bool big = false;
  char name[320];
  snprintf(name, sizeof name, "%sbyteorder", prefix);
  const lsmi__zip_entry_t *bo = lsmi__zip_find(&z, name);
  const unsigned char *pdata;
  size_t plen2;
  void *owned;
  if (bo) {
    rc = lsmi__zip_read(&z, bo, &pdata, &plen2, &owned, err);
    if (!rc) {
      big = plen2 == 3 && memcmp(pdata, "big", 3) == 0;
      if (!big && !(plen2 == 6 && memcmp(pdata, "little", 6) == 0))
        rc = lsmi_error_set(err, LSMI_ERR_FORMAT, "byteorder",
                            "byteorder record is neither little nor big");
      free(owned);
    }
  }
  if (!rc)
    rc = lsmi__zip_read(&z, pkl, &pdata, &plen2, &owned, err);
  if (!rc && owned)
    rc = lsmi__arrays_own(as, owned, err);
  if (rc) {
    lsmi__zip_close(&z);
    return rc;
  }

  vm_t m;
  memset(&m, 0, sizeof m);
  m.p = pdata;
  m.end = pdata + plen2;
  m.total = plen2;
  m.err = err;
  pv_t *top = NULL;
  rc = run(&m, &top);
  if (!rc && top->t != V_DICT)
    rc = lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, "data.pkl",
                        "the saved object is not a dict of tensors");
  loaded_t cache[LSMI__ROLES + 1]; /* a 7th tensor fails in _put */
  size_t ncache = 0;
  for (size_t i = 0; !rc && i + 1 < top->n; i += 2) {
    pv_t *k = top->items[i], *v = top->items[i + 1];
    if (k->t != V_STR)
      continue;
    lsmi__arrays_seen(as, k->s);
    int role = lsmi__key_role(k->s);
    if (role < 0)
      continue;
    if (v->t != V_TENSOR) {
      rc = lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, k->s, "%s is not a tensor",
                          k->s);
      break;
    }
    /* The storage's bytes, once per storage key. */
    const loaded_t *st = NULL;
    for (size_t c = 0; c < ncache; c++)
      if (strcmp(cache[c].key, v->tn->storage->s) == 0)
        st = &cache[c];
    if (!st) {
      snprintf(name, sizeof name, "%sdata/%s", prefix, v->tn->storage->s);
      const lsmi__zip_entry_t *e = lsmi__zip_find(&z, name);
      if (!e) {
        rc = lsmi_error_set(err, LSMI_ERR_FORMAT, k->s,
                            "storage %s of %s is missing from the archive",
                            v->tn->storage->s, k->s);
        break;
      }
      loaded_t *l = &cache[ncache];
      rc = lsmi__zip_read(&z, e, &l->data, &l->len, &owned, err);
      if (!rc && owned)
        rc = lsmi__arrays_own(as, owned, err);
      if (rc)
        break;
      l->key = v->tn->storage->s;
      st = &cache[ncache++];
    }
    size_t es = lsmi__dtype_size(v->dtype);
    uint64_t need;
    if (!lsmi__mul_u64(v->tn->storage->numel, es, &need) || need > st->len) {
      rc = lsmi_error_set(err, LSMI_ERR_FORMAT, k->s,
                          "storage %s of %s declares %llu elements but holds "
                          "%zu bytes",
                          v->tn->storage->s, k->s,
                          (unsigned long long)v->tn->storage->numel, st->len);
      break;
    }
    lsmi__array_t a;
    memset(&a, 0, sizeof a);
    snprintf(a.key, sizeof a.key, "%s", k->s);
    a.dtype = v->dtype;
    a.big_endian = big;
    a.ndim = v->tn->ndim;
    a.data = st->data;
    a.data_len = (size_t)need;
    if (!lsmi__mul_u64(v->tn->offset, es, &a.offset)) {
      rc = lsmi_error_set(err, LSMI_ERR_FORMAT, k->s,
                          "%s: storage offset overflows", k->s);
      break;
    }
    for (int d = 0; d < v->tn->ndim; d++) {
      a.shape[d] = v->tn->shape[d];
      if (!lsmi__mul_u64(v->tn->stride[d], es, &a.stride[d])) {
        rc = lsmi_error_set(err, LSMI_ERR_FORMAT, k->s, "%s: strides overflow",
                            k->s);
        break;
      }
    }
    if (!rc)
      rc = lsmi__arrays_put(as, role, &a, lim, err);
  }
  free(m.stack);
  free(m.marks);
  arena_free(&m.arena);
  lsmi__zip_close(&z);
  return rc;
}
