/*
 * mlp.h — the discriminator MLP and its cross-entropy loss (internal).
 *
 * Linear(in,H) – ReLU – Linear(H,H) – ReLU – Linear(H,C). As in llm.c, the
 * parameters of one MLP are one contiguous float block carved into named
 * views, and the gradients are a second block of the same layout, so Adam
 * is one flat loop.
 *
 * Block layout (lsmi_mlp_nparams floats), all row-major:
 *   W1t (in, H) | b1 (H) | W2 (H, H) | b2 (H) | W3 (C, H) | b3 (C)
 * W2 and W3 are PyTorch's (out, in) weights; the first layer's weight is
 * stored TRANSPOSED, W1t = W1^T with W1 PyTorch's (H, in): the layout the
 * products of mlp.c read without a copy (see mlp.c). lsmi_mlp_set_W1 and
 * lsmi_mlp_get_W1 convert from and to PyTorch's layout.
 * Activation layout for a batch of up to B rows (lsmi_mlp_nacts floats):
 *   h1 (B, H) | h2 (B, H) | logits (B, C) | W2t (H, H) | W3t (H, C)
 * (h1, h2 after ReLU; W2t and W3t are the forward pass's transposed copies
 * of W2 and W3, rewritten by every forward call.)
 * Backward scratch (lsmi_mlp_nscratch floats): dh1 (B, H) | dh2 (B, H)
 */
#ifndef LSMI_MLP_H
#define LSMI_MLP_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

typedef struct lsmi_mlp {
  int in, hidden, classes;
  float *W1t, *b1, *W2, *b2, *W3, *b3; /* views into a block */
} lsmi_mlp_t;

typedef struct lsmi_mlp_acts {
  int max_batch, hidden, classes;
  float *h1, *h2, *logits; /* views into a block */
  float *W2t, *W3t;        /* the forward pass's transposed weights */
} lsmi_mlp_acts_t;

size_t lsmi_mlp_nparams(int in, int hidden, int classes);
/* Carves the views of m out of block (borrowed, lsmi_mlp_nparams floats). */
void lsmi_mlp_bind(lsmi_mlp_t *m, float *block, int in, int hidden,
                   int classes);
/* PyTorch's default Linear init: W and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
 * drawn W1, b1, W2, b2, W3, b3, each weight in PyTorch's row-major (out, in)
 * order (so W1's draws land transposed in W1t): every weight gets the value
 * the same draws give it in PyTorch. */
void lsmi_mlp_init(lsmi_mlp_t *m, lsmi_rng_t *rng);

/* Copies W1 (H, in), PyTorch's layout, into m's W1t (in, H). W1 borrowed. */
void lsmi_mlp_set_W1(lsmi_mlp_t *m, const float *W1);
/* Writes m's W1t back out in PyTorch's layout, W1 (H, in). */
void lsmi_mlp_get_W1(const lsmi_mlp_t *m, float *W1);

size_t lsmi_mlp_nacts(int hidden, int classes, int max_batch);
void lsmi_mlp_acts_bind(lsmi_mlp_acts_t *a, float *block, int hidden,
                        int classes, int max_batch);
size_t lsmi_mlp_nscratch(int hidden, int max_batch);

/* Forward pass of B rows of x (row stride ldx floats) into a, which must be
 * bound for the same hidden and classes. */
void lsmi_mlp_forward(const lsmi_mlp_t *m, lsmi_mlp_acts_t *a, const float *x,
                      size_t ldx, int B);

/*
 * Mean cross-entropy of logits (B, C) against y (B); writes
 * dlogits (B, C) = (softmax(logits) - onehot(y)) / B and returns the loss.
 */
double lsmi_ce_forward_backward(float *dlogits, const float *logits,
                                const int32_t *y, int B, int C);

/* out[b] = log softmax(logits[b])[y[b]] for B rows (no gradient). */
void lsmi_log_softmax_at(double *out, const float *logits, const int32_t *y,
                         int B, int C);

/*
 * Backward pass: given the forward activations a for the same x and
 * dlogits (B, C), OVERWRITES the gradient block viewed by grad (same
 * shapes as m). scratch: lsmi_mlp_nscratch floats.
 */
void lsmi_mlp_backward(const lsmi_mlp_t *m, lsmi_mlp_t *grad, float *scratch,
                       const lsmi_mlp_acts_t *a, const float *dlogits,
                       const float *x, size_t ldx, int B);

#endif
