/*
 * test_pt.c — io/pt.c: PyTorch files and the restricted unpickler.
 *
 * The fixtures were written by torch.save (tests/data/make_fixtures.py);
 * every opcode's function and every step of the reader is also driven
 * here with pickles and archives made by hand. The source is included, as
 * h2o's unit tests do, to reach the machine (run) and its opcode table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../io/pt.c"
#include "io_test.h"

/* ---- the fixtures ---- */

static void test_good_files(void **state) {
  (void)state;
  static const io_good_t good[] = {
      {"good.pt", LSMI_FORMAT_PT},
      {"good_views.pt", LSMI_FORMAT_PT},
      {"good_half.pt", LSMI_FORMAT_PT},
      {"good_param.pt", LSMI_FORMAT_PT},
      {"good_bigendian.pt", LSMI_FORMAT_PT},
      /* {'train': {'x1': ...}, 'val': {...}} */
      {"user_nested.pt", LSMI_FORMAT_PT},
  };
  io_check_good(good, sizeof good / sizeof good[0]);
}

static void test_bad_files(void **state) {
  (void)state;
  static const io_bad_t bad[] = {
      {"bad_truncated.pt", LSMI_ERR_FORMAT, NULL, "truncated"},
      {"legacy.pt", LSMI_ERR_UNSUPPORTED, NULL, "legacy PyTorch file"},
      {"bad_os_system.pt", LSMI_ERR_UNSUPPORTED, "data.pkl",
       "unsupported pickle global os.system"},
      {"bad_reduce.pt", LSMI_ERR_UNSUPPORTED, "data.pkl",
       "unsupported pickle global posix.system"},
      {"bad_build.pt", LSMI_ERR_UNSUPPORTED, "data.pkl", "(BUILD)"},
      {"bad_memo.pt", LSMI_ERR_FORMAT, "data.pkl", "unset index"},
      {"bad_no_storage.pt", LSMI_ERR_FORMAT, "train_x2", "missing"},
      {"bad_short_storage.pt", LSMI_ERR_FORMAT, "train_x1", "storage 0"},
      {"bad_not_tensor.pt", LSMI_ERR_UNSUPPORTED, "train_x2", "not a tensor"},
      {"bad_not_dict.pt", LSMI_ERR_UNSUPPORTED, "data.pkl",
       "the saved object is a list of the wrong length; lsmi reads a dict of "
       "tensors"},
      {"user_plain.pkl", LSMI_ERR_UNSUPPORTED, "",
       "a plain Python pickle (pickle.dump) is not read: unpickling could run "
       "any code; save the arrays with np.savez(\"ds.npz\", x1=x1, x2=x2, "
       "y=y) or torch.save"},
  };
  io_check_bad(bad, sizeof bad / sizeof bad[0]);
}

static void test_every_prefix(void **state) {
  (void)state;
  io_check_every_prefix("good.pt");
  io_check_every_prefix("good_views.pt");
}

/* ---- the machine ---- */

/* Runs the pickle (p, n) on a fresh machine *m (vm_free it): the status,
 * *top the value STOP returned. */
static int unpickle_bytes(vm_t *m, const char *p, size_t n, pv_t **top,
                          lsmi_error_t *err) {
  memset(err, 0, sizeof *err);
  vm_init(m, (const unsigned char *)p, n, err);
  *top = NULL;
  return run(m, top);
}

/* The pickle in string literal s (NUL bytes allowed) must run and return
 * a value of type `type`; v is that value. */
#define RUNS(s, type, v)                                                       \
  do {                                                                         \
    vm_t m_;                                                                   \
    lsmi_error_t e_;                                                           \
    int rc_ = unpickle_bytes(&m_, (s), sizeof(s) - 1, &(v), &e_);              \
    if (rc_)                                                                   \
      print_error("%s\n", e_.message);                                         \
    assert_int_equal(rc_, 0);                                                  \
    assert_int_equal((v)->t, (type));                                          \
    vms[nvms++] = m_;                                                          \
  } while (0)

/* The pickle in string literal s must fail with status st and a message
 * holding msg (every machine error names data.pkl as the field). */
#define FAILS(s, st, msg)                                                      \
  do {                                                                         \
    vm_t m_;                                                                   \
    lsmi_error_t e_;                                                           \
    pv_t *v_;                                                                  \
    int rc_ = unpickle_bytes(&m_, (s), sizeof(s) - 1, &v_, &e_);               \
    vm_free(&m_);                                                              \
    if (rc_ != (st) || !strstr(e_.message, (msg)))                             \
      print_error("%s: want ...%s...\n", e_.message, (msg));                   \
    assert_int_equal(rc_, (st));                                               \
    assert_int_equal(e_.status, (st));                                         \
    assert_string_equal(e_.field, "data.pkl");                                 \
    assert_non_null(strstr(e_.message, (msg)));                                \
  } while (0)

/* The machines of RUNS stay alive until the test ends (their values live
 * in their arenas). */
