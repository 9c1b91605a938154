/*
 * pt.c — PyTorch files: the zip format that torch.save has written since
 * 1.6, read with a restricted unpickler.
 *
 * A torch.save file is a zip holding "<name>/data.pkl" (a pickle of the saved
 * object in which every storage is a persistent id), "<name>/data/<key>"
 * (the raw bytes of each storage, little endian unless "<name>/byteorder"
 * says "big") and some version records. We accept exactly what torch.save
 * emits for a dict of tensors (or a list or tuple of them, a dict of such
 * dicts per split, and lists of str or int for labels and ids):
 *
 *   globals   torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter,
 *             collections.OrderedDict, torch.<Type>Storage (Float, Double,
 *             Half, BFloat16, Long, Int, Short, Char, Byte, Bool)
 *   values    None, bools, ints, floats, strings, tuples, lists, dicts
 *   opcodes   the protocol 2-5 subset that builds those (PICKLE_OPCODES);
 *
 * and refuse everything else by name ("unsupported pickle global
 * os.system", "unsupported pickle opcode 0x69 (INST)"), before anything is
 * called: REDUCE on an allowed global is interpreted, never executed. The
 * machine is a loop over opcodes with an explicit stack, memo and mark
 * list, all allocated from one arena released at the end; no recursion, so
 * nesting depth cannot overflow the C stack, and the pickle itself is
 * bounded by max_header_bytes, which bounds the work.
 *
 * Tensors become strided views (offset, sizes, strides in elements, turned
 * into bytes here) into their storage member, read once per storage key so
 * that tensors sharing a storage share its bytes. The legacy pre-zip format
 * (a bare pickle stream that starts with torch's magic number) is refused
 * with an 'unsupported' error that says how to re-save the file, and so is
 * any other bare pickle (pickle.dump), which could only be read by running
 * it.
 *
 * The reader is four steps (lsmi__read_pt): find data.pkl, read the byte
 * order, unpickle, and turn each tensor of the saved object into an array:
 * a dict's values by their keys (lsmi__key_role), a {"train": {...},
 * "val": {...}} dict's per split, a list or tuple of three as x1, x2, y.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsio.h"
#include "zip.h"

/*
 * Every pickle opcode, by its name in Python's Lib/pickletools.py, with the
 * function below that runs it; "refuse" marks the ones refused by name.
 */
#define PICKLE_OPCODES(X)                                                      \
  X(MARK, '(', op_mark)                                                        \
  X(STOP, '.', op_stop)                                                        \
  X(POP, '0', op_pop)                                                          \
  X(POP_MARK, '1', refuse)                                                     \
  X(DUP, '2', op_dup)                                                          \
  X(FLOAT, 'F', refuse)                                                        \
  X(INT, 'I', refuse)                                                          \
  X(BININT, 'J', op_binint)                                                    \
  X(BININT1, 'K', op_binint)                                                   \
  X(LONG, 'L', refuse)                                                         \
  X(BININT2, 'M', op_binint)                                                   \
  X(NONE, 'N', op_empty)                                                       \
  X(PERSID, 'P', refuse)                                                       \
  X(BINPERSID, 'Q', op_binpersid)                                              \
  X(REDUCE, 'R', op_reduce)                                                    \
  X(STRING, 'S', refuse)                                                       \
  X(BINSTRING, 'T', op_string)                                                 \
  X(SHORT_BINSTRING, 'U', op_string)                                           \
  X(UNICODE, 'V', refuse)                                                      \
  X(BINUNICODE, 'X', op_string)                                                \
  X(APPEND, 'a', op_append)                                                    \
  X(BUILD, 'b', refuse)                                                        \
  X(GLOBAL, 'c', op_global)                                                    \
  X(DICT, 'd', op_dict)                                                        \
  X(EMPTY_DICT, '}', op_empty)                                                 \
  X(APPENDS, 'e', op_additems)                                                 \
  X(GET, 'g', refuse)                                                          \
  X(BINGET, 'h', op_memo_get)                                                  \
  X(INST, 'i', refuse)                                                         \
  X(LONG_BINGET, 'j', op_memo_get)                                             \
  X(LIST, 'l', op_seq)                                                         \
  X(EMPTY_LIST, ']', op_empty)                                                 \
  X(OBJ, 'o', refuse)                                                          \
  X(PUT, 'p', refuse)                                                          \
  X(BINPUT, 'q', op_memo_put)                                                  \
  X(LONG_BINPUT, 'r', op_memo_put)                                             \
  X(SETITEM, 's', op_setitem)                                                  \
  X(TUPLE, 't', op_seq)                                                        \
  X(EMPTY_TUPLE, ')', op_empty)                                                \
  X(SETITEMS, 'u', op_additems)                                                \
  X(BINFLOAT, 'G', op_binfloat)                                                \
  /* protocol 2 */                                                             \
  X(PROTO, 0x80, op_skip)                                                      \
  X(NEWOBJ, 0x81, refuse)                                                      \
  X(EXT1, 0x82, refuse)                                                        \
  X(EXT2, 0x83, refuse)                                                        \
  X(EXT4, 0x84, refuse)                                                        \
  X(TUPLE1, 0x85, op_tuple_n)                                                  \
  X(TUPLE2, 0x86, op_tuple_n)                                                  \
  X(TUPLE3, 0x87, op_tuple_n)                                                  \
  X(NEWTRUE, 0x88, op_bool)                                                    \
  X(NEWFALSE, 0x89, op_bool)                                                   \
  X(LONG1, 0x8a, op_long1)                                                     \
  X(LONG4, 0x8b, refuse)                                                       \
  /* protocol 3 */                                                             \
  X(BINBYTES, 'B', op_string)                                                  \
  X(SHORT_BINBYTES, 'C', op_string)                                            \
  /* protocol 4 */                                                             \
  X(SHORT_BINUNICODE, 0x8c, op_string)                                         \
  X(BINUNICODE8, 0x8d, op_string)                                              \
  X(BINBYTES8, 0x8e, refuse)                                                   \
  X(EMPTY_SET, 0x8f, refuse)                                                   \
  X(ADDITEMS, 0x90, refuse)                                                    \
  X(FROZENSET, 0x91, refuse)                                                   \
  X(NEWOBJ_EX, 0x92, refuse)                                                   \
  X(STACK_GLOBAL, 0x93, op_stack_global)                                       \
  X(MEMOIZE, 0x94, op_memo_put)                                                \
  X(FRAME, 0x95, op_skip)                                                      \
  /* protocol 5 */                                                             \
  X(BYTEARRAY8, 0x96, refuse)                                                  \
  X(NEXT_BUFFER, 0x97, refuse)                                                 \
  X(READONLY_BUFFER, 0x98, refuse)

enum {
#define X(name, byte, run) OP_##name = byte,
  PICKLE_OPCODES(X)
#undef X
};

/* The name of an opcode byte for messages; NULL for a byte that is no
 * pickle opcode. */
static const char *const op_names[256] = {
#define X(name, byte, run) [byte] = #name,
    PICKLE_OPCODES(X)
#undef X
};

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
  size_t memo_n; /* MEMOIZE's next index */
  size_t total;  /* pickle length: bounds the memo */
  pv_t *result;  /* what STOP popped */
  lsmi_error_t *err;
} vm_t;

/* Over the pickle p[0, len); err borrowed for every message. */
static void vm_init(vm_t *m, const unsigned char *p, size_t len,
                    lsmi_error_t *err) {
  memset(m, 0, sizeof *m);
  m->p = p;
  m->end = p + len;
  m->total = len;
  m->err = err;
}

/* Frees the stack, the marks and the arena (every value with them). */
static void vm_free(vm_t *m) {
  free(m->stack);
  free(m->marks);
  arena_free(&m->arena);
}

static int nomem(vm_t *m) {
  return lsmi_error_set(m->err, LSMI_ERR_NOMEM, "data.pkl",
                        "out of memory unpickling data.pkl");
}

static int malformed(vm_t *m, const char *what) {
  return lsmi_error_set(m->err, LSMI_ERR_FORMAT, "data.pkl",
                        "malformed pickle in data.pkl: %s", what);
}