static vm_t vms[64];
static size_t nvms;

static int free_vms(void **state) {
  (void)state;
  for (size_t i = 0; i < nvms; i++)
    vm_free(&vms[i]);
  nvms = 0;
  return 0;
}

/* Every opcode the machine refuses is named, as Python's pickletools
 * names it; any other byte is "unknown". */
static void test_refused_opcodes(void **state) {
  (void)state;
  static const struct {
    unsigned char op;
    const char *name;
  } refused[] = {{'i', "INST"},         {'o', "OBJ"},
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
  size_t n_refused = sizeof refused / sizeof refused[0];
  size_t named = 0, unknown = 0;
  for (int b = 0; b < 256; b++) {
    char p[2] = {(char)b, '.'};
    const char *name = "unknown";
    bool refuse_it = op_names[b] == NULL;
    for (size_t k = 0; k < n_refused; k++) {
      if (refused[k].op == b) {
        name = refused[k].name;
        refuse_it = true;
      }
    }
    named += op_names[b] != NULL;
    if (!refuse_it)
      continue;
    unknown += op_names[b] == NULL;
    vm_t m;
    pv_t *v;
    lsmi_error_t err;
    int rc = unpickle_bytes(&m, p, 1, &v, &err);
    vm_free(&m);
    char want[96];
    snprintf(want, sizeof want,
             "unsupported pickle opcode 0x%02x (%s) in data.pkl", b, name);
    assert_int_equal(rc, LSMI_ERR_UNSUPPORTED);
    assert_string_equal(err.field, "data.pkl");
    assert_string_equal(err.message, want);
  }
  /* 68 opcodes in protocols 0 to 5: 43 run, 25 refused by name. */
  assert_int_equal(named, 68);
  assert_int_equal(unknown, 256 - 68);
}

static void test_empty_values(void **state) {
  (void)state;
  pv_t *v;
  RUNS("}.", V_DICT, v);
  assert_int_equal(v->n, 0);
  RUNS("].", V_LIST, v);
  RUNS(").", V_TUPLE, v);
  RUNS("N.", V_NONE, v);
  RUNS("\x88.", V_BOOL, v);
  assert_int_equal(v->i, 1);
  RUNS("\x89.", V_BOOL, v);
  assert_int_equal(v->i, 0);
}

static void test_proto_frame_stop(void **state) {
  (void)state;
  pv_t *v;
  RUNS("\x80\x02N.", V_NONE, v);
  RUNS("\x95\x03\0\0\0\0\0\0\0N.", V_NONE, v);
  FAILS("\x80", LSMI_ERR_FORMAT, "truncated PROTO");
  FAILS("\x95\x03\0\0", LSMI_ERR_FORMAT, "truncated FRAME");
  FAILS(".", LSMI_ERR_FORMAT, "STOP on an empty stack");
  FAILS("", LSMI_ERR_FORMAT, "no STOP opcode (truncated?)");
  FAILS("N", LSMI_ERR_FORMAT, "no STOP opcode");
  FAILS("N(.", LSMI_ERR_FORMAT, "STOP on an empty stack"); /* above a mark */
}

static void test_marks_and_sequences(void **state) {
  (void)state;
  pv_t *v;
  RUNS("(NNt.", V_TUPLE, v);
  assert_int_equal(v->n, 2);
  RUNS("(Nl.", V_LIST, v);
  assert_int_equal(v->n, 1);
  /* Empty sequences copy nothing (from a stack that may not exist yet). */
  RUNS("(t.", V_TUPLE, v);
  assert_int_equal(v->n, 0);
  RUNS("}(u.", V_DICT, v);
  assert_int_equal(v->n, 0);
  RUNS("](e.", V_LIST, v);
  assert_int_equal(v->n, 0);
  RUNS("(K\x01K\x02"
       "d.",
       V_DICT, v);
  assert_int_equal(v->n, 2);
  assert_int_equal(v->items[1]->i, 2);
  /* 40 nested marks: the mark list grows past its first 16. */
  RUNS("((((((((((((((((((((((((((((((((((((((((N"
       "tttttttttttttttttttttttttttttttttttttttt.",
       V_TUPLE, v);
  for (int depth = 1; depth < 40; depth++) {
    assert_int_equal(v->n, 1);
    v = v->items[0];
  }
  assert_int_equal(v->items[0]->t, V_NONE);
  FAILS("t.", LSMI_ERR_FORMAT, "TUPLE/LIST without MARK");
  FAILS("l.", LSMI_ERR_FORMAT, "TUPLE/LIST without MARK");
  FAILS("d.", LSMI_ERR_FORMAT, "DICT without MARK");
  FAILS("(Nd.", LSMI_ERR_FORMAT, "DICT with an odd number of items");
}

static void test_tuple_n(void **state) {
  (void)state;
  pv_t *v;
  RUNS("K\x01\x85.", V_TUPLE, v);
  assert_int_equal(v->n, 1);
  RUNS("K\x01K\x02\x86.", V_TUPLE, v);
  assert_int_equal(v->items[1]->i, 2);
  RUNS("K\x01K\x02K\x03\x87.", V_TUPLE, v);
  assert_int_equal(v->n, 3);
  assert_int_equal(v->items[0]->i, 1);
  FAILS("\x85.", LSMI_ERR_FORMAT, "TUPLEn on a short stack");
  FAILS("N\x86.", LSMI_ERR_FORMAT, "TUPLEn on a short stack");
  FAILS("N(N\x86.", LSMI_ERR_FORMAT, "TUPLEn on a short stack");
}

static void test_memo(void **state) {
  (void)state;
  pv_t *v;
  RUNS("Nq\x00h\x00\x86.", V_TUPLE, v);
  assert_ptr_equal(v->items[0], v->items[1]);
  RUNS("Nr\x02\0\0\0j\x02\0\0\0\x86.", V_TUPLE, v);
  assert_ptr_equal(v->items[0], v->items[1]);
  /* MEMOIZE numbers the values 0, 1, ... */
  RUNS("K\x07\x94K\x08\x94h\x00h\x01\x86.", V_TUPLE, v);
  assert_int_equal(v->items[0]->i, 7);
  assert_int_equal(v->items[1]->i, 8);
  FAILS("q", LSMI_ERR_FORMAT, "truncated BINPUT");
  FAILS("Nr\x00", LSMI_ERR_FORMAT, "truncated LONG_BINPUT");
  FAILS("h", LSMI_ERR_FORMAT, "truncated BINGET");
  FAILS("j\x00\x00", LSMI_ERR_FORMAT, "truncated LONG_BINGET");
  FAILS("q\x00.", LSMI_ERR_FORMAT, "memo put on an empty stack");
  FAILS("\x94.", LSMI_ERR_FORMAT, "memo put on an empty stack");
  FAILS("Nr\xff\xff\0\0.", LSMI_ERR_FORMAT, "memo index out of range");
  FAILS("h\x05.", LSMI_ERR_FORMAT, "memo get of an unset index");
  FAILS("Nq\x00h\x01.", LSMI_ERR_FORMAT, "memo get of an unset index");
}

static void test_strings(void **state) {
  (void)state;
  pv_t *v;
  RUNS("X\x03\0\0\0abc.", V_STR, v);
  assert_string_equal(v->s, "abc");
  assert_int_equal(v->len, 3);
  RUNS("\x8c\x02hi.", V_STR, v);
  assert_string_equal(v->s, "hi");
  RUNS("\x8d\x02\0\0\0\0\0\0\0hi.", V_STR, v);
  assert_string_equal(v->s, "hi");
  RUNS("U\x01u.", V_STR, v);
  assert_string_equal(v->s, "u");
  RUNS("T\x01\0\0\0t.", V_STR, v);
  assert_string_equal(v->s, "t");
  RUNS("B\x01\0\0\0b.", V_STR, v);
  assert_string_equal(v->s, "b");
  RUNS("C\x00.", V_STR, v);
  assert_int_equal(v->len, 0);
  FAILS("X\x03\0", LSMI_ERR_FORMAT, "truncated string length");
  FAILS("\x8d\x01\0\0\0", LSMI_ERR_FORMAT, "truncated string length");
  FAILS("\x8c\x05"
        "ab",
        LSMI_ERR_FORMAT, "string runs past the end of data.pkl");
  FAILS("\x8d\xff\xff\xff\xff\xff\xff\xff\xff.", LSMI_ERR_FORMAT,
        "string runs past the end");
}

static void test_ints(void **state) {
  (void)state;
  pv_t *v;
  RUNS("K\xff.", V_INT, v);
  assert_int_equal(v->i, 255);
  RUNS("M\xff\xff.", V_INT, v);
  assert_int_equal(v->i, 65535);
  RUNS("J\xff\xff\xff\xff.", V_INT, v);
  assert_int_equal(v->i, -1);
  RUNS("\x8a\x00.", V_INT, v);
  assert_int_equal(v->i, 0);
  RUNS("\x8a\x01\xff.", V_INT, v);
  assert_int_equal(v->i, -1);
  RUNS("\x8a\x02\x00\x80.", V_INT, v);
  assert_int_equal(v->i, -32768);
  RUNS("\x8a\x05\x00\x00\x00\x00\x01.", V_INT, v);
  assert_int_equal(v->i, (int64_t)1 << 32);
  RUNS("\x8a\x08\0\0\0\0\0\0\0\x40.", V_INT, v);
  assert_int_equal(v->i, (int64_t)1 << 62);
  FAILS("K", LSMI_ERR_FORMAT, "truncated int");
  FAILS("M\x01", LSMI_ERR_FORMAT, "truncated int");
  FAILS("J\x01\x02\x03", LSMI_ERR_FORMAT, "truncated int");
  FAILS("\x8a", LSMI_ERR_FORMAT, "truncated LONG1");
  FAILS("\x8a\x02\x00", LSMI_ERR_FORMAT, "truncated LONG1");
  FAILS("\x8a\x09\0\0\0\0\0\0\0\0\0.", LSMI_ERR_LIMIT,
        "an integer in data.pkl has 9 bytes; at most 8 are supported");
}

static void test_binfloat(void **state) {
  (void)state;
  pv_t *v;
  RUNS("G\x3f\xf0\0\0\0\0\0\0.", V_FLOAT, v);
  FAILS("G\x3f\xf0", LSMI_ERR_FORMAT, "truncated BINFLOAT");
}

static void test_globals(void **state) {
  (void)state;
  pv_t *v;
  RUNS("ctorch._utils\n_rebuild_tensor_v2\n.", V_GLOBAL, v);
  assert_int_equal(v->i, G_REBUILD_TENSOR);
  RUNS("ctorch._utils\n_rebuild_parameter\n.", V_GLOBAL, v);
  assert_int_equal(v->i, G_REBUILD_PARAMETER);
  RUNS("\x8c\x0b"
       "collections\x8c\x0bOrderedDict\x93.",
       V_GLOBAL, v);
  assert_int_equal(v->i, G_ORDERED_DICT);
  RUNS("ctorch\nBFloat16Storage\n.", V_GLOBAL, v);
  assert_int_equal(v->i, G_STORAGE);
  assert_int_equal(v->dtype, LSMI__DT_BF16);
  RUNS("ctorch\nBoolStorage\n.", V_GLOBAL, v);
  assert_int_equal(v->dtype, LSMI__DT_BOOL);
  FAILS("cos\nsystem\n.", LSMI_ERR_UNSUPPORTED,
        "unsupported pickle global os.system: only tensors saved by "
        "torch.save in a dict are accepted");
  FAILS("ctorch\nFloatStorag\n.", LSMI_ERR_UNSUPPORTED,
        "unsupported pickle global torch.FloatStorag");
  FAILS("ctorch\nFloatStorage", LSMI_ERR_FORMAT, "truncated GLOBAL");
  FAILS("ctorch", LSMI_ERR_FORMAT, "truncated GLOBAL");
  FAILS("\x8c\x02os\x8c\x06system\x93.", LSMI_ERR_UNSUPPORTED,
        "unsupported pickle global os.system");
  FAILS("N\x8c\x01"
        "a\x93.",
        LSMI_ERR_FORMAT, "STACK_GLOBAL without two strings");
  FAILS("\x93.", LSMI_ERR_FORMAT, "STACK_GLOBAL without two strings");
}

/* A module name of 300 bytes is cut to 100 in the message. */
static void test_global_name_cut(void **state) {
  (void)state;
  char p[400];
  size_t n = 0;
  p[n++] = 'c';
  memset(p + n, 'm', 300);
  n += 300;
  memcpy(p + n, "\nx\n.", 4);
  n += 4;
  vm_t m;
  pv_t *v;
  lsmi_error_t err;
  assert_int_equal(unpickle_bytes(&m, p, n, &v, &err), LSMI_ERR_UNSUPPORTED);
  vm_free(&m);
  char want[160] = "unsupported pickle global ";
  memset(want + strlen(want), 'm', 100);
  strcpy(want + 26 + 100, ".x:");
  assert_non_null(strstr(err.message, want));
}

static void test_reduce(void **state) {
  (void)state;
  pv_t *v;
  RUNS("ccollections\nOrderedDict\n)R.", V_DICT, v);
  FAILS("R", LSMI_ERR_FORMAT, "REDUCE on an empty stack");
  FAILS(")R", LSMI_ERR_FORMAT, "REDUCE on an empty stack");
  FAILS("N)R.", LSMI_ERR_FORMAT, "REDUCE of something that is not a global");
  FAILS("ccollections\nOrderedDict\nN\x85R.", LSMI_ERR_UNSUPPORTED,
        "OrderedDict built from arguments is not supported");
  FAILS("ctorch\nFloatStorage\n)R.", LSMI_ERR_FORMAT,
        "a storage class cannot be called");
  FAILS("ctorch._utils\n_rebuild_parameter\n)R.", LSMI_ERR_FORMAT,
        "bad arguments to _rebuild_parameter");
  FAILS("ctorch._utils\n_rebuild_parameter\nN\x85R.", LSMI_ERR_FORMAT,
        "bad arguments to _rebuild_parameter");
  FAILS("ctorch._utils\n_rebuild_tensor_v2\n)R.", LSMI_ERR_FORMAT,
        "bad arguments to _rebuild_tensor_v2");
}

/* The persistent id of storage "0": 6 float32 elements. */
#define STORAGE                                                                \
  "(X\x07\0\0\0storage"                                                        \
  "ctorch\nFloatStorage\n"                                                     \
  "X\x01\0\0\0"                                                                \
  "0"                                                                          \
  "X\x03\0\0\0cpu"                                                             \
  "K\x06tQ"
#define REBUILD "ctorch._utils\n_rebuild_tensor_v2\n"
#define HOOKS                                                                  \
  "\x89"                                                                       \
  "ccollections\nOrderedDict\n)R"

static void test_tensors(void **state) {
  (void)state;
  pv_t *v;
  /* storage, offset 1, sizes (2, 2), strides (3, 1), requires_grad, hooks */
  RUNS(REBUILD "(" STORAGE "K\x01K\x02K\x02\x86K\x03K\x01\x86" HOOKS "tR.",
       V_TENSOR, v);
  assert_int_equal(v->dtype, LSMI__DT_F32);
  assert_string_equal(v->tn->storage->s, "0");
  assert_int_equal(v->tn->storage->numel, 6);
  assert_int_equal(v->tn->offset, 1);
  assert_int_equal(v->tn->ndim, 2);
  assert_int_equal(v->tn->shape[0], 2);
  assert_int_equal(v->tn->stride[0], 3);
  assert_int_equal(v->tn->stride[1], 1);
  /* _rebuild_parameter(tensor, requires_grad, hooks) is the tensor. */
  RUNS("ctorch._utils\n_rebuild_parameter\n(" REBUILD "(" STORAGE
       "K\x00K\x06\x85K\x01\x85" HOOKS "tR\x88" HOOKS "tR.",
       V_TENSOR, v);
  assert_int_equal(v->tn->shape[0], 6);
  FAILS("NQ.", LSMI_ERR_FORMAT,
        "a persistent id is not a torch storage reference");
  FAILS("Q.", LSMI_ERR_FORMAT, "a persistent id is not a torch storage");
  FAILS("(X\x07\0\0\0storageNX\x01\0\0\0"
        "0NK\x06tQ.",
        LSMI_ERR_FORMAT, "a persistent id is not a torch storage reference");
  FAILS(REBUILD "(" STORAGE
                "K\x00(K\x01K\x01K\x01K\x01K\x01K\x01K\x01K\x01K\x01t"
                "(K\x01K\x01K\x01K\x01K\x01K\x01K\x01K\x01K\x01t" HOOKS "tR.",
        LSMI_ERR_SHAPE, "a tensor has 9 dimensions; at most 8 are supported");
  FAILS(REBUILD "(" STORAGE "K\x00J\xff\xff\xff\xff\x85K\x01\x85" HOOKS "tR.",
        LSMI_ERR_FORMAT, "a tensor size is not a non-negative int");
  FAILS(REBUILD "(" STORAGE "K\x00K\x02\x85J\xff\xff\xff\xff\x85" HOOKS "tR.",
        LSMI_ERR_UNSUPPORTED,
        "tensors with negative strides are not supported");
  FAILS(REBUILD "(" STORAGE "K\x00K\x02\x85K\x01K\x01\x86" HOOKS "tR.",
        LSMI_ERR_FORMAT, "bad arguments to _rebuild_tensor_v2");
}

static void test_setitems_and_appends(void **state) {
  (void)state;
  pv_t *v;
  RUNS("}K\x01K\x02s.", V_DICT, v);
  assert_int_equal(v->n, 2);
  RUNS("}(K\x01K\x02K\x03K\x04u.", V_DICT, v);
  assert_int_equal(v->n, 4);
  assert_int_equal(v->items[3]->i, 4);
  RUNS("](K\x01K\x02"
       "e.",
       V_LIST, v);
  assert_int_equal(v->n, 2);
  RUNS("]K\x01"
       "a.",
       V_LIST, v);
  assert_int_equal(v->n, 1);
  /* 20 items: the list's item array grows twice. */
  RUNS("](NNNNNNNNNNNNNNNNNNNNe.", V_LIST, v);
  assert_int_equal(v->n, 20);
  FAILS("NK\x01s.", LSMI_ERR_FORMAT, "SETITEM without a dict");
  FAILS("}K\x01s.", LSMI_ERR_FORMAT, "SETITEM without a dict");
  FAILS("u.", LSMI_ERR_FORMAT, "SETITEMS/APPENDS without MARK");
  FAILS("(K\x01"
        "e.",
        LSMI_ERR_FORMAT, "SETITEMS/APPENDS without a target");
  FAILS("}(K\x01u.", LSMI_ERR_FORMAT, "SETITEMS/APPENDS on the wrong type");
  FAILS("](K\x01K\x02u.", LSMI_ERR_FORMAT,
        "SETITEMS/APPENDS on the wrong type");
  FAILS("}(K\x01"
        "e.",
        LSMI_ERR_FORMAT, "SETITEMS/APPENDS on the wrong type");
  FAILS("Na.", LSMI_ERR_FORMAT, "APPEND without a list");
  FAILS("a.", LSMI_ERR_FORMAT, "APPEND without a list");
}

static void test_pop_dup(void **state) {
  (void)state;
  pv_t *v;
  RUNS("K\x01K\x02"
       "0.",
       V_INT, v);
  assert_int_equal(v->i, 1);
  RUNS("K\x05"
       "2\x86.",
       V_TUPLE, v);
  assert_ptr_equal(v->items[0], v->items[1]);
  FAILS("0.", LSMI_ERR_FORMAT, "POP on an empty stack");
  FAILS("N(0.", LSMI_ERR_FORMAT, "POP on an empty stack");
  FAILS("2.", LSMI_ERR_FORMAT, "DUP on an empty stack");
}

/* ---- the reader ---- */

/* A tensor of a hand-made data.pkl. */
typedef struct tdesc {
  const char *key, *storage, *type; /* type: "FloatStorage", ... */
  uint64_t numel, offset;
  int ndim;
  int64_t size[3], stride[3];
} tdesc_t;

static size_t put_str(unsigned char *p, const char *s) {
  size_t n = strlen(s);
  p[0] = 'X';
  for (int i = 0; i < 4; i++)
    p[1 + i] = (unsigned char)(n >> (8 * i));
  memcpy(p + 5, s, n);
  return 5 + n;
}

static size_t put_long(unsigned char *p, int64_t v) {
  p[0] = 0x8a;
  p[1] = 8;
  for (int i = 0; i < 8; i++)
    p[2 + i] = (unsigned char)((uint64_t)v >> (8 * i));
  return 10;
}

static size_t put_raw(unsigned char *p, const char *s) {
  memcpy(p, s, strlen(s));
  return strlen(s);
}

/* data.pkl of {key: tensor, ...} as torch.save writes it (protocol 2). */
static size_t pickle_dict(const tdesc_t *t, size_t n, unsigned char *p) {
  size_t k = put_raw(p, "\x80\x02}(");
  for (size_t i = 0; i < n; i++) {
    k += put_str(p + k, t[i].key);
    k += put_raw(p + k, REBUILD "((");
    k += put_str(p + k, "storage");
    k += put_raw(p + k, "ctorch\n");
    k += put_raw(p + k, t[i].type);
    k += put_raw(p + k, "\n");
    k += put_str(p + k, t[i].storage);
    k += put_str(p + k, "cpu");
    k += put_long(p + k, (int64_t)t[i].numel);
    k += put_raw(p + k, "tQ");
    k += put_long(p + k, (int64_t)t[i].offset);
    for (int s = 0; s < 2; s++) {
      k += put_raw(p + k, "(");
      for (int d = 0; d < t[i].ndim; d++)
        k += put_long(p + k, s ? t[i].stride[d] : t[i].size[d]);
      k += put_raw(p + k, "t");
    }
    k += put_raw(p + k, HOOKS "tR");
  }
  k += put_raw(p + k, "u.");
  return k;
}

/* A torch.save file: "archive/data.pkl", the storages given, and a
 * byteorder record when `order` is not NULL. */
static unsigned char *pt_file(const unsigned char *pkl, size_t plen,
                              const io_member_t *st, size_t ns,
                              const char *order, size_t *len) {
  io_member_t m[8];
  size_t n = 0;
  m[n++] = (io_member_t){"archive/data.pkl", pkl, plen, false};
  if (order)
    m[n++] = (io_member_t){"archive/byteorder", order, strlen(order), false};
  for (size_t i = 0; i < ns; i++)
    m[n++] = st[i];
  return io_zip(m, n, len);
}

/* Six tensors over three storages, each read once: "0" (deflated) holds
 * x1 of train, column-major, then of val; "1" holds x2 of both; "2" the
 * int64 labels of both. Offsets and strides become bytes. */
static void test_views_share_storages(void **state) {
  (void)state;
  float s0[18 * 3], s1[18 * 2];
  int64_t s2[18];
  for (int i = 0; i < 18 * 3; i++)
    s0[i] = (float)i / 8;
  for (int i = 0; i < 18 * 2; i++)
    s1[i] = -(float)i / 4;
  for (int i = 0; i < 18; i++)
    s2[i] = i % 3;
  static const tdesc_t t[] = {
      /* train_x1: (12, 3) column-major over the first 36 floats */
      {"train_x1", "0", "FloatStorage", 54, 0, 2, {12, 3}, {1, 12}},
      {"train_x2", "1", "FloatStorage", 36, 0, 2, {12, 2}, {2, 1}},
      {"train_y", "2", "LongStorage", 18, 0, 1, {12}, {1}},
      {"val_x1", "0", "FloatStorage", 54, 36, 2, {6, 3}, {3, 1}},
      {"val_x2", "1", "FloatStorage", 36, 24, 2, {6, 2}, {2, 1}},
      {"val_y", "2", "LongStorage", 18, 12, 1, {6}, {1}},
  };
  unsigned char pkl[4096];
  size_t plen = pickle_dict(t, 6, pkl);
  io_member_t st[] = {{"archive/data/0", s0, sizeof s0, true},
                      {"archive/data/1", s1, sizeof s1, false},
                      {"archive/data/2", s2, sizeof s2, false}};
  size_t len;
  unsigned char *file = pt_file(pkl, plen, st, 3, "little", &len);
  lsmi_dataset_t *ds = io_must_read(file, len, LSMI_FORMAT_UNKNOWN, 0);
  assert_int_equal(ds->train.n, 12);
  assert_int_equal(ds->val.n, 6);
  for (int i = 0; i < 12; i++) {
    for (int j = 0; j < 3; j++)
      assert_true(ds->train.x[i * 5 + j] == s0[i + 12 * j]);
    for (int j = 0; j < 2; j++)
      assert_true(ds->train.x[i * 5 + 3 + j] == s1[2 * i + j]);
    assert_int_equal(ds->train.y[i], i % 3);
  }
  for (int i = 0; i < 6; i++) {
    assert_true(ds->val.x[i * 5 + 1] == s0[36 + 3 * i + 1]);
    assert_true(ds->val.x[i * 5 + 4] == s1[24 + 2 * i + 1]);
    assert_int_equal(ds->val.y[i], (12 + i) % 3);
  }
  lsmi_dataset_destroy(ds);
  free(file);
}

/* A file of one train_x1 tensor t (storage "0" of 8 floats). */
static int read_one(const tdesc_t *t, const char *order, lsmi_error_t *err) {
  float s0[8] = {0};
  unsigned char pkl[1024];
  size_t plen = pickle_dict(t, 1, pkl);
  io_member_t st = {"archive/data/0", s0, sizeof s0, false};
  size_t len;
  unsigned char *file = pt_file(pkl, plen, &st, 1, order, &len);
  int rc = io_read_mem(file, len, LSMI_FORMAT_PT, NULL, 0, NULL, err);
  free(file);
  return rc;
}

static void test_tensor_errors(void **state) {
  (void)state;
  lsmi_error_t err;
  tdesc_t t = {"train_x1", "0", "FloatStorage", 8, 0, 2, {4, 2}, {2, 1}};
  /* The storage is read; only train_x1 is there. */
  assert_int_equal(read_one(&t, NULL, &err), LSMI_ERR_MISSING);
  assert_string_equal(err.field, "train_x2");
  assert_non_null(strstr(err.message, "the file holds train_x1"));
  t.offset = (uint64_t)1 << 62;
  assert_int_equal(read_one(&t, NULL, &err), LSMI_ERR_FORMAT);
  assert_string_equal(err.field, "train_x1");
  assert_string_equal(err.message, "train_x1: storage offset overflows");
  t.offset = 0;
  t.stride[0] = (int64_t)1 << 62;
  assert_int_equal(read_one(&t, NULL, &err), LSMI_ERR_FORMAT);
  assert_string_equal(err.message, "train_x1: strides overflow");
  t.stride[0] = 2;
  t.numel = 9;
  assert_int_equal(read_one(&t, NULL, &err), LSMI_ERR_FORMAT);
  assert_string_equal(err.message,
                      "storage 0 of train_x1 declares 9 elements but holds "
                      "32 bytes");
  t.numel = 8;
  t.storage = "7";
  assert_int_equal(read_one(&t, NULL, &err), LSMI_ERR_FORMAT);
  assert_string_equal(err.message,
                      "storage 7 of train_x1 is missing from the archive");
  t.storage = "0";
  assert_int_equal(read_one(&t, "middle", &err), LSMI_ERR_FORMAT);
  assert_string_equal(err.field, "byteorder");
  assert_string_equal(err.message,
                      "byteorder record is neither little nor big");
  assert_int_equal(read_one(&t, "big", &err), LSMI_ERR_MISSING);
}

/* The archive of the one member m must fail to read as PyTorch with
 * status, field (NULL: any) and a message holding msg. */
static void archive_fails(io_member_t m, int status, const char *field,
                          const char *msg) {
  size_t len;
  unsigned char *file = io_zip(&m, 1, &len);
  io_expect(file, len, LSMI_FORMAT_PT, NULL, status, field, msg);
  free(file);
}

static void test_archive_errors(void **state) {
  (void)state;
  /* No data.pkl: "xdata.pkl" is not one. */
  archive_fails((io_member_t){"archive/xdata.pkl", "N.", 2, false},
                LSMI_ERR_FORMAT, "data.pkl",
                "zip file has no data.pkl: not a torch.save file");
  /* A directory name of 230 bytes. */
  char name[260];
  memset(name, 'd', 230);
  strcpy(name + 230, "/data.pkl");
  archive_fails((io_member_t){name, "}.", 2, false}, LSMI_ERR_FORMAT,
                "data.pkl", "archive name too long");
  /* The saved object must be a dict; keys that are not strings, or name
   * no role, are passed over. */
  const char *pkl = "(K\x01N\x8c\x04noteNd.";
  archive_fails((io_member_t){"data.pkl", pkl, strlen(pkl), false},
                LSMI_ERR_MISSING, "train_x1", "the file holds note");
  archive_fails((io_member_t){"data.pkl", "].", 2, false}, LSMI_ERR_UNSUPPORTED,
                "data.pkl",
                "the saved object is a list of the wrong length; lsmi reads a "
                "dict of tensors (x1, x2, y or train_x1 ... val_y; other keys "
                "with --x1 KEY --x2 KEY --y KEY), a dict {'train': {...}, "
                "'val': {...}}, or a list or tuple of three tensors (x1, x2, "
                "y)");
  archive_fails((io_member_t){"data.pkl", "N.", 2, false}, LSMI_ERR_UNSUPPORTED,
                "data.pkl", "the saved object is a None; lsmi reads a dict");
  /* Each item of a list or tuple of three must be a tensor. */
  archive_fails((io_member_t){"data.pkl", "(NNNt.", 6, false},
                LSMI_ERR_UNSUPPORTED, "[0]", "[0] is not a tensor");
}

/* Labels and ids may be lists of str or of int; the error names the key
 * and the first item that is neither. */
static void test_python_lists(void **state) {
  (void)state;
  static const struct {
    const char *pkl;
    const char *field, *msg;
  } cases[] = {
      /* {'train_y': ['a', 1]} */
      {"}(\x8c\x07train_y](\x8c\x01"
       "aK\x01"
       "eu.",
       "train_y",
       "train_y is a list whose item 1 is not a str; labels and ids are a "
       "tensor, or a list of str or of int"},
      /* {'id': [1, None]} */
      {"}(\x8c\x02id](K\x01"
       "Neu.",
       "id", "id is a list whose item 1 is not an int"},
      /* {'x1': [1]}: features must be tensors */
      {"}(\x8c\x02x1](K\x01"
       "eu.",
       "x1", "x1 is not a tensor"},
      /* {'train': {'y': 'abc'}}: a str is no column */
      {"}(\x8c\x05train}(\x8c\x01y\x8c\x03"
       "abcuu.",
       "train.y", "train.y is not a tensor"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    archive_fails(
        (io_member_t){"data.pkl", cases[i].pkl, strlen(cases[i].pkl), false},
        LSMI_ERR_UNSUPPORTED, cases[i].field, cases[i].msg);
  /* A NumPy array inside a .pt: refused, with what to do instead. */
  const char *np = "\x8c\x15numpy.core.multiarray\x8c\x0c_reconstruct\x93"
                   ".";
  archive_fails((io_member_t){"data.pkl", np, strlen(np), false},
                LSMI_ERR_UNSUPPORTED, "data.pkl",
                "unsupported pickle global numpy.core.multiarray._reconstruct: "
                "only tensors saved by torch.save in a dict are accepted "
                "(NumPy arrays inside a .pt are not: save torch.as_tensor(a), "
                "or use np.savez)");
}

static void test_pickle_names(void **state) {
  (void)state;
  assert_true(lsmi__pt_is_pickle("data.pkl"));
  assert_true(lsmi__pt_is_pickle("archive/data.pkl"));
  assert_true(lsmi__pt_is_pickle("a/b/data.pkl"));
  assert_false(lsmi__pt_is_pickle("adata.pkl"));
  assert_false(lsmi__pt_is_pickle("data.pk"));
  assert_false(lsmi__pt_is_pickle("data.pkl/x"));
  assert_false(lsmi__pt_is_pickle(""));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_files),
      cmocka_unit_test(test_bad_files),
      cmocka_unit_test(test_every_prefix),
      cmocka_unit_test_teardown(test_refused_opcodes, free_vms),
      cmocka_unit_test_teardown(test_empty_values, free_vms),
      cmocka_unit_test_teardown(test_proto_frame_stop, free_vms),
      cmocka_unit_test_teardown(test_marks_and_sequences, free_vms),
      cmocka_unit_test_teardown(test_tuple_n, free_vms),
      cmocka_unit_test_teardown(test_memo, free_vms),
      cmocka_unit_test_teardown(test_strings, free_vms),
      cmocka_unit_test_teardown(test_ints, free_vms),
      cmocka_unit_test_teardown(test_binfloat, free_vms),
      cmocka_unit_test_teardown(test_globals, free_vms),
      cmocka_unit_test_teardown(test_global_name_cut, free_vms),
      cmocka_unit_test_teardown(test_reduce, free_vms),
      cmocka_unit_test_teardown(test_tensors, free_vms),
      cmocka_unit_test_teardown(test_setitems_and_appends, free_vms),
      cmocka_unit_test_teardown(test_pop_dup, free_vms),
      cmocka_unit_test(test_views_share_storages),
      cmocka_unit_test(test_tensor_errors),
      cmocka_unit_test(test_archive_errors),
      cmocka_unit_test(test_python_lists),
      cmocka_unit_test(test_pickle_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