/* The argument of opcode `op` runs past the end of the pickle. */
static int truncated(vm_t *m, unsigned char op) {
  return lsmi_error_set(m->err, LSMI_ERR_FORMAT, "data.pkl",
                        "malformed pickle in data.pkl: truncated %s",
                        op_names[op]);
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
  if (n) /* m->stack is NULL until the first push */
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
  bool numpy = ml >= 5 && memcmp(mod, "numpy", 5) == 0;
  return lsmi_error_set(m->err, LSMI_ERR_UNSUPPORTED, "data.pkl",
                        "unsupported pickle global %.*s.%.*s: only tensors "
                        "saved by torch.save in a dict are accepted%s",
                        a, mod, b, name,
                        numpy ? " (NumPy arrays inside a .pt are not: save "
                                "torch.as_tensor(a), or use np.savez)"
                              : "");
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
                          "a tensor has %zu dimensions; at most %d are "
                          "supported",
                          size->n, LSMI__MAX_NDIM);
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
  if (n == 0)
    return 0; /* target->items may still be NULL */
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

/* ---- the opcodes ---- */

/*
 * Each opcode's function runs it on m: `op` is the opcode byte (several
 * opcodes share a function), m->p is just past it. Returns 0 to go on,
 * VM_STOP after STOP, or an error status (m->err says which).
 */
typedef int op_fn(vm_t *m, unsigned char op);

enum { VM_STOP = 1 };

/* PROTO, FRAME: only their argument to step over. */
static int op_skip(vm_t *m, unsigned char op) {
  const unsigned char *q;
  return take(m, op == OP_PROTO ? 1 : 8, &q) ? 0 : truncated(m, op);
}

static int op_stop(vm_t *m, unsigned char op) {
  (void)op;
  m->result = pop(m);
  return m->result ? VM_STOP : malformed(m, "STOP on an empty stack");
}

/* EMPTY_DICT, EMPTY_LIST, EMPTY_TUPLE, NONE. */
static int op_empty(vm_t *m, unsigned char op) {
  int t = op == OP_EMPTY_DICT    ? V_DICT
          : op == OP_EMPTY_LIST  ? V_LIST
          : op == OP_EMPTY_TUPLE ? V_TUPLE
                                 : V_NONE;
  return push(m, new_value(m, t));
}

/* NEWTRUE, NEWFALSE. */
static int op_bool(vm_t *m, unsigned char op) {
  pv_t *v = new_value(m, V_BOOL);
  if (v)
    v->i = op == OP_NEWTRUE;
  return push(m, v);
}

static int op_mark(vm_t *m, unsigned char op) {
  (void)op;
  if (m->nmarks == m->mcap) {
    size_t nc = m->mcap ? m->mcap * 2 : 16;
    size_t *nm = realloc(m->marks, nc * sizeof *nm);
    if (!nm)
      return nomem(m);
    m->marks = nm;
    m->mcap = nc;
  }
  m->marks[m->nmarks++] = m->sp;
  return 0;
}

/* TUPLE, LIST: everything above the last mark. */
static int op_seq(vm_t *m, unsigned char op) {
  if (m->nmarks == 0)
    return malformed(m, "TUPLE/LIST without MARK");
  return push(m, pop_to_mark(m, op == OP_TUPLE ? V_TUPLE : V_LIST));
}

static int op_dict(vm_t *m, unsigned char op) {
  (void)op;
  if (m->nmarks == 0)
    return malformed(m, "DICT without MARK");
  pv_t *v = pop_to_mark(m, V_DICT);
  if (v && v->n % 2)
    return malformed(m, "DICT with an odd number of items");
  return push(m, v);
}

/* TUPLE1, TUPLE2, TUPLE3: the top 1, 2 or 3 values, none below a mark. */
static int op_tuple_n(vm_t *m, unsigned char op) {
  size_t n = (size_t)(op - OP_TUPLE1) + 1;
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
  return push(m, v);
}

/* The memo index argument of op: 1 byte for BINPUT and BINGET, 4 for
 * their LONG_ forms. */
static int memo_index(vm_t *m, unsigned char op, uint64_t *idx) {
  const unsigned char *q;
  size_t k = op == OP_BINPUT || op == OP_BINGET ? 1 : 4;
  if (!take(m, k, &q))
    return truncated(m, op);
  *idx = k == 1 ? q[0] : lsmi__le32(q);
  return 0;
}

/* BINPUT, LONG_BINPUT, MEMOIZE (the next index). */
static int op_memo_put(vm_t *m, unsigned char op) {
  if (op == OP_MEMOIZE)
    return memo_put(m, m->memo_n++);
  uint64_t idx = 0;
  int rc = memo_index(m, op, &idx);
  return rc ? rc : memo_put(m, idx);
}

/* BINGET, LONG_BINGET. */
static int op_memo_get(vm_t *m, unsigned char op) {
  uint64_t idx = 0;
  int rc = memo_index(m, op, &idx);
  return rc ? rc : memo_get(m, idx);
}

/* The string and bytes opcodes: a 1-, 4- or 8-byte length, then the
 * bytes, all kept as a V_STR. */
static int op_string(vm_t *m, unsigned char op) {
  const unsigned char *q;
  size_t lb = (op == OP_SHORT_BINUNICODE || op == OP_SHORT_BINSTRING ||
               op == OP_SHORT_BINBYTES)
                  ? 1
              : op == OP_BINUNICODE8 ? 8
                                     : 4;
  if (!take(m, lb, &q))
    return malformed(m, "truncated string length");
  uint64_t n = lb == 1 ? q[0] : lb == 4 ? lsmi__le32(q) : lsmi__le64(q);
  if (n > (uint64_t)(m->end - m->p))
    return malformed(m, "string runs past the end of data.pkl");
  take(m, (size_t)n, &q);
  return push(m, new_str(m, q, (size_t)n));
}

/* BININT1 (unsigned byte), BININT2 (unsigned 16 bits), BININT (signed
 * 32 bits), little endian. */
static int op_binint(vm_t *m, unsigned char op) {
  const unsigned char *q;
  size_t k = op == OP_BININT1 ? 1 : op == OP_BININT2 ? 2 : 4;
  if (!take(m, k, &q))
    return malformed(m, "truncated int");
  pv_t *v = new_value(m, V_INT);
  if (v)
    v->i = k == 1   ? q[0]
           : k == 2 ? lsmi__le16(q)
                    : (int64_t)(int32_t)lsmi__le32(q);
  return push(m, v);
}

/* LONG1: a length byte, then that many bytes of a two's-complement
 * little-endian integer; at most 8 of them. */
static int op_long1(vm_t *m, unsigned char op) {
  const unsigned char *q;
  if (!take(m, 1, &q))
    return truncated(m, op);
  size_t n = q[0];
  if (n > 8)
    return lsmi_error_set(m->err, LSMI_ERR_LIMIT, "data.pkl",
                          "an integer in data.pkl has %zu bytes; at most 8 "
                          "are supported",
                          n);
  if (!take(m, n, &q))
    return truncated(m, op);
  uint64_t u = 0;
  for (size_t k = 0; k < n; k++)
    u |= (uint64_t)q[k] << (8 * k);
  if (n > 0 && n < 8 && (q[n - 1] & 0x80))
    u |= ~(uint64_t)0 << (8 * n); /* sign-extend */
  pv_t *v = new_value(m, V_INT);
  if (v)
    v->i = (int64_t)u;
  return push(m, v);
}

/* BINFLOAT: 8 big-endian bytes. Floats only appear where their value does
 * not matter (hooks, metadata), so it is not kept. */
static int op_binfloat(vm_t *m, unsigned char op) {
  const unsigned char *q;
  if (!take(m, 8, &q))
    return truncated(m, op);
  return push(m, new_value(m, V_FLOAT));
}

/* GLOBAL: "module\nname\n" inline. */
static int op_global(vm_t *m, unsigned char op) {
  const unsigned char *mod = m->p;
  const unsigned char *nl1 = memchr(mod, '\n', (size_t)(m->end - mod));
  if (!nl1)
    return truncated(m, op);
  const unsigned char *name = nl1 + 1;
  const unsigned char *nl2 = memchr(name, '\n', (size_t)(m->end - name));
  if (!nl2)
    return truncated(m, op);
  m->p = nl2 + 1;
  return push_global(m, (const char *)mod, (size_t)(nl1 - mod),
                     (const char *)name, (size_t)(nl2 - name));
}

/* STACK_GLOBAL: module and name are the top two strings. */
static int op_stack_global(vm_t *m, unsigned char op) {
  (void)op;
  pv_t *name = pop(m), *mod = pop(m);
  if (!name || !mod || name->t != V_STR || mod->t != V_STR)
    return malformed(m, "STACK_GLOBAL without two strings");
  return push_global(m, mod->s, mod->len, name->s, name->len);
}

static int op_binpersid(vm_t *m, unsigned char op) {
  (void)op;
  return persistent_load(m, pop(m));
}

static int op_reduce(vm_t *m, unsigned char op) {
  (void)op;
  return reduce(m);
}

/* SETITEM: dict[key] = value on the dict below them. */
static int op_setitem(vm_t *m, unsigned char op) {
  (void)op;
  pv_t *v = pop(m), *k = pop(m);
  if (!v || !k || m->sp == 0 || m->stack[m->sp - 1]->t != V_DICT)
    return malformed(m, "SETITEM without a dict");
  pv_t *kv[2] = {k, v};
  return add_items(m, m->stack[m->sp - 1], kv, 2);
}

/* SETITEMS, APPENDS: everything above the last mark into the dict or list
 * just below it. */
static int op_additems(vm_t *m, unsigned char op) {
  if (m->nmarks == 0)
    return malformed(m, "SETITEMS/APPENDS without MARK");
  size_t base = m->marks[m->nmarks - 1];
  if (base == 0)
    return malformed(m, "SETITEMS/APPENDS without a target");
  pv_t *target = m->stack[base - 1];
  bool dict = op == OP_SETITEMS;
  if (target->t != (dict ? V_DICT : V_LIST) || (dict && (m->sp - base) % 2))
    return malformed(m, "SETITEMS/APPENDS on the wrong type");
  int rc = add_items(m, target, m->stack + base, m->sp - base);
  m->sp = base;
  m->nmarks--;
  return rc;
}

static int op_append(vm_t *m, unsigned char op) {
  (void)op;
  pv_t *v = pop(m);
  if (!v || m->sp == 0 || m->stack[m->sp - 1]->t != V_LIST)
    return malformed(m, "APPEND without a list");
  return add_items(m, m->stack[m->sp - 1], &v, 1);
}

static int op_pop(vm_t *m, unsigned char op) {
  (void)op;
  return pop(m) ? 0 : malformed(m, "POP on an empty stack");
}

static int op_dup(vm_t *m, unsigned char op) {
  (void)op;
  if (m->sp == 0)
    return malformed(m, "DUP on an empty stack");
  return push(m, m->stack[m->sp - 1]);
}

/* Any other byte: refused by its name, or as unknown. */
static int refuse(vm_t *m, unsigned char op) {
  return lsmi_error_set(m->err, LSMI_ERR_UNSUPPORTED, "data.pkl",
                        "unsupported pickle opcode 0x%02x (%s) in data.pkl", op,
                        op_names[op] ? op_names[op] : "unknown");
}

static op_fn *const op_run[256] = {
#define X(name, byte, run) [byte] = run,
    PICKLE_OPCODES(X)
#undef X
};

/* Runs the pickle to STOP; *result gets the top of the stack. */
static int run(vm_t *m, pv_t **result) {
  for (;;) {
    if (m->p >= m->end)
      return malformed(m, "no STOP opcode (truncated?)");
    unsigned char op = *m->p++;
    int rc = (op_run[op] ? op_run[op] : refuse)(m, op);
    if (rc == VM_STOP) {
      *result = m->result;
      return 0;
    }
    if (rc)
      return rc;
  }
}

/* ---- the reader ---- */

/* A storage member's bytes, read once per storage key. */
typedef struct loaded {
  const char *key;
  const unsigned char *data;
  size_t len;
} loaded_t;

/* The archive around data.pkl. */
typedef struct pt_archive {
  lsmi__zip_t z;
  char prefix[256]; /* "<name>/": where data.pkl and the storages live */
  bool big;         /* storages are big endian */
  loaded_t cache[LSMI__ROLES + 1]; /* a 9th tensor fails in _put */
  size_t ncache;
} pt_archive_t;

bool lsmi__pt_is_pickle(const char *name) {
  size_t k = strlen(name);
  return k >= 8 && strcmp(name + k - 8, "data.pkl") == 0 &&
         (k == 8 || name[k - 9] == '/');
}

/* Finds "<prefix>data.pkl" (*pkl), checks its size and keeps the prefix. */
static int find_pickle(pt_archive_t *ar, const lsmi_limits_t *lim,
                       const lsmi__zip_entry_t **pkl, lsmi_error_t *err) {
  *pkl = NULL;
  for (size_t i = 0; i < ar->z.n && !*pkl; i++)
    if (lsmi__pt_is_pickle(ar->z.e[i].name))
      *pkl = &ar->z.e[i];
  if (!*pkl)
    return lsmi_error_set(err, LSMI_ERR_FORMAT, "data.pkl",
                          "zip file has no data.pkl: not a torch.save file");
  if ((*pkl)->usize > lim->max_header_bytes)
    return lsmi_error_set(err, LSMI_ERR_LIMIT, "data.pkl",
                          "data.pkl has %llu bytes; the limit for headers is "
                          "%llu",
                          (unsigned long long)(*pkl)->usize,
                          (unsigned long long)lim->max_header_bytes);
  size_t plen = strlen((*pkl)->name) - 8;
  if (plen >= sizeof ar->prefix - 32)
    return lsmi_error_set(err, LSMI_ERR_FORMAT, "data.pkl",
                          "archive name too long");
  memcpy(ar->prefix, (*pkl)->name, plen);
  ar->prefix[plen] = '\0';
  return 0;
}

/* The "<prefix>byteorder" record, when there is one: "little" or "big". */
static int read_byteorder(pt_archive_t *ar, lsmi_error_t *err) {
  char name[320];
  snprintf(name, sizeof name, "%sbyteorder", ar->prefix);
  const lsmi__zip_entry_t *bo = lsmi__zip_find(&ar->z, name);
  if (!bo)
    return 0;
  const unsigned char *p;
  size_t len;
  void *owned;
  int rc = lsmi__zip_read(&ar->z, bo, &p, &len, &owned, err);
  if (rc)
    return rc;
  ar->big = len == 3 && memcmp(p, "big", 3) == 0;
  if (!ar->big && !(len == 6 && memcmp(p, "little", 6) == 0))
    rc = lsmi_error_set(err, LSMI_ERR_FORMAT, "byteorder",
                        "byteorder record is neither little nor big");
  free(owned);
  return rc;
}

/* Reads data.pkl (its bytes taken by `as`) and runs it on m: *top is the
 * saved object, allocated in m's arena. */
static int unpickle(pt_archive_t *ar, const lsmi__zip_entry_t *pkl, vm_t *m,
                    lsmi__arrays_t *as, pv_t **top, lsmi_error_t *err) {
  const unsigned char *data;
  size_t len;
  void *owned;
  int rc = lsmi__zip_read(&ar->z, pkl, &data, &len, &owned, err);
  if (!rc && owned)
    rc = lsmi__arrays_own(as, owned, err);
  if (rc)
    return rc;
  vm_init(m, data, len, err);
  return run(m, top);
}

/* The bytes of storage s (of the tensor under `key`), from the cache or
 * read now (taken by `as`). */
static int storage_of(pt_archive_t *ar, const char *key, const pv_t *s,
                      lsmi__arrays_t *as, const loaded_t **out,
                      lsmi_error_t *err) {
  for (size_t c = 0; c < ar->ncache; c++) {
    if (strcmp(ar->cache[c].key, s->s) == 0) {
      *out = &ar->cache[c];
      return 0;
    }
  }
  char name[320];
  snprintf(name, sizeof name, "%sdata/%s", ar->prefix, s->s);
  const lsmi__zip_entry_t *e = lsmi__zip_find(&ar->z, name);
  if (!e)
    return lsmi_error_set(err, LSMI_ERR_FORMAT, key,
                          "storage %s of %s is missing from the archive", s->s,
                          key);
  loaded_t *l = &ar->cache[ar->ncache];
  void *owned;
  int rc = lsmi__zip_read(&ar->z, e, &l->data, &l->len, &owned, err);
  if (!rc && owned)
    rc = lsmi__arrays_own(as, owned, err);
  if (rc)
    return rc;
  l->key = s->s;
  *out = &ar->cache[ar->ncache++];
  return 0;
}

/* The tensor v, saved under `key`, as the array of `role`: a view into its
 * storage with offset and strides turned from elements into bytes. */
static int put_tensor(pt_archive_t *ar, const char *key, const pv_t *v,
                      int role, const lsmi_limits_t *lim, lsmi__arrays_t *as,
                      lsmi_error_t *err) {
  const tensor_t *t = v->tn;
  const loaded_t *st = NULL;
  int rc = storage_of(ar, key, t->storage, as, &st, err);
  if (rc)
    return rc;
  size_t es = lsmi__dtype_size(v->dtype);
  uint64_t need;
  if (!lsmi__mul_u64(t->storage->numel, es, &need) || need > st->len)
    return lsmi_error_set(err, LSMI_ERR_FORMAT, key,
                          "storage %s of %s declares %llu elements but holds "
                          "%zu bytes",
                          t->storage->s, key,
                          (unsigned long long)t->storage->numel, st->len);
  lsmi__array_t a;
  memset(&a, 0, sizeof a);
  snprintf(a.key, sizeof a.key, "%s", key);
  a.dtype = v->dtype;
  a.big_endian = ar->big;
  a.ndim = t->ndim;
  a.data = st->data;
  a.data_len = (size_t)need;
  if (!lsmi__mul_u64(t->offset, es, &a.offset))
    return lsmi_error_set(err, LSMI_ERR_FORMAT, key,
                          "%s: storage offset overflows", key);
  for (int d = 0; d < t->ndim; d++) {
    a.shape[d] = t->shape[d];
    if (!lsmi__mul_u64(t->stride[d], es, &a.stride[d]))
      return lsmi_error_set(err, LSMI_ERR_FORMAT, key, "%s: strides overflow",
                            key);
  }
  return lsmi__arrays_put(as, role, &a, lim, err);
}

/* The i-th string of a list value. */
static const char *list_text(const void *ctx, size_t i, size_t *len) {
  const pv_t *e = ((const pv_t *)ctx)->items[i];
  *len = e->len;
  return e->s;
}

/* A Python list of str or of int (a label or id per row) as a TEXT or
 * int64 array named key, copied out of the arena into memory `as` owns. */
static int put_pylist(const char *key, const pv_t *v, int role,
                      const lsmi_limits_t *lim, lsmi__arrays_t *as,
                      lsmi_error_t *err) {
  size_t n = v->n;
  bool text = n > 0 && v->items[0]->t == V_STR;
  for (size_t i = 0; i < n; i++) {
    const pv_t *e = v->items[i];
    if (text ? e->t != V_STR : (e->t != V_INT && e->t != V_BOOL))
      return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, key,
                            "%s is a list whose item %zu is not %s; labels "
                            "and ids are a tensor, or a list of str or of "
                            "int",
                            key, i, text ? "a str" : "an int");
  }
  if (text)
    return lsmi__arrays_put_strings(as, role, key, n, list_text, v, lim, err);
  if (n > lim->max_rows)
    return lsmi_error_set(err, LSMI_ERR_LIMIT, key,
                          "%s has %zu rows; the limit is %llu", key, n,
                          (unsigned long long)lim->max_rows);
  int64_t *x = malloc((n ? n : 1) * sizeof *x);
  if (!x)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, key, "out of memory");
  int rc = lsmi__arrays_own(as, x, err); /* frees x on failure */
  if (rc)
    return rc;
  for (size_t i = 0; i < n; i++)
    x[i] = v->items[i]->i;
  lsmi__array_t a = lsmi__array_1d(key, LSMI__DT_I64, x, n);
  return lsmi__arrays_put(as, role, &a, lim, err);
}

/* The value v saved under key, as the array of role (-1: ignored). */
static int put_value(pt_archive_t *ar, const char *key, const pv_t *v, int role,
                     const lsmi_limits_t *lim, lsmi__arrays_t *as,
                     lsmi_error_t *err) {
  if (role < 0)
    return 0;
  if (v->t == V_TENSOR)
    return put_tensor(ar, key, v, role, lim, as, err);
  if ((v->t == V_LIST || v->t == V_TUPLE) && lsmi__part(role) >= LSMI__Y)
    return put_pylist(key, v, role, lim, as, err);
  return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, key, "%s is not a tensor",
                        key);
}

/* The items of dict d whose keys name a role; split -1 at the top, 0 or 1
 * inside a "train" or "val" dict (whose keys are then named
 * "train.KEY"). */
static int put_dict(pt_archive_t *ar, const pv_t *d, int split,
                    const lsmi_limits_t *lim, lsmi__arrays_t *as,
                    lsmi_error_t *err) {
  int rc = 0;
  for (size_t i = 0; !rc && i + 1 < d->n; i += 2) {
    const pv_t *k = d->items[i], *v = d->items[i + 1];
    if (k->t != V_STR)
      continue;
    bool group = split < 0 && v->t == V_DICT &&
                 (strcmp(k->s, "train") == 0 || strcmp(k->s, "val") == 0);
    if (group) {
      rc = put_dict(ar, v, k->s[0] == 'v', lim, as, err);
      continue;
    }
    char key[64];
    snprintf(key, sizeof key, "%s%s",
             split < 0 ? ""
             : split   ? "val."
                       : "train.",
             k->s);
    lsmi__arrays_seen(as, key);
    rc = put_value(ar, key, v, lsmi__key_role(as, split, k->s), lim, as, err);
  }
  return rc;
}

/* The saved object: a dict, or a list or tuple of three tensors (x1, x2,
 * y of a file without val). */
static int put_tensors(pt_archive_t *ar, const pv_t *top,
                       const lsmi_limits_t *lim, lsmi__arrays_t *as,
                       lsmi_error_t *err) {
  if (top->t == V_DICT)
    return put_dict(ar, top, -1, lim, as, err);
  static const char *const kinds[] = {"None",  "bool",    "int",   "float",
                                      "str",   "tuple",   "list",  "dict",
                                      "class", "storage", "tensor"};
  if ((top->t != V_LIST && top->t != V_TUPLE) || top->n != 3)
    return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, "data.pkl",
                          "the saved object is a %s%s; lsmi reads a dict of "
                          "tensors (x1, x2, y or train_x1 ... val_y; other "
                          "keys with --x1 KEY --x2 KEY --y KEY), a dict "
                          "{'train': {...}, 'val': {...}}, or a list or "
                          "tuple of three tensors (x1, x2, y)",
                          kinds[top->t],
                          top->t == V_LIST || top->t == V_TUPLE ? " of the "
                                                                  "wrong "
                                                                  "length"
                                                                : "");
  int rc = 0;
  for (int q = 0; q < 3 && !rc; q++) {
    char key[8];
    snprintf(key, sizeof key, "[%d]", q);
    lsmi__arrays_seen(as, key);
    rc = put_value(ar, key, top->items[q], lsmi__role(0, q), lim, as, err);
  }
  return rc;
}

/* A bare pickle stream (not a zip): a legacy torch.save file when it
 * starts with torch's magic number, else a plain pickle.dump. */
static int refuse_bare_pickle(const unsigned char *buf, size_t len,
                              lsmi_error_t *err) {
  static const unsigned char magic[] = {0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                        0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
  if (len >= 2 + sizeof magic && memcmp(buf + 2, magic, sizeof magic) == 0)
    return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, "",
                          "legacy PyTorch file (a bare pickle, written before "
                          "PyTorch 1.6 or with "
                          "_use_new_zipfile_serialization=False) is not "
                          "supported; re-save it with a current torch.save");
  return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, "",
                        "a plain Python pickle (pickle.dump) is not read: "
                        "unpickling could run any code; save the arrays with "
                        "np.savez(\"ds.npz\", x1=x1, x2=x2, y=y) or "
                        "torch.save({\"x1\": ..., \"x2\": ..., \"y\": ...}, "
                        "\"ds.pt\")");
}

int lsmi__read_pt(const unsigned char *buf, size_t len,
                  const lsmi_limits_t *lim, lsmi__arrays_t *as,
                  lsmi_error_t *err) {
  if (len >= 2 && buf[0] == 0x80)
    return refuse_bare_pickle(buf, len, err);
  pt_archive_t ar;
  vm_t m;
  memset(&ar, 0, sizeof ar);
  memset(&m, 0, sizeof m);
  const lsmi__zip_entry_t *pkl = NULL;
  pv_t *top = NULL;
  int rc = lsmi__zip_open(&ar.z, buf, len, lim, err);
  if (!rc)
    rc = find_pickle(&ar, lim, &pkl, err);
  if (!rc)
    rc = read_byteorder(&ar, err);
  if (!rc)
    rc = unpickle(&ar, pkl, &m, as, &top, err);
  if (!rc)
    rc = put_tensors(&ar, top, lim, as, err);
  vm_free(&m);
  lsmi__zip_close(&ar.z);
  return rc;
}
